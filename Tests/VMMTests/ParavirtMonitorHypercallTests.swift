import Testing

@testable import VMM

/// The deprivileged mode's hypercalls and monitor pieces, called directly on a machine whose
/// scripted vCPU stands where a PV-booted guest kernel would (64-bit ring 3 on the boot's tables).
@Suite struct ParavirtMonitorHypercallTests {
  static let virtualBase: UInt64 = 0xFFFF_FFFF_8000_0000
  /// Mapped, writable guest-virtual scratch space (physical 0x200000).
  static let scratch = virtualBase + 0x20_0000

  /// A 64-bit ELF of a few NOPs at physical 0x100000, virtual `virtualBase` + that.
  static func tinyKernel() -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 0x1000)
    func put(_ v: UInt64, _ at: Int, _ size: Int) {
      for i in 0..<size { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }
    b.replaceSubrange(0..<7, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1])
    put(2, 16, 2)
    put(62, 18, 2)
    put(1, 20, 4)
    put(virtualBase + 0x10_0000, 24, 8)
    put(64, 32, 8)
    put(64, 52, 2)
    put(56, 54, 2)
    put(1, 56, 2)
    put(1, 64, 4)
    put(7, 68, 4)
    put(0x1000, 72, 8)
    put(virtualBase + 0x10_0000, 80, 8)
    put(0x10_0000, 88, 8)
    put(16, 96, 8)
    put(16, 104, 8)
    return b + [UInt8](repeating: 0x90, count: 16)
  }

  /// A machine (scripted engine, 16 MiB), PV-booted when `deprivileged`; its vCPU holds the
  /// boot state (or 64-bit ring 0 otherwise).
  final class Domain {
    let engine = ScriptedEngine(script: [])
    let vm: Machine
    let memory: GuestMemory
    var cpu: ScriptedVirtualCPU { engine.vcpu }
    var caller: HypercallCaller { HypercallCaller(index: 0, vcpu: cpu) }

    init(deprivileged: Bool) throws {
      memory = try GuestMemory(ramSize: 16 << 20)
      let boot = try ParavirtBoot.load(image: ParavirtMonitorHypercallTests.tinyKernel(), into: memory, commandLine: "")
      vm = try Machine(memory: memory, boot: boot, engine: engine, configuration: MachineConfiguration())
      var s = boot.specialRegisters
      if deprivileged {
        try vm.paravirt.startDeprivileged(boot: boot)
      } else {
        s.cs = Segment(selector: 0x10, base: 0, limit: 0xFFFF_FFFF, type: 0xB, l: true, g: true)
        s.ss = Segment(selector: 0x18, base: 0, limit: 0xFFFF_FFFF, type: 0x3, db: true, g: true)
      }
      cpu.currentSpecialRegisters = s
      cpu.currentRegisters = boot.registers
    }

    /// Dispatches hypercall `number` with `arguments` from the vCPU.
    func call(_ number: Xen.Hypercall, _ arguments: UInt64...) throws -> HypercallResult {
      cpu.currentRegisters.rax = number.rawValue
      let call = HypercallDispatcher.Call(
        number: number.rawValue, arguments: arguments + [UInt64](repeating: 0, count: 6 - arguments.count),
        longMode: true)
      return try vm.hypercalls.dispatch(call, caller: caller)
    }

    /// Writes `words` at guest-virtual `address` (through the boot's identity-offset mapping).
    func store(_ words: [UInt64], at address: UInt64) throws {
      for (i, w) in words.enumerated() { try memory.write(w, at: address - virtualBase + UInt64(i * 8)) }
    }
  }

  static func value(_ e: Xen.Error) -> HypercallResult { .value(e.returnValue) }

  @Test func userCallersOfARingZeroKernelGetEPERM() throws {
    let d = try Domain(deprivileged: false)
    #expect(try d.call(.xenVersion, 0) == .value(UInt64(Xen.version)))
    d.cpu.currentSpecialRegisters.cs.selector = 0x2B
    d.cpu.currentSpecialRegisters.ss.dpl = 3
    #expect(try d.call(.xenVersion, 0) == Self.value(.permissionDenied))
    #expect(try d.call(.iret) == Self.value(.permissionDenied))
  }

  @Test func deprivilegedKernelMayCallItsUserModeMayNot() throws {
    let d = try Domain(deprivileged: true)
    #expect(try d.call(.xenVersion, 0) == .value(UInt64(Xen.version)))
    d.vm.paravirt.vcpus[0].inKernelMode = false
    #expect(try d.call(.xenVersion, 0) == Self.value(.permissionDenied))
  }

  @Test func setTrapTableValidates() throws {
    let d = try Domain(deprivileged: true)
    let table = Self.scratch
    // {vector 14, flags 4, cs 0xe033, handler}, {vector 6, ...}, terminator.
    try d.store(
      [0xE033_040E, Self.virtualBase + 0x10_0000, 0xE033_0006, Self.virtualBase + 0x10_0008, 0, 0], at: table)
    #expect(try d.call(.setTrapTable, table) == .value(0))
    let traps = try #require(d.vm.paravirt.monitor).vcpus[0].traps
    #expect(traps[14] == .init(address: Self.virtualBase + 0x10_0000, flags: 4, cs: 0xE033))
    #expect(traps[6]?.address == Self.virtualBase + 0x10_0008 && traps.count == 2)
    // A non-canonical handler: -EINVAL, nothing changed.
    try d.store([0x0000_0003, 0x8000_0000_0000_0000, 0, 0], at: table + 0x100)
    #expect(try d.call(.setTrapTable, table + 0x100) == Self.value(.invalid))
    #expect(d.vm.paravirt.monitor?.vcpus[0].traps.count == 2)
    // 256 entries without a terminator: -EINVAL.
    try d.store((0..<512).map { $0 % 2 == 0 ? UInt64($0 / 2 % 256) : Self.virtualBase }, at: table + 0x1000)
    #expect(try d.call(.setTrapTable, table + 0x1000) == Self.value(.invalid))
    // An unmapped table, and the monitor's pages: -EFAULT.
    #expect(try d.call(.setTrapTable, 0x1000_0000_0000) == Self.value(.fault))
    #expect(try d.call(.setTrapTable, 0xFFFF_8000_0001_0000) == Self.value(.fault))
    // Null clears.
    #expect(try d.call(.setTrapTable, 0) == .value(0))
    #expect(d.vm.paravirt.monitor?.vcpus[0].traps.isEmpty == true)
  }

  @Test func stackSwitchSegmentBaseAndTaskSwitch() throws {
    let d = try Domain(deprivileged: true)
    #expect(try d.call(.stackSwitch, 0xE02B, Self.scratch + 0x1000) == .value(0))
    #expect(d.vm.paravirt.vcpus[0].kernelStackPointer == Self.scratch + 0x1000)
    #expect(d.vm.paravirt.vcpus[0].kernelStackSegment == 0xE02B)
    #expect(try d.call(.setSegmentBase, 0, 0x1234_5000) == .value(0))
    #expect(d.cpu.currentSpecialRegisters.fs.base == 0x1234_5000)
    #expect(try d.call(.setSegmentBase, 2, 0x2000) == .value(0))
    #expect(try d.call(.setSegmentBase, 1, 0x3000) == .value(0))
    #expect(d.cpu.currentSpecialRegisters.gs.base == 0x2000)
    #expect(d.vm.paravirt.monitor?.vcpus[0].inactiveGSBase == 0x3000)
    #expect(try d.call(.setSegmentBase, 0, 0x8000_0000_0000_0000) == Self.value(.invalid))
    #expect(try d.call(.setSegmentBase, 3, 0x1234) == Self.value(.invalid))
    #expect(try d.call(.setSegmentBase, 9, 0) == Self.value(.invalid))
    #expect(try d.call(.fpuTaskswitch, 1) == .value(0))
    #expect(d.cpu.currentSpecialRegisters.cr0 & 8 != 0)
    #expect(try d.call(.fpuTaskswitch, 0) == .value(0))
    #expect(d.cpu.currentSpecialRegisters.cr0 & 8 == 0)
  }

  @Test func iretToUserModeSwitchesTablesAndGSAndMask() throws {
    let d = try Domain(deprivileged: true)
    let p = d.vm.paravirt
    p.vcpus[0].userBasePointer = 0x80_0000
    p.setUpcallMask(0, true)
    let kernelRoot = d.cpu.currentSpecialRegisters.cr3
    _ = try d.call(.setSegmentBase, 2, 0x2000)
    _ = try d.call(.setSegmentBase, 1, 0x3000)
    let stack = Self.scratch + 0x800
    // rax, r11, rcx, flags, rip, cs, rflags (IF, IOPL 3 refused), rsp, ss
    try d.store([0xAA, 0xBB, 0xCC, 0, 0x40_1000, 0xE033, 0x3202, 0x7000, 0xE02B], at: stack)
    d.cpu.currentRegisters.rsp = stack
    #expect(try d.call(.iret) == .registersSet)
    let r = d.cpu.currentRegisters
    let s = d.cpu.currentSpecialRegisters
    #expect(r.rax == 0xAA && r.r11 == 0xBB && r.rcx == 0xCC && r.rip == 0x40_1000 && r.rsp == 0x7000)
    #expect(r.rflags == 0x2, "IF is virtual, IOPL stays 0")
    #expect(s.cr3 == 0x80_0000 && s.gs.base == 0x3000 && s.cs.selector == 0xE033 && s.ss.dpl == 3)
    #expect(!p.vcpus[0].inKernelMode && !p.isUpcallMasked(0))
    // A non-canonical RIP: -EINVAL (the kernel's state untouched).
    p.vcpus[0].inKernelMode = true
    d.cpu.currentSpecialRegisters.cr3 = kernelRoot
    try d.store([0, 0, 0, 0, 0x8000_0000_0000_0000, 0xE033, 0x2, 0x7000, 0xE02B], at: stack)
    d.cpu.currentRegisters.rsp = stack
    #expect(try d.call(.iret) == Self.value(.invalid))
  }

  @Test func iretOfARingZeroKernel() throws {
    let d = try Domain(deprivileged: false)
    let stack = Self.scratch + 0x800
    try d.store([1, 2, 3, 0, 0x40_2000, 0x10, 0x202, 0x9000, 0x18], at: stack)
    d.cpu.currentRegisters.rsp = stack
    #expect(try d.call(.iret) == .registersSet)
    #expect(d.cpu.currentRegisters.rip == 0x40_2000 && d.cpu.currentRegisters.rflags == 0x202)
    #expect(d.cpu.currentSpecialRegisters.cs.selector == 0x10 && d.cpu.currentSpecialRegisters.cs.l)
  }

  @Test func monitorTrapsReflectOrCrash() throws {
    let d = try Domain(deprivileged: true)
    let trap = [UInt8]([0x0F, 0x01, 0xC1])
    // The CPU's frame on the monitor stack: vector, error code, rip, cs, rflags, rsp, ss.
    func trapFrom(vector: UInt64, cs: UInt64, head: [UInt64]? = nil) throws -> HypercallResult {
      let top = ParavirtMonitor.Layout.stackTop(0)
      var r = d.cpu.currentRegisters
      r.rsp = top - 56
      let pushes: UInt64 = ParavirtMonitor.errorCodeVectors.contains(vector) ? 5 : 7
      r.rip = ParavirtMonitor.Layout.stubAddress(vector) + pushes + UInt64(trap.count)
      d.cpu.currentRegisters = r
      d.cpu.currentSpecialRegisters.cs.selector = 0xE008
      d.cpu.currentSpecialRegisters.ss.dpl = 0
      let frame: [UInt64] =
        (head ?? [vector, 6]) + [Self.virtualBase + 0x10_0004, cs, 0x202, Self.scratch + 0x400, 0xE02B]
      let layout = try #require(d.vm.paravirt.monitor).layout
      for (i, w) in frame.enumerated() { try d.memory.write(w, at: layout.stackFrame(0) + 0x1000 - 56 + UInt64(i * 8)) }
      return try d.call(.xenVersion)
    }
    // No trap-table entry: the guest cannot take it.
    #expect(try trapFrom(vector: 14, cs: 0xE033) == .shutdown(.crash))
    // The monitor itself (CS RPL 0) faulted.
    try d.store([0xE033_000E, Self.virtualBase + 0x10_0008, 0, 0], at: Self.scratch)
    #expect(try d.call(.setTrapTable, Self.scratch) == .value(0))
    #expect(try trapFrom(vector: 14, cs: 0xE008) == .shutdown(.crash))
    // Reflected: the handler runs at ring 3 on the current (kernel) stack with the frame.
    d.cpu.currentSpecialRegisters.cr2 = 0xDEAD_0000
    #expect(try trapFrom(vector: 14, cs: 0xE033) == .registersSet)
    #expect(d.cpu.currentRegisters.rip == Self.virtualBase + 0x10_0008)
    #expect(d.cpu.currentSpecialRegisters.cs.selector == 0xE033 && d.cpu.currentSpecialRegisters.ss.dpl == 3)
    let rsp = d.cpu.currentRegisters.rsp
    #expect(rsp == Self.scratch + 0x400 - 64)
    let words = try (0..<8).map { try d.memory.read(UInt64.self, at: rsp - Self.virtualBase + UInt64($0 * 8)) }
    #expect(words[2] == 6 && words[3] == Self.virtualBase + 0x10_0004 && words[4] == 0xE030 && words[7] == 0xE02B)
    #expect(words[5] & (1 << 9) == 0, "events masked at boot: the frame shows IF clear")
    #expect(d.vm.paravirt.monitor?.vcpus[0].cr2 == 0xDEAD_0000)
    // INT 0x80 (a #GP with the IDT bit) reaches vector 0x80's handler when its DPL is 3, after
    // the 2-byte instruction, without an error code; with DPL 0 it stays a #GP (no handler here).
    try d.store([0xE033_0380, Self.virtualBase + 0x10_0010, 0, 0], at: Self.scratch)
    #expect(try d.call(.setTrapTable, Self.scratch) == .value(0))
    let intFrame: [UInt64] = [13, 0x80 << 3 | 2]
    #expect(try trapFrom(vector: 13, cs: 0xE033, head: intFrame) == .registersSet)
    #expect(d.cpu.currentRegisters.rip == Self.virtualBase + 0x10_0010)
    let top = d.cpu.currentRegisters.rsp
    #expect(try d.memory.read(UInt64.self, at: top - Self.virtualBase + 16) == Self.virtualBase + 0x10_0006)
    try d.store([0xE033_0080, Self.virtualBase + 0x10_0010, 0, 0], at: Self.scratch)
    #expect(try d.call(.setTrapTable, Self.scratch) == .value(0))
    #expect(try trapFrom(vector: 13, cs: 0xE033, head: intFrame) == .shutdown(.crash))
  }

  @Test func monitorPiecesAndMemoryMap() throws {
    let d = try Domain(deprivileged: true)
    let p = d.vm.paravirt
    let layout = try #require(p.monitor).layout
    #expect(p.isMonitorRootSlot(256) && !p.isMonitorRootSlot(255) && !p.isMonitorRootSlot(511))
    try p.prepareRootTable(frame: 0x80)
    #expect(try d.memory.read(UInt64.self, at: 0x80_000 + 256 * 8) == layout.rootEntry)
    #expect(!p.ownsFrame(layout.base >> 12) && p.ownsFrame(0x100))
    let map = p.memoryMap
    let shared = ParavirtBoot.sharedInfoAddress(layout)
    #expect(map.contains { $0.kind == .reserved && $0.address == shared && $0.end == layout.reservedRange.upperBound })
    #expect(!map.contains { $0.kind == .usable && $0.end > shared })
    // start_info.nr_pages stops below the shared info page.
    let startInfo = d.cpu.currentRegisters.rsi - Self.virtualBase
    #expect(try d.memory.read(UInt64.self, at: startInfo + 32) == shared >> 12)
    #expect(try d.memory.read(UInt64.self, at: startInfo + 40) == shared)
    // Stubs: each vector's return address is recognized, nothing else.
    for v in [UInt64(0), 6, 8, 13, 14, 255, 256] {
      let prefix: UInt64 = v == 256 ? 0 : ParavirtMonitor.errorCodeVectors.contains(v) ? 5 : 7
      #expect(
        ParavirtMonitor.stubIndex(returnAddress: ParavirtMonitor.Layout.stubAddress(v) + prefix + 3, trapLength: 3) == v
      )
      #expect(
        ParavirtMonitor.stubIndex(returnAddress: ParavirtMonitor.Layout.stubAddress(v) + prefix + 4, trapLength: 3)
          == nil)
    }
  }
}

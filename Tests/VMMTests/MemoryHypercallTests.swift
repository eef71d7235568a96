import Testing

@testable import VMM

/// `memory_op`, `mmu_update`, `mmuext_op`, `update_va_mapping` and `multicall` on a machine of
/// scripted vCPUs: the handlers called directly, the caller identity-mapped (SmallGuestBoot), so a
/// guest pointer is its physical address.
@Suite struct MemoryHypercallTests {
  static let einval = Xen.Error.invalid.returnValue
  static let eperm = Xen.Error.permissionDenied.returnValue
  static let efault = Xen.Error.fault.returnValue
  static let esrch = Xen.Error.noSuchProcess.returnValue
  static let enosys = Xen.Error.notImplemented.returnValue
  static let domidSelf: UInt64 = 0x7FF0

  /// A tree for linear 0..2 MiB: L4 0x200000 -> L3 0x201000 -> L2 0x202000 -> L1 0x203000, whose
  /// entry 0x10 maps data frame 0x210000 writable and entry 0x11 maps the L1 itself read-only.
  static let (l4, l3, l2, l1, data): (UInt64, UInt64, UInt64, UInt64, UInt64) = (
    0x20_0000, 0x20_1000, 0x20_2000, 0x20_3000, 0x21_0000
  )
  /// Where the tests put hypercall arguments.
  static let args: UInt64 = 0x30_0000

  final class Harness {
    let engine: ScriptedEngine
    let machine: Machine
    let memory: GuestMemory
    var domain: ParavirtDomain { machine.paravirt }

    init(cpus: Int = 2, ramSize: UInt64 = 4 << 20) throws {
      engine = ScriptedEngine(scripts: Array(repeating: [], count: cpus))
      memory = try GuestMemory(ramSize: ramSize)
      let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
      var configuration = MachineConfiguration(timeoutSeconds: 60)
      configuration.cpuCount = cpus
      machine = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
      for v in engine.vcpus { v.currentSpecialRegisters = boot.specialRegisters }
    }

    /// Writes the tree of `MemoryHypercallTests.l4`.
    func buildTree() throws {
      try memory.fill(l4, length: 0x4000)
      try memory.write(l3 | 3, at: l4)
      try memory.write(l2 | 3, at: l3)
      try memory.write(l1 | 3, at: l2)
      try memory.write(data | 3, at: l1 + 0x10 * 8)
      try memory.write(l1 | 1, at: l1 + 0x11 * 8)
    }

    /// The result of hypercall `number` with `arguments` made by vCPU `cpu`.
    func call(_ number: UInt64, _ arguments: [UInt64], cpu: Int = 0) throws -> UInt64 {
      let padded = arguments + Array(repeating: 0, count: 6 - arguments.count)
      let result = try machine.hypercalls.dispatch(
        HypercallDispatcher.Call(number: number, arguments: padded, longMode: true),
        caller: HypercallCaller(index: cpu, vcpu: engine.vcpus[cpu]))
      guard case .value(let v) = result else {
        Issue.record("expected a value, got \(result)")
        return 0
      }
      return v
    }

    func call(_ hypercall: Xen.Hypercall, _ arguments: [UInt64], cpu: Int = 0) throws -> UInt64 {
      try call(hypercall.rawValue, arguments, cpu: cpu)
    }

    /// `mmuext_op` with one operation.
    func mmuext(_ command: Xen.MMUExtOp, _ argument1: UInt64, _ argument2: UInt64 = 0, cpu: Int = 0) throws -> UInt64 {
      try mmuext(raw: command.rawValue, argument1, argument2, cpu: cpu)
    }

    func mmuext(raw command: UInt32, _ argument1: UInt64, _ argument2: UInt64 = 0, cpu: Int = 0) throws -> UInt64 {
      try memory.write(UInt64(command), at: args + 0x800)
      try memory.write(argument1, at: args + 0x808)
      try memory.write(argument2, at: args + 0x810)
      return try call(.mmuextOp, [args + 0x800, 1, 0, domidSelf], cpu: cpu)
    }

    /// `mmu_update` with `requests`; the second value is the success count it reported.
    func mmuUpdate(_ requests: [(UInt64, UInt64)]) throws -> (UInt64, UInt32) {
      for (i, r) in requests.enumerated() {
        try memory.write(r.0, at: args + UInt64(i) * 16)
        try memory.write(r.1, at: args + UInt64(i) * 16 + 8)
      }
      try memory.write(UInt32(0xFFFF), at: args + 0xF00)
      let result = try call(.mmuUpdate, [args, UInt64(requests.count), args + 0xF00, domidSelf])
      return (result, try memory.read(UInt32.self, at: args + 0xF00))
    }

    func record(_ address: UInt64) -> PageFrameTable.Frame { domain.memoryState.frames[address >> 12] }
    func entry(_ address: UInt64) throws -> UInt64 { try memory.read(UInt64.self, at: address) }
  }

  // MARK: memory_op

  @Test func memoryOpReportsTheMapTheReservationAndTheHighestPage() throws {
    let h = try Harness()
    // XENMEM_memory_map: room for 16 entries; the map of 4 MiB with the platform tables' area.
    try h.memory.write(UInt32(16), at: Self.args)
    try h.memory.write(Self.args + 0x100, at: Self.args + 8)
    #expect(try h.call(.memoryOp, [9, Self.args]) == 0)
    let expected = h.domain.memoryMap
    #expect(try h.memory.read(UInt32.self, at: Self.args) == UInt32(expected.count))
    #expect(expected.contains { $0.kind == .usable && $0.address == 0x10_0000 && $0.end == 4 << 20 })
    for (i, e) in expected.enumerated() {
      let base = Self.args + 0x100 + UInt64(i) * 20
      #expect(try h.memory.read(UInt64.self, at: base) == e.address)
      #expect(try h.memory.read(UInt64.self, at: base + 8) == e.length)
      #expect(try h.memory.read(UInt32.self, at: base + 16) == e.kind.rawValue)
    }
    // Capped at the caller's count.
    try h.memory.write(UInt32(1), at: Self.args)
    try h.memory.fill(Self.args + 0x100, length: 0x100)
    #expect(try h.call(.memoryOp, [9, Self.args]) == 0)
    #expect(try h.memory.read(UInt32.self, at: Self.args) == 1)
    #expect(try h.memory.read(UInt64.self, at: Self.args + 0x100 + 20) == 0)
    // A buffer that is not mapped.
    try h.memory.write(UInt32(16), at: Self.args)
    try h.memory.write(UInt64(0x8000_0000_0000), at: Self.args + 8)
    #expect(try h.call(.memoryOp, [9, Self.args]) == Self.efault)

    // Reservations: DOMID_SELF only; the VMM's reserved range is not the guest's.
    try h.memory.write(UInt16(0x7FF0), at: Self.args)
    #expect(try h.call(.memoryOp, [3, Self.args]) == 1024)
    #expect(try h.call(.memoryOp, [4, Self.args]) == 1024)
    h.domain.reservedRange = 0x38_0000..<0x40_0000
    #expect(try h.call(.memoryOp, [3, Self.args]) == 1024 - 128)
    #expect(h.domain.memoryMap.contains { $0.kind == .reserved && $0.address == 0x38_0000 })
    try h.memory.write(UInt16(1), at: Self.args)
    #expect(try h.call(.memoryOp, [3, Self.args]) == Self.esrch)
    #expect(try h.call(.memoryOp, [3, 0x8000_0000_0000]) == Self.efault)

    #expect(try h.call(.memoryOp, [2, 0]) == 1024)
    #expect(try h.call(.memoryOp, [0, Self.args]) == Self.enosys)  // increase_reservation
    #expect(try h.call(.memoryOp, [13, Self.args]) == Self.enosys)
  }

  @Test func addToPhysmapPlacesTheSharedInfoPageOnlyOnAnOwnedFrame() throws {
    let h = try Harness()
    func add(domain: UInt16 = 0x7FF0, space: UInt32 = 0, index: UInt64 = 0, frame: UInt64) throws -> UInt64 {
      try h.memory.write(domain, at: Self.args)
      try h.memory.write(space, at: Self.args + 4)
      try h.memory.write(index, at: Self.args + 8)
      try h.memory.write(frame, at: Self.args + 16)
      return try h.call(.memoryOp, [7, Self.args])
    }
    #expect(try add(domain: 3, frame: 0x300) == Self.esrch)
    #expect(try add(space: 1, frame: 0x300) == Self.enosys)  // grant table
    #expect(try add(index: 1, frame: 0x300) == Self.einval)
    #expect(try add(frame: 0xFEE00) == Self.eperm)  // the local APIC, not RAM
    #expect(try add(frame: 0x300) == 0)
    // The VMM writes the shared info page itself: it never goes over a page table in use, and
    // it never becomes one (its contents would be entries nobody validated).
    try h.buildTree()
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == 0)
    #expect(try add(frame: Self.l1 >> 12) == Self.einval)
    #expect(try h.memory.read(UInt64.self, at: Self.l1 + 0x10 * 8) == Self.data | 3, "the table is untouched")
    try h.memory.fill(0x30_0000, length: 0x1000)
    #expect(try h.mmuext(.pinL1Table, 0x300) == Self.einval)
  }

  @Test func theDeprivilegedModeRefusesBootTablesThatDoNotValidate() throws {
    let h = try Harness(ramSize: 16 << 20)
    // SmallGuestBoot maps with 2 MiB pages, which a paravirtual guest may not use.
    let boot = try SmallGuestBoot.prepare(memory: h.memory, entry: 0x10000)
    #expect(throws: LoaderError.self) { try h.domain.startDeprivileged(boot: boot) }
  }

  // MARK: Pins

  @Test func pinningValidatesTheTreeAndUnpinningReleasesIt() throws {
    let h = try Harness()
    try h.buildTree()
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == 0)
    #expect(h.record(Self.l4) == .init(level: 4, tableReferences: 1, pinned: true, entries: h.record(Self.l4).entries))
    #expect(h.record(Self.l3).level == 3 && h.record(Self.l2).level == 2 && h.record(Self.l1).level == 1)
    #expect(h.record(Self.data).writableMappings == 1)
    // Pinned twice: -EINVAL; a lower table may be pinned too (it then has two references).
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == Self.einval)
    #expect(try h.mmuext(.pinL1Table, Self.l1 >> 12) == 0)
    #expect(h.record(Self.l1).tableReferences == 2)
    // The wrong level for a frame in use: -EINVAL.
    #expect(try h.mmuext(.pinL2Table, Self.l3 >> 12) == Self.einval)
    // Unpinning the L4 keeps the L1 (pinned) and releases the rest.
    #expect(try h.mmuext(.unpinTable, Self.l4 >> 12) == 0)
    #expect(h.record(Self.l4).isOrdinary && h.record(Self.l3).isOrdinary && h.record(Self.l2).isOrdinary)
    #expect(h.record(Self.l1).tableReferences == 1)
    #expect(try h.mmuext(.unpinTable, Self.l4 >> 12) == Self.einval)  // not pinned
    #expect(try h.mmuext(.unpinTable, Self.l1 >> 12) == 0)
    #expect(h.domain.memoryState.frames.records.isEmpty)
    // Frames that are not the guest's.
    #expect(try h.mmuext(.pinL1Table, 0xFEE00) == Self.eperm)
    #expect(try h.mmuext(.unpinTable, 0x1_0000_0000) == Self.eperm)
  }

  @Test func pinningRefusesInvalidEntriesAndChangesNothing() throws {
    let h = try Harness()
    try h.buildTree()
    let cases: [(UInt64, UInt64, UInt64)] = [
      (Self.l1 + 0x20 * 8, Self.data | 1 | 1 << 52, Self.einval),  // a bit the hypervisor keeps
      (Self.l2 + 8, 0x40_0000 | 0x83, Self.einval),  // a 2 MiB page
      (Self.l4 + 8, Self.l3 | 0x83, Self.einval),  // PS in an L4 entry
      (Self.l1 + 0x20 * 8, 0xFEE0_0000 | 3, Self.eperm),  // the local APIC
      (Self.l1 + 0x20 * 8, 0x1_0000_0000 | 1, Self.eperm),  // beyond RAM
      (Self.l1 + 0x20 * 8, Self.l2 | 3, Self.einval),  // a page table mapped writable
      (Self.l3 + 8, Self.l3 | 1, Self.einval),  // the L3 again as an L2
      (Self.l2 + 8, Self.l3 | 1, Self.einval),  // the L3 as an L1
    ]
    for (address, value, error) in cases {
      try h.memory.write(value, at: address)
      #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == error, "entry \(String(value, radix: 16))")
      #expect(h.domain.memoryState.frames.records.isEmpty)
      try h.memory.write(UInt64(0), at: address)
    }
    // The VMM's reserved range is not the guest's to map.
    h.domain.reservedRange = Self.data..<Self.data + 0x1000
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == Self.eperm)
    h.domain.reservedRange = nil
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == 0)
  }

  @Test func aFrameMappedWritableCannotBecomeATableNorATableBeMappedWritable() throws {
    let h = try Harness()
    try h.buildTree()
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == 0)
    // The data frame is mapped writable by the pinned tree: pinning it is refused.
    #expect(try h.mmuext(.pinL1Table, Self.data >> 12) == Self.einval)
    // A writable mapping of any table of the tree is refused, a read-only one accepted.
    for table in [Self.l4, Self.l3, Self.l2, Self.l1] {
      #expect(try h.mmuUpdate([(Self.l1 + 0x30 * 8, table | 3)]).0 == Self.einval)
      #expect(try h.mmuUpdate([(Self.l1 + 0x30 * 8, table | 1)]).0 == 0)
    }
    // Once the writable mapping is gone and every vCPU flushed, the frame can be pinned
    // (HypercallPreemptionTests: without the flush, -EAGAIN on this 2-vCPU machine).
    #expect(try h.mmuUpdate([(Self.l1 + 0x10 * 8, Self.data | 1)]).0 == 0)
    #expect(h.record(Self.data).writableMappings == 0)
    try h.memory.fill(Self.data, length: 0x1000)
    #expect(try h.mmuext(.tlbFlushAll, 0) == 0)
    #expect(try h.mmuext(.pinL1Table, Self.data >> 12) == 0)
  }

  @Test func monitorSlotsOfARootTableAreNotTheGuests() throws {
    let h = try Harness(ramSize: 16 << 20)
    #expect(!(0..<512).contains { h.domain.isMonitorRootSlot($0) }, "ring-0 mode: no slot is the monitor's")
    try h.buildTree()
    var boot = try SmallGuestBoot.prepare(memory: h.memory, entry: 0x10000)
    boot.specialRegisters.cr3 = Self.l4  // the builder's root: validated (no superpages) and held
    try h.domain.startDeprivileged(boot: boot)
    let slot = try #require((0..<512).first { h.domain.isMonitorRootSlot($0) })
    try h.memory.write(Self.l3 | 1, at: Self.l4 + UInt64(slot) * 8)  // ignored when validating
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == 0)
    #expect(try h.mmuUpdate([(Self.l4 + UInt64(slot) * 8, Self.l3 | 1)]).0 == Self.einval)
    #expect(
      try h.call(.updateVAMapping, [UInt64(slot) << 39 | (slot >= 256 ? 0xFFFF_0000_0000_0000 : 0), 0, 0])
        == Self.einval)
  }

  // MARK: mmu_update

  @Test func mmuUpdateValidatesEachRequestAndStopsAtTheFirstFailure() throws {
    let h = try Harness()
    try h.buildTree()
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == 0)
    // Three requests, the second invalid: one done, the third never written.
    let (result, done) = try h.mmuUpdate([
      (Self.l1 + 0x40 * 8, 0x22_0000 | 3), (Self.l1 + 0x41 * 8, 0xFEE0_0000 | 3), (Self.l1 + 0x42 * 8, 0x23_0000 | 3),
    ])
    #expect(result == Self.eperm && done == 1)
    #expect(try h.entry(Self.l1 + 0x40 * 8) == 0x22_0000 | 3)
    #expect(try h.entry(Self.l1 + 0x41 * 8) == 0 && h.entry(Self.l1 + 0x42 * 8) == 0)
    #expect(h.record(0x22_0000).writableMappings == 1)
    // Replacing an entry releases what the old one took.
    #expect(try h.mmuUpdate([(Self.l1 + 0x40 * 8, 0)]) == (0, 1))
    #expect(h.record(0x22_0000).isOrdinary)
    // Unaligned, reserved bits, an L2 entry to a frame that is not a valid L1.
    #expect(try h.mmuUpdate([(Self.l1 + 0x40 * 8 + 4, 1)]).0 == Self.einval)
    #expect(try h.mmuUpdate([(Self.l1 + 0x40 * 8, 0x22_0000 | 1 | 1 << 60)]).0 == Self.einval)
    try h.memory.write(0x1_0000_0000 | 1, at: 0x24_0000)
    #expect(try h.mmuUpdate([(Self.l2 + 8, 0x24_0000 | 3)]).0 == Self.eperm)
    #expect(h.record(0x24_0000).isOrdinary)
    // A new L1 through an L2 entry is validated and referenced.
    try h.memory.write(UInt64(0x25_0000 | 3), at: 0x24_0000)
    #expect(try h.mmuUpdate([(Self.l2 + 8, 0x24_0000 | 3)]) == (0, 1))
    #expect(h.record(0x24_0000).level == 1 && h.record(0x25_0000).writableMappings == 1)
    // A frame that is no page table takes an ordinary store; one that is not the guest's none.
    #expect(try h.mmuUpdate([(0x26_0008, 0x1234)]) == (0, 1))
    #expect(try h.entry(0x26_0008) == 0x1234)
    #expect(try h.mmuUpdate([(0xFEE0_0000, 1)]).0 == Self.eperm)
    // MMU_MACHPHYS_UPDATE: the identity only; other request types are not served.
    #expect(try h.mmuUpdate([(0x26_0000 | 1, 0x260)]) == (0, 1))
    #expect(try h.mmuUpdate([(0x26_0000 | 1, 0x261)]).0 == Self.einval)
    #expect(try h.mmuUpdate([(0x26_0000 | 3, 0)]).0 == Self.enosys)
    // MMU_PT_UPDATE_PRESERVE_AD: the A and D bits the entry has now are kept.
    try h.memory.write(UInt64(0x22_0000 | 0x63), at: Self.l1 + 0x44 * 8)  // set behind the ABI's back
    #expect(try h.mmuUpdate([(Self.l1 + 0x44 * 8 | 2, 0x23_0000 | 1)]) == (0, 1))
    #expect(try h.entry(Self.l1 + 0x44 * 8) == 0x23_0000 | 0x61)
    #expect(try h.mmuUpdate([(Self.l1 + 0x44 * 8 + 4 | 2, 1)]).0 == Self.einval)
    // The batch itself: too long, another domain, an unmapped list, an unmapped count pointer.
    #expect(try h.call(.mmuUpdate, [Self.args, 4097, 0, Self.domidSelf]) == Self.einval)
    #expect(try h.call(.mmuUpdate, [Self.args, 1, 0, 0]) == Self.esrch)
    #expect(try h.call(.mmuUpdate, [0x8000_0000_0000, 1, 0, Self.domidSelf]) == Self.efault)
    try h.memory.write(UInt64(0x26_0010), at: Self.args)
    try h.memory.write(UInt64(5), at: Self.args + 8)
    #expect(try h.call(.mmuUpdate, [Self.args, 1, 0x8000_0000_0000, Self.domidSelf]) == Self.efault)
    #expect(try h.entry(0x26_0010) == 5)
    // 32-bit callers: not served.
    let short = try h.machine.hypercalls.dispatch(
      .init(number: 1, arguments: [0, 0, 0, 0, 0, 0], longMode: false),
      caller: HypercallCaller(index: 0, vcpu: h.engine.vcpus[0]))
    #expect(short == .value(Self.enosys & 0xFFFF_FFFF))
  }

  // MARK: Base pointers and flushes

  @Test func newBasePointerLoadsAValidatedRootIntoCR3() throws {
    let h = try Harness()
    try h.buildTree()
    let before = h.engine.vcpus[0].currentSpecialRegisters.cr3
    // An invalid root is refused and CR3 stays.
    try h.memory.write(0xFEE0_0000 | 3, at: Self.l1 + 0x50 * 8)
    #expect(try h.mmuext(.newBasePointer, Self.l4 >> 12) == Self.eperm)
    #expect(h.engine.vcpus[0].currentSpecialRegisters.cr3 == before)
    try h.memory.write(UInt64(0), at: Self.l1 + 0x50 * 8)
    #expect(try h.mmuext(.newBasePointer, Self.l4 >> 12) == 0)
    #expect(h.engine.vcpus[0].currentSpecialRegisters.cr3 == Self.l4)
    #expect(h.domain.vcpus[0].kernelBasePointer == Self.l4)
    #expect(h.record(Self.l4).tableReferences == 1 && !h.record(Self.l4).pinned)
    // The tree does not map the arguments: back to the boot tables for the next calls.
    h.engine.vcpus[0].currentSpecialRegisters.cr3 = before
    // Pinned as well: two references; loading another root drops the first's.
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == 0)
    #expect(h.record(Self.l4).tableReferences == 2)
    try h.memory.fill(0x20_4000, length: 0x1000)
    #expect(try h.mmuext(.newBasePointer, 0x204) == 0)
    #expect(h.record(Self.l4).tableReferences == 1)
    #expect(h.engine.vcpus[0].currentSpecialRegisters.cr3 == 0x20_4000)
    h.engine.vcpus[0].currentSpecialRegisters.cr3 = before
    // The user root: validated and kept, 0 clears it.
    #expect(try h.mmuext(.newUserBasePointer, Self.l4 >> 12, cpu: 1) == 0)
    #expect(h.domain.vcpus[1].userBasePointer == Self.l4 && h.record(Self.l4).tableReferences == 2)
    #expect(try h.mmuext(.newUserBasePointer, 0, cpu: 1) == 0)
    #expect(h.domain.vcpus[1].userBasePointer == 0 && h.record(Self.l4).tableReferences == 1)
    #expect(try h.mmuext(.newUserBasePointer, Self.l3 >> 12) == Self.einval)  // an L3
  }

  @Test func theBuildersRootStaysATableUntilAnotherReplacesIt() throws {
    let h = try Harness()
    try h.buildTree()
    try h.domain.adoptKernelRoot(Self.l4 >> 12, vcpu: 0)
    #expect(h.domain.vcpus[0].kernelBasePointer == Self.l4 && h.record(Self.l4).level == 4)
    #expect(h.engine.vcpus[0].currentSpecialRegisters.cr3 != Self.l4)  // the boot state's business
    // Pinned and unpinned, it is still the root: mapping it writable is refused.
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == 0)
    #expect(try h.mmuext(.unpinTable, Self.l4 >> 12) == 0)
    #expect(try h.mmuUpdate([(Self.l1 + 0x30 * 8, Self.l4 | 3)]).0 == Self.einval)
    // A new root releases it.
    try h.memory.fill(0x20_4000, length: 0x1000)
    #expect(try h.mmuext(.newBasePointer, 0x204) == 0)
    #expect(h.record(Self.l4).isOrdinary && h.record(Self.l1).isOrdinary)
    #expect(throws: HypercallFailure(.permissionDenied)) { try h.domain.adoptKernelRoot(0xFEE00, vcpu: 1) }
  }

  @Test func flushesReachTheCallerAtOnceAndOtherVCPUsBeforeTheyRunAgain() throws {
    let h = try Harness(cpus: 3)
    let (caller, others) = (h.engine.vcpus[0], [1, 2])
    func pending() -> [Int] { others.filter { h.domain.takeTranslationFlush(for: $0) } }
    #expect(try h.mmuext(.tlbFlushLocal, 0) == 0)
    #expect(caller.translationFlushes == 1 && pending() == [])
    #expect(try h.mmuext(.invalidatePageLocal, 0x1000) == 0)
    #expect(caller.translationFlushes == 2 && pending() == [])
    #expect(try h.mmuext(.tlbFlushAll, 0) == 0)
    #expect(caller.translationFlushes == 3 && pending() == [1, 2] && pending() == [])
    // A bitmap of vCPU 2 only; then of vCPUs 0 and 1.
    try h.memory.write(UInt64(0b100), at: Self.args + 0x400)
    #expect(try h.mmuext(.tlbFlushMulti, 0, Self.args + 0x400) == 0)
    #expect(caller.translationFlushes == 3 && pending() == [2])
    try h.memory.write(UInt64(0b011), at: Self.args + 0x400)
    #expect(try h.mmuext(.invalidatePageMulti, 0x1000, Self.args + 0x400) == 0)
    #expect(caller.translationFlushes == 4 && pending() == [1])
    #expect(try h.mmuext(.tlbFlushMulti, 0, 0x8000_0000_0000) == Self.efault)
    #expect(try h.mmuext(.invalidatePageAll, 0x1000) == 0)
    #expect(caller.translationFlushes == 5 && pending() == [1, 2])
    #expect(try h.mmuext(.flushCacheAll, 0) == 0)
    #expect(try h.mmuext(.setLDT, 0) == Self.enosys)
    #expect(try h.mmuext(raw: 14, 0) == Self.enosys)
    #expect(try h.mmuext(raw: 99, 0) == Self.enosys)
    #expect(try h.call(.mmuextOp, [Self.args, 4097, 0, Self.domidSelf]) == Self.einval)
  }

  @Test func aRunnerFlushesWhatAnotherVCPUAskedForBeforeItEntersTheGuest() throws {
    let engine = ScriptedEngine(script: [
      ScriptedVirtualCPU.Step { cpu in
        #expect(cpu.translationFlushes == 1)
        return .budgetExhausted
      },
      .portOut(0xF4, 0),
    ])
    let memory = try GuestMemory(ramSize: 1 << 20)
    let boot = BootState(mode: .real, registers: Registers(), specialRegisters: SpecialRegisters())
    let machine = try Machine(
      memory: memory, boot: boot, engine: engine, configuration: MachineConfiguration(timeoutSeconds: 60))
    machine.paravirt.memoryState.pendingFlushes.insert(0)
    #expect(machine.run().reason == .debugExit(value: 0))
    #expect(engine.vcpu.translationFlushes == 1)
    #expect(!machine.paravirt.takeTranslationFlush(for: 0))
  }

  @Test func updateVAMappingFindsTheEntryInTheCurrentTablesAndFlushesAsAsked() throws {
    let h = try Harness()
    try h.buildTree()
    // On the boot tables (2 MiB pages) there is no L1 entry to update.
    #expect(try h.call(.updateVAMapping, [0x10000, 0x22_0000 | 3, 0]) == Self.einval)
    #expect(try h.mmuext(.newBasePointer, Self.l4 >> 12) == 0)
    let flushes = h.engine.vcpus[0].translationFlushes
    #expect(try h.call(.updateVAMapping, [0x40000, 0x22_0000 | 3, 2]) == 0)  // INVLPG | LOCAL
    #expect(try h.entry(Self.l1 + 0x40 * 8) == 0x22_0000 | 3)
    #expect(h.engine.vcpus[0].translationFlushes == flushes + 1)
    #expect(try h.call(.updateVAMapping, [0x40000, 0x22_0000 | 1, 1 | 4]) == 0)  // TLB_FLUSH | ALL
    #expect(h.domain.takeTranslationFlush(for: 1))
    #expect(h.record(0x22_0000).writableMappings == 0)
    #expect(try h.call(.updateVAMapping, [0x40000, 0, 0]) == 0)
    #expect(h.engine.vcpus[0].translationFlushes == flushes + 2)
    // UVMF_MULTI: the bitmap at linear 0x10000 (the data frame in this tree) names vCPU 1 only.
    try h.memory.write(UInt64(0b10), at: Self.data)
    #expect(try h.call(.updateVAMapping, [0x40000, 0x22_0000 | 1, 1 | 0x10000]) == 0)
    #expect(h.engine.vcpus[0].translationFlushes == flushes + 2 && h.domain.takeTranslationFlush(for: 1))
    // Refused: a page table mapped writable, flush type 3, a non-canonical or unmapped address.
    #expect(try h.call(.updateVAMapping, [0x40000, Self.l2 | 3, 0]) == Self.einval)
    #expect(try h.call(.updateVAMapping, [0x40000, 0x22_0000 | 3, 3]) == Self.einval)
    #expect(try h.call(.updateVAMapping, [0x8000_0000_0000, 0x22_0000 | 3, 0]) == Self.einval)
    #expect(try h.call(.updateVAMapping, [0x40_0000, 0x22_0000 | 3, 0]) == Self.einval)
    #expect(try h.call(.updateVAMapping, [0x40000, 0x22_0000 | 3, 1 | 0x8000_0000_0000]) == Self.efault)
  }

  // MARK: Consistency

  /// What the records must say, recounted from the pins, the roots and the validated tables.
  static func checkInvariants(_ h: Harness) throws {
    let state = h.domain.memoryState
    var references: [UInt64: Int] = [:]
    var writable: [UInt64: Int] = [:]
    for root in Array(state.kernelRoots.values) + Array(state.userRoots.values) { references[root, default: 0] += 1 }
    for (frame, r) in state.frames.records {
      #expect((r.level == 0) == (r.tableReferences == 0), "frame \(frame): level and references")
      #expect(r.tableReferences == 0 || r.writableMappings == 0, "frame \(frame) is a table mapped writable")
      if r.pinned { references[frame, default: 0] += 1 }
      guard r.tableReferences > 0 else { continue }
      #expect(try h.domain.tableEntries(frame) == r.entries, "frame \(frame): entries as validated")
      for e in r.entries where e & 1 != 0 {
        if r.level == 1 {
          if e & 2 != 0 { writable[PageTableEntry.frame(e), default: 0] += 1 }
        } else {
          references[PageTableEntry.frame(e), default: 0] += 1
          #expect(state.frames[PageTableEntry.frame(e)].level == r.level - 1)
        }
      }
    }
    for (frame, r) in state.frames.records {
      #expect(r.tableReferences == references[frame, default: 0], "frame \(frame): table references")
      #expect(r.writableMappings == writable[frame, default: 0], "frame \(frame): writable mappings")
    }
    for (frame, count) in references { #expect(state.frames[frame].tableReferences == count) }
  }

  @Test func randomRequestsKeepTheBookkeepingConsistent() throws {
    let h = try Harness()
    try h.buildTree()
    let boot = h.engine.vcpus[0].currentSpecialRegisters.cr3
    var g = SeededGenerator(state: 15)
    let frames = Array(UInt64(0x200)..<0x208) + [0x210, 0xFEE00]
    let flags: [UInt64] = [0, 1, 3, 3, 3, 0x83, 1 | 1 << 52, 7]
    var outcomes: [String: Int] = [:]
    for _ in 0..<4000 {
      let frame = g.pick(frames)
      let (kind, result): (String, UInt64)
      switch g.next() % 8 {
      case 0:
        (kind, result) = ("pin", try h.mmuext(raw: UInt32(g.next() % 4), frame))
      case 1:
        (kind, result) = ("unpin", try h.mmuext(.unpinTable, frame))
      case 2:
        let command: Xen.MMUExtOp = g.next() % 2 == 0 ? .newBasePointer : .newUserBasePointer
        (kind, result) = ("root", try h.mmuext(command, frame, cpu: Int(g.next() % 2)))
        for v in h.engine.vcpus { v.currentSpecialRegisters.cr3 = boot }
      default:
        let address = (frame << 12) + (g.next() % 4) * 8
        (kind, result) = ("update", try h.mmuUpdate([(address, g.pick(frames) << 12 | g.pick(flags))]).0)
      }
      outcomes[kind + (result == 0 ? " done" : " refused"), default: 0] += 1
      try Self.checkInvariants(h)
    }
    // Every kind of request both succeeded and was refused, many times.
    for kind in ["pin", "unpin", "root", "update"] {
      #expect(outcomes[kind + " done", default: 0] > 20 && outcomes[kind + " refused", default: 0] > 20, "\(outcomes)")
    }
    // Everything let go: no record is left.
    for f in frames where h.record(f << 12).pinned { #expect(try h.mmuext(.unpinTable, f) == 0) }
    try h.memory.fill(0x20_8000, length: 0x1000)
    for cpu in 0..<2 {
      #expect(try h.mmuext(.newBasePointer, 0x208, cpu: cpu) == 0)
      for v in h.engine.vcpus { v.currentSpecialRegisters.cr3 = boot }
      #expect(try h.mmuext(.newUserBasePointer, 0, cpu: cpu) == 0)
    }
    #expect(h.domain.memoryState.frames.records.keys.sorted() == [0x208])
  }

  // MARK: multicall

  @Test func multicallRunsEveryEntryAndWritesEachResult() throws {
    let h = try Harness()
    try h.buildTree()
    #expect(try h.mmuext(.pinL4Table, Self.l4 >> 12) == 0)
    h.machine.hypercalls.register(100) { _, _ in .block(0) }
    h.machine.hypercalls.register(101) { call, _ in .value(call.arguments[5] + 1) }
    // mmu_update request for entry 0x60.
    try h.memory.write(Self.l1 + 0x60 * 8, at: Self.args + 0x800)
    try h.memory.write(UInt64(0x22_0000 | 3), at: Self.args + 0x808)
    try h.memory.write(Self.l1 + 0x61 * 8, at: Self.args + 0x810)
    try h.memory.write(UInt64(Self.l2 | 3), at: Self.args + 0x818)  // refused
    let entries: [(UInt64, [UInt64])] = [
      (1, [Self.args + 0x800, 1, 0, Self.domidSelf]),  // mmu_update: 0
      (1, [Self.args + 0x810, 1, 0, Self.domidSelf]),  // mmu_update: -EINVAL, the batch goes on
      (99, []),  // no such hypercall: -ENOSYS
      (13, [Self.args, 1]),  // nested multicall: -EINVAL
      (23, []),  // iret: -EINVAL
      (100, []),  // answers with a block: -EINVAL
      (101, [0, 0, 0, 0, 0, 41]),  // the sixth argument arrives
    ]
    for (i, e) in entries.enumerated() {
      let base = Self.args + UInt64(i) * 64
      try h.memory.write(e.0, at: base)
      try h.memory.write(UInt64(0xDEAD), at: base + 8)
      for (j, a) in (e.1 + Array(repeating: 0, count: 6 - e.1.count)).enumerated() {
        try h.memory.write(a, at: base + 16 + UInt64(j) * 8)
      }
    }
    #expect(try h.call(.multicall, [Self.args, UInt64(entries.count)]) == 0)
    let results = try (0..<entries.count).map { try h.memory.read(UInt64.self, at: Self.args + UInt64($0) * 64 + 8) }
    #expect(results == [0, Self.einval, Self.enosys, Self.einval, Self.einval, Self.einval, 42])
    #expect(try h.entry(Self.l1 + 0x60 * 8) == 0x22_0000 | 3 && h.entry(Self.l1 + 0x61 * 8) == 0)
    // The batch: too long, or a list that is not mapped.
    #expect(try h.call(.multicall, [Self.args, 1025]) == Self.einval)
    #expect(try h.call(.multicall, [0x8000_0000_0000, 1]) == Self.efault)
    #expect(try h.call(.multicall, [Self.args, 0]) == 0)
  }
}

import Foundation
import Synchronization
import VMM

/// Whether this host's KVM takes SYSCALL from ring 3 to ring 0, as the architecture says. The
/// deprivileged paravirtual mode (`trivisor run --pv`) relies on it: guest user code's SYSCALL
/// enters the monitor's LSTAR stub at ring 0. A nested host whose KVM emulates guest ring 0
/// instruction by instruction was seen to arrive at LSTAR still at ring 3 (a #PF on the
/// supervisor stub page); there the monitor runs the guest with EFER.SCE clear and emulates
/// SYSCALL from the #UD it raises (`EngineVM.syscallFromRing3EntersRing0`).
///
/// The probe is a tiny VM of its own, run once per process on a thread of its own (a vCPU binds
/// the thread that runs it for kicks): one 64-bit ring-3 page that executes SYSCALL, LSTAR at a
/// supervisor page whose `out %eax, $0xE4` exits to the VMM, no IDT (any exception triple-faults).
/// SYSCALL works when the first exit is that OUT with CPL 0.
public enum KVMSyscallProbe {
  /// What the probe found, once it ran (nil before).
  private static let answer = Mutex<Bool?>(nil)

  /// Whether SYSCALL from ring 3 arrives at ring 0 on this host's KVM: probed at the first call
  /// (a few milliseconds), the same answer afterwards. False when the probe VM cannot be built
  /// or runs into anything but the expected exit.
  public static func syscallEntersRing0(system: KVMSystem) -> Bool {
    answer.withLock { cached in
      if let cached { return cached }
      let result = runProbe(system: system)
      cached = result
      return result
    }
  }

  /// Guest-physical layout of the probe VM (identity-mapped, 4 KiB pages).
  enum Layout {
    static let root: UInt64 = 0x1000
    static let userCode: UInt64 = 0x5000
    static let stub: UInt64 = 0x6000
    static let gdt: UInt64 = 0x7000
    static let tss: UInt64 = 0x7800
    static let userStack: UInt64 = 0x8000
  }

  /// Builds the probe VM and runs it on a thread of its own; waits at most 10 s for it (the
  /// guest executes three instructions; past that the vCPU is kicked and the answer is no).
  static func runProbe(system: KVMSystem) -> Bool {
    let vcpu: KVMVirtualCPU
    do {
      let memory = try GuestMemory(ramSize: 2 << 20)
      try writeGuest(into: memory)
      let vm = try KVMVirtualMachine(system: system, memory: memory, inKernelIRQChip: false)
      vcpu = try vm.createKVMVCPU(index: 0)
      try vcpu.setSpecialRegisters(specialRegisters)
      var r = Registers()
      r.rip = Layout.userCode
      r.rsp = Layout.userStack + 0x1000
      r.rflags = 0x2
      try vcpu.setRegisters(r)
      try vcpu.setMSRs([
        0xC000_0081: 0x0008 << 32,  // STAR: SYSCALL's CS 0x08, SS 0x10
        0xC000_0082: Layout.stub,  // LSTAR
        0xC000_0084: 0x4_7700,  // SFMASK
      ])
    } catch {
      return false
    }
    let result = Mutex<Bool?>(nil)
    let finished = DispatchSemaphore(value: 0)
    let box = ProbeVCPU(vcpu)
    let thread = Thread {
      let entered = Self.arrivesAtRing0(box.vcpu)
      result.withLock { $0 = entered }
      finished.signal()
    }
    thread.start()
    if finished.wait(timeout: .now() + 10) == .timedOut {
      vcpu.kick()
      finished.wait()
      return false
    }
    return result.withLock { $0 } ?? false
  }

  /// Runs the probe guest: true when its first exit is the stub's OUT at CPL 0 with RCX at the
  /// instruction after SYSCALL.
  static func arrivesAtRing0(_ vcpu: KVMVirtualCPU) -> Bool {
    do {
      guard case .hypercall = try vcpu.run(budget: nil) else { return false }
      let s = try vcpu.specialRegisters()
      let r = try vcpu.registers()
      return s.cs.selector & 3 == 0 && r.rcx == Layout.userCode + 2
    } catch {
      return false
    }
  }

  /// The probe's pages: tables mapping the first 64 KiB (the code page user-executable, the stub
  /// page supervisor-only), SYSCALL, the stub and a GDT with a flat ring-0 and ring-3 pair.
  static func writeGuest(into memory: GuestMemory) throws {
    for (table, next) in [(Layout.root, Layout.root + 0x1000), (0x2000, 0x3000), (0x3000, 0x4000)] as [(UInt64, UInt64)]
    {
      try memory.write(next | 0x7, at: table)
    }
    let pages: [(UInt64, UInt64)] = [
      (Layout.userCode, 0x5), (Layout.stub, 0x1), (Layout.gdt, 0x3), (Layout.userStack, 0x7),
    ]
    for (page, flags) in pages { try memory.write(page | flags, at: 0x4000 + (page >> 12) * 8) }
    try memory.write(Layout.userCode, bytes: [0x0F, 0x05, 0xEB, 0xFE])  // syscall; jmp .
    try memory.write(Layout.stub, bytes: KVMHypercallTrap.instruction + [0xF4, 0xEB, 0xFD])  // out; hlt; jmp
    let descriptors: [UInt64] = [
      0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF, 0, 0x00CF_FB00_0000_FFFF, 0x00CF_F300_0000_FFFF,
      0x00AF_FB00_0000_FFFF,
    ]
    for (i, d) in descriptors.enumerated() { try memory.write(d, at: Layout.gdt + UInt64(i * 8)) }
  }

  /// The probe's entry state: 64-bit ring 3 with SYSCALL enabled, an empty IDT.
  static var specialRegisters: SpecialRegisters {
    var s = SpecialRegisters()
    s.cs = Segment(selector: 0x33, base: 0, limit: 0xFFFF_FFFF, type: 0xB, dpl: 3, l: true, g: true)
    let data = Segment(selector: 0x2B, base: 0, limit: 0xFFFF_FFFF, type: 0x3, dpl: 3, db: true, g: true)
    (s.ss, s.ds, s.es, s.fs, s.gs) = (data, data, data, data, data)
    s.tr = Segment(selector: 0x38, base: Layout.tss, limit: 0x67, type: 11, s: false)
    s.gdt = DescriptorTable(base: Layout.gdt, limit: 0x37)
    s.idt = DescriptorTable(base: 0, limit: 0)
    s.cr0 = 0x8005_0033
    s.cr3 = Layout.root
    s.cr4 = 0x620
    s.efer = 0x501  // SCE LME LMA
    return s
  }
}

/// The probe's vCPU handed to its thread (only that thread runs it; the caller only kicks).
private struct ProbeVCPU: @unchecked Sendable {
  let vcpu: KVMVirtualCPU
  init(_ vcpu: KVMVirtualCPU) { self.vcpu = vcpu }
}

extension KVMVirtualMachine {
  /// The host probe's answer (`KVMSyscallProbe`), probed once per process.
  public var syscallFromRing3EntersRing0: Bool { KVMSyscallProbe.syscallEntersRing0(system: system) }
}

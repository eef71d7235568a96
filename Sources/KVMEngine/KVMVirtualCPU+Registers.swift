import CKVM
import VMM

/// The vCPU's registers, special registers and pending events, read and written through
/// `kvm_run` where KVM keeps them there (KVM_CAP_SYNC_REGS) and through vCPU ioctls otherwise.
///
/// Every vCPU ioctl loads and puts the vCPU in the host kernel; on this project's nested hosts
/// that costs about 7 µs (KVM_GET_REGS, KVM_SET_SREGS, ...: `trivisor bench kvm` shows the exit
/// round trip they add to). With a part synced, KVM copies it into `kvm_run` at every exit from
/// KVM_RUN and loads it from there at the next KVM_RUN when it was marked dirty, so reading or
/// writing it costs a memory copy, while KVM's copy at each exit costs well under a microsecond
/// (`trivisor bench kvm`'s port-I/O round trip did not move measurably with it; a hypercall
/// round trip, which reads and writes the registers, went from 78-105 µs to 24-27 µs: `trivisor
/// bench hypercall --engine kvm`, 2026-12-06, loaded host). Every vCPU syncs its registers and
/// special registers (`defaultSyncedState`); the trap engine's also its events, which it checks
/// after every kick.
extension KVMVirtualCPU {
  /// What a new vCPU keeps in `kvm_run` (where the host supports it).
  public static let defaultSyncedState: SyncedState = [.registers, .specialRegisters]

  /// The parts of the vCPU's state KVM can keep in `kvm_run`.
  public struct SyncedState: OptionSet, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// The general registers, RIP and RFLAGS (`kvm_regs`).
    public static let registers = SyncedState(rawValue: CKVM_SYNC_X86_REGS)
    /// Segments, descriptor tables, control registers, EFER and the APIC base (`kvm_sregs`).
    public static let specialRegisters = SyncedState(rawValue: CKVM_SYNC_X86_SREGS)
    /// Pending and injected exceptions, interrupts and NMIs (`kvm_vcpu_events`; read only here).
    public static let events = SyncedState(rawValue: CKVM_SYNC_X86_EVENTS)
  }

  /// The parts KVM keeps in `kvm_run` for this vCPU.
  public var syncedState: SyncedState { synced }

  /// Has KVM keep `parts` in `kvm_run` (those the host supports: `KVMCapabilities.syncedState`)
  /// and the rest behind the ioctls. A part that stops being synced is written back first if it
  /// was changed since the last KVM_RUN; a part that starts being synced is read once.
  public func setSyncedState(_ parts: SyncedState) throws(EngineError) {
    let parts = parts.intersection(vm.system.capabilities.syncedState)
    try writeBackSyncedChanges(synced.subtracting(parts))
    let arriving = parts.subtracting(synced)
    if arriving.contains(.registers) {
      try check(ckvm_ioctl_ptr(fd, CKVM_GET_REGS, ckvm_run_synced_regs(run)), "KVM_GET_REGS")
    }
    if arriving.contains(.specialRegisters) {
      try check(ckvm_ioctl_ptr(fd, CKVM_GET_SREGS, ckvm_run_synced_sregs(run)), "KVM_GET_SREGS")
    }
    if arriving.contains(.events) {
      try check(ckvm_ioctl_ptr(fd, CKVM_GET_VCPU_EVENTS, ckvm_run_synced_events(run)), "KVM_GET_VCPU_EVENTS")
    }
    synced = parts
    ckvm_run_set_valid_regs(run, parts.rawValue)
  }

  /// Writes the synced parts among `parts` that were changed since the last KVM_RUN to KVM now,
  /// through their ioctls, so an ioctl that follows sees them.
  func writeBackSyncedChanges(_ parts: SyncedState) throws(EngineError) {
    let dirty = SyncedState(rawValue: ckvm_run_dirty_regs(run)).intersection(parts)
    if dirty.isEmpty { return }
    if dirty.contains(.registers) {
      try check(ckvm_ioctl_ptr(fd, CKVM_SET_REGS, ckvm_run_synced_regs(run)), "KVM_SET_REGS")
    }
    if dirty.contains(.specialRegisters) {
      try check(ckvm_ioctl_ptr(fd, CKVM_SET_SREGS, ckvm_run_synced_sregs(run)), "KVM_SET_SREGS")
    }
    ckvm_run_set_dirty_regs(run, ckvm_run_dirty_regs(run) & ~dirty.rawValue)
  }

  private func markChanged(_ part: SyncedState) {
    ckvm_run_set_dirty_regs(run, ckvm_run_dirty_regs(run) | part.rawValue)
  }

  // MARK: Registers

  public func registers() throws(EngineError) -> Registers {
    var k = kvm_regs()
    if synced.contains(.registers) {
      k = ckvm_run_synced_regs(run).pointee
    } else {
      try check(ckvm_ioctl_ptr(fd, CKVM_GET_REGS, &k), "KVM_GET_REGS")
    }
    var r = Registers()
    r.rax = k.rax
    r.rbx = k.rbx
    r.rcx = k.rcx
    r.rdx = k.rdx
    r.rsi = k.rsi
    r.rdi = k.rdi
    r.rsp = k.rsp
    r.rbp = k.rbp
    r.r8 = k.r8
    r.r9 = k.r9
    r.r10 = k.r10
    r.r11 = k.r11
    r.r12 = k.r12
    r.r13 = k.r13
    r.r14 = k.r14
    r.r15 = k.r15
    r.rip = k.rip
    r.rflags = k.rflags
    return r
  }

  public func setRegisters(_ r: Registers) throws(EngineError) {
    var k = kvm_regs(
      rax: r.rax, rbx: r.rbx, rcx: r.rcx, rdx: r.rdx, rsi: r.rsi, rdi: r.rdi, rsp: r.rsp, rbp: r.rbp,
      r8: r.r8, r9: r.r9, r10: r.r10, r11: r.r11, r12: r.r12, r13: r.r13, r14: r.r14, r15: r.r15,
      rip: r.rip, rflags: r.rflags | 0x2)
    if synced.contains(.registers) {
      ckvm_run_synced_regs(run).pointee = k
      markChanged(.registers)
    } else {
      try check(ckvm_ioctl_ptr(fd, CKVM_SET_REGS, &k), "KVM_SET_REGS")
    }
  }

  // MARK: Special registers

  /// KVM's whole `kvm_sregs`, from `kvm_run` when synced.
  func rawSpecialRegisters() throws(EngineError) -> kvm_sregs {
    if synced.contains(.specialRegisters) { return ckvm_run_synced_sregs(run).pointee }
    var k = kvm_sregs()
    try check(ckvm_ioctl_ptr(fd, CKVM_GET_SREGS, &k), "KVM_GET_SREGS")
    return k
  }

  /// Loads `k` as KVM's `kvm_sregs` (at the next KVM_RUN when synced). Without KVM's local APIC
  /// the TPR KVM loads at entry is `kvm_run.cr8`, which KVM rewrites at every exit: it gets CR8
  /// too, or the CR8 set here would be overwritten.
  func setRawSpecialRegisters(_ k: kvm_sregs) throws(EngineError) {
    if synced.contains(.specialRegisters) {
      ckvm_run_synced_sregs(run).pointee = k
      markChanged(.specialRegisters)
    } else {
      var k = k
      try check(ckvm_ioctl_ptr(fd, CKVM_SET_SREGS, &k), "KVM_SET_SREGS")
    }
    if !vm.hasInKernelIRQChip { ckvm_run_set_cr8(run, k.cr8) }
  }

  public func specialRegisters() throws(EngineError) -> SpecialRegisters {
    let k = try rawSpecialRegisters()
    var s = SpecialRegisters()
    s.cs = Segment(k.cs)
    s.ds = Segment(k.ds)
    s.es = Segment(k.es)
    s.fs = Segment(k.fs)
    s.gs = Segment(k.gs)
    s.ss = Segment(k.ss)
    s.tr = Segment(k.tr)
    s.ldt = Segment(k.ldt)
    s.gdt = DescriptorTable(base: k.gdt.base, limit: k.gdt.limit)
    s.idt = DescriptorTable(base: k.idt.base, limit: k.idt.limit)
    s.cr0 = k.cr0
    s.cr2 = k.cr2
    s.cr3 = k.cr3
    s.cr4 = k.cr4
    // With the VMM's local APIC the next KVM_RUN loads CR8 from kvm_run (`taskPriority`).
    s.cr8 = vm.hasInKernelIRQChip ? k.cr8 : ckvm_run_cr8(run)
    s.efer = k.efer
    s.apicBase = k.apic_base
    return s
  }

  /// Sets segments, descriptor tables, control registers and EFER. The APIC base and the pending
  /// interrupt bitmap stay as KVM has them.
  public func setSpecialRegisters(_ s: SpecialRegisters) throws(EngineError) {
    var k = try rawSpecialRegisters()
    k.cs = kvm_segment(s.cs)
    k.ds = kvm_segment(s.ds)
    k.es = kvm_segment(s.es)
    k.fs = kvm_segment(s.fs)
    k.gs = kvm_segment(s.gs)
    k.ss = kvm_segment(s.ss)
    k.tr = kvm_segment(s.tr)
    k.ldt = kvm_segment(s.ldt)
    k.gdt = kvm_dtable(base: s.gdt.base, limit: s.gdt.limit, padding: (0, 0, 0))
    k.idt = kvm_dtable(base: s.idt.base, limit: s.idt.limit, padding: (0, 0, 0))
    k.cr0 = s.cr0
    k.cr2 = s.cr2
    k.cr3 = s.cr3
    k.cr4 = s.cr4
    k.cr8 = s.cr8
    k.efer = s.efer
    try setRawSpecialRegisters(k)
  }

  // MARK: Events

  /// KVM's pending and injected exceptions, interrupts and NMIs (from `kvm_run` when synced).
  public func pendingEvents() throws(EngineError) -> kvm_vcpu_events {
    if synced.contains(.events) { return ckvm_run_synced_events(run).pointee }
    var events = kvm_vcpu_events()
    try check(ckvm_ioctl_ptr(fd, CKVM_GET_VCPU_EVENTS, &events), "KVM_GET_VCPU_EVENTS")
    return events
  }

  /// Sets KVM's pending events (`KVM_SET_VCPU_EVENTS`), keeping the synced copy current.
  func setPendingEvents(_ events: kvm_vcpu_events) throws(EngineError) {
    var events = events
    try check(ckvm_ioctl_ptr(fd, CKVM_SET_VCPU_EVENTS, &events), "KVM_SET_VCPU_EVENTS")
    if synced.contains(.events) { ckvm_run_synced_events(run).pointee = events }
  }
}

extension Segment {
  init(_ k: kvm_segment) {
    self.init(
      selector: k.selector, base: k.base, limit: k.limit, type: k.type, s: k.s != 0, dpl: k.dpl,
      present: k.present != 0, l: k.l != 0, db: k.db != 0, g: k.g != 0)
    avl = k.avl != 0
    unusable = k.unusable != 0
  }
}

extension kvm_segment {
  init(_ s: Segment) {
    self.init(
      base: s.base, limit: s.limit, selector: s.selector, type: s.type, present: s.present ? 1 : 0,
      dpl: s.dpl, db: s.db ? 1 : 0, s: s.s ? 1 : 0, l: s.l ? 1 : 0, g: s.g ? 1 : 0, avl: s.avl ? 1 : 0,
      unusable: s.unusable ? 1 : 0, padding: 0)
  }
}

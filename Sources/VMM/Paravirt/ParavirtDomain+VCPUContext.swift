/// Secondary vCPUs of a deprivileged guest, as Xen starts them: `vcpu_op(initialise, v, ctx)`
/// hands over a whole `vcpu_guest_context` (registers, trap table, callbacks, kernel stack, root
/// tables, segment bases), `vcpu_op(up, v)` runs it, `vcpu_op(down, v)` takes the vCPU offline
/// until the next `up`, which resumes it where it stopped. The runner of a vCPU that is down waits
/// as an application processor waits for its start-up IPI: it takes no host CPU.
extension ParavirtDomain {
  /// Byte offsets in Xen's x86-64 `vcpu_guest_context` (5168 bytes).
  enum GuestContextLayout {
    /// The whole structure.
    static let size = 5168
    /// `cpu_user_regs user_regs` (200 bytes), after the 512-byte FPU area and `flags`.
    static let userRegisters = 520
    /// `trap_info trap_ctxt[256]`, 16 bytes each.
    static let trapTable = 720
    /// `kernel_ss`, then `kernel_sp`.
    static let kernelStackSegment = 4968
    /// `ctrlreg[8]`: CR3 (the kernel's root) at index 3, the user root at index 1.
    static let controlRegisters = 4984
    /// `event_callback_eip`, then `failsafe_callback_eip` and `syscall_callback_eip`.
    static let eventCallback = 5112
    /// `fs_base`, then `gs_base_kernel` and `gs_base_user`.
    static let fsBase = 5144
    /// `rip` in `cpu_user_regs`, after the 15 general registers (r15, r14, r13, r12, rbp, rbx, r11,
    /// r10, r9, r8, rax, rcx, rdx, rsi, rdi at 0-112) and `error_code`/`entry_vector`.
    static let rip = 128
    /// `rflags` in `cpu_user_regs`.
    static let rflags = 144
    /// `rsp` in `cpu_user_regs`.
    static let rsp = 152
  }

  /// RFLAGS bits a context may set: the arithmetic flags, TF and DF. IF is the guest's upcall
  /// mask, IOPL stays 0.
  static let contextFlagsMask: UInt64 = 0xDD5

  /// `vcpu_op(initialise, v, ctx)`: validates the context at guest address `pointer` and keeps it
  /// for the next `up`. -EEXIST for a vCPU initialised before (vCPU 0 by the boot), -EINVAL for a
  /// non-canonical address or a root table that does not validate, -EFAULT for a bad pointer.
  func initialiseVCPU(_ v: Int, context pointer: UInt64, caller: HypercallCaller) throws(HypercallFailure) -> UInt64 {
    guard let monitor else { throw HypercallFailure(.notImplemented) }
    guard !vcpus[v].initialised else { throw HypercallFailure(.exists) }
    typealias L = GuestContextLayout
    let c = try read(L.size, at: pointer, for: caller)
    func word(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(c[at + $1]) << (8 * $1) } }
    func canonical(_ a: UInt64) -> Bool { Int64(bitPattern: a << 16) >> 16 == Int64(bitPattern: a) }
    var traps: [UInt8: ParavirtMonitor.TrapEntry] = [:]
    for n in 0..<256 {
      let at = L.trapTable + 16 * n
      if let (vector, entry) = try Self.trapEntry(c[at..<at + 16]) { traps[vector] = entry }
    }
    let u = L.userRegisters
    let callbacks = (0..<3).map { word(L.eventCallback + 8 * $0) }
    let bases = (0..<3).map { word(L.fsBase + 8 * $0) }
    let kernelStack = word(L.kernelStackSegment + 8)
    guard ([word(u + L.rip), word(u + L.rsp), kernelStack] + callbacks + bases).allSatisfy(canonical) else {
      throw HypercallFailure(.invalid)
    }
    let kernelRoot = word(L.controlRegisters + 3 * 8) >> 12
    let userRoot = word(L.controlRegisters + 1 * 8) >> 12
    try adoptKernelRoot(kernelRoot, vcpu: v)
    try setUserBase(userRoot, vcpu: v)

    var r = Registers()
    let general = (0..<15).map { word(u + 8 * $0) }
    (r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10) =
      (general[0], general[1], general[2], general[3], general[4], general[5], general[6], general[7])
    (r.r9, r.r8, r.rax, r.rcx, r.rdx, r.rsi, r.rdi) =
      (general[8], general[9], general[10], general[11], general[12], general[13], general[14])
    r.rip = word(u + L.rip)
    r.rsp = word(u + L.rsp)
    r.rflags = word(u + L.rflags) & Self.contextFlagsMask | 0x2
    var s = monitor.adjusted(ParavirtMonitor.specialRegisters(vcpu: v, cr3: kernelRoot << 12))
    s.fs.base = bases[0]
    s.gs.base = bases[1]
    monitor.vcpus[v] = ParavirtMonitor.VCPUState()
    monitor.vcpus[v].traps = traps
    monitor.vcpus[v].inactiveGSBase = bases[2]
    vcpus[v].eventCallback = callbacks[0]
    vcpus[v].failsafeCallback = callbacks[1]
    vcpus[v].syscallCallback = callbacks[2]
    vcpus[v].kernelStackSegment = UInt16(truncatingIfNeeded: word(L.kernelStackSegment))
    vcpus[v].kernelStackPointer = kernelStack
    vcpus[v].inKernelMode = true
    vcpus[v].initialised = true
    vcpus[v].startContext = BootState(
      mode: .long64, registers: r, specialRegisters: s, msrs: ParavirtMonitor.msrs,
      summary: ["vCPU \(v) initialised at 0x\(String(r.rip, radix: 16))"])
    setUpcallMask(v, true)
    return 0
  }

  /// `vcpu_op(up, v)`: runs an initialised vCPU (its new context, or where it went down); 0 for
  /// one already up, -EINVAL for one never initialised, -ENOSYS when the engine's interrupt
  /// controller holds the application processors (`--irqchip kernel`).
  func bringUp(_ v: Int) throws(HypercallFailure) -> UInt64 {
    guard vcpus[v].initialised else { throw HypercallFailure(.invalid) }
    guard !vcpus[v].isUp else { return 0 }
    guard machine.pic != nil, machine.runners.indices.contains(v) else { throw HypercallFailure(.notImplemented) }
    vcpus[v].isUp = true
    machine.runners[v].startParavirtual(vcpus[v].startContext)
    vcpus[v].startContext = nil
    return 0
  }

  /// `vcpu_op(down, v)`: takes vCPU `v` offline at its next exit (at once when it is the caller).
  /// 0 for one already down; -EINVAL for the last vCPU up, which would leave nothing to run (Xen
  /// lets a domain do that and hang; the VMM never hangs).
  func takeDown(_ v: Int) throws(HypercallFailure) -> UInt64 {
    guard vcpus[v].isUp else { return 0 }
    guard vcpus.contains(where: { $0.index != v && $0.isUp }) else { throw HypercallFailure(.invalid) }
    guard machine.runners.indices.contains(v) else { throw HypercallFailure(.notImplemented) }
    vcpus[v].isUp = false
    machine.runners[v].stopParavirtual()
    return 0
  }
}

import CKVM
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// One KVM vCPU: `KVM_CREATE_VCPU`, its mmap'd `kvm_run`, registers, CPUID, interrupt injection
/// and `KVM_RUN`, with `kvm_run` exits translated into the VMM's `VMExit`.
///
/// Kicks: `kick()` sends `KVMVirtualCPU.kickSignal` to the thread in `run()`; the signal's handler
/// sets `kvm_run.immediate_exit`, so `KVM_RUN` returns `EINTR` whether the signal lands inside it or
/// just before it, and `run()` returns `.kicked` (`lastRunEnteredGuest` tells the two apart).
public final class KVMVirtualCPU: VirtualCPU, @unchecked Sendable {
  /// The signal that interrupts `KVM_RUN` (installed without `SA_RESTART`): a real-time signal
  /// reserved for it (SIGRTMIN + 6), so signals from outside never look like kicks.
  public static let kickSignal = ckvm_kick_signal_number()
  private static let handlerInstalled: Bool = ckvm_install_kick_handler(kickSignal) == 0

  public let engineName = "kvm"
  public let vm: KVMVirtualMachine
  public let id: UInt32
  /// The vCPU file descriptor (vCPU ioctls).
  public let fd: Int32
  private let runMapping: UnsafeMutableRawPointer
  let run: UnsafeMutablePointer<kvm_run>
  private let mapSize: Int
  /// pthread_t of the thread in `run()`, 0 before the first run (read by `kick()` on any thread).
  private let runThread: UnsafeMutablePointer<UInt>
  private var boundThread: UInt = 0

  /// A `REP INS`/`REP OUTS` exit with `count` > 1 is handed to the VMM one element at a time.
  private var stringIO: (exit: ckvm_io_exit, next: UInt32)?
  /// Where `complete(.value)` writes the answer to the last `IN` or MMIO read (nil: nothing waits).
  private var pendingRead: (pointer: UnsafeMutableRawPointer, size: Int)?
  /// The last exit was a hypercall trap (`KVMHypercallTrap`): `complete(.value)` sets RAX.
  private var pendingHypercall = false
  /// The last exit was RDMSR or WRMSR: `complete(.fault)` makes KVM raise #GP.
  private var awaitingMSR = false
  /// An NMI was injected that KVM may still hold pending (checked at HLT exits).
  private var nmiMayBePending = false
  /// The state KVM keeps in `kvm_run` for this vCPU (`setSyncedState`).
  var synced: SyncedState = []
  /// Whether the last `run()` entered the guest. False when it returned `.kicked` because the kick
  /// had landed before it (while the caller handled the previous exit): `KVM_RUN` then sees
  /// `immediate_exit` and returns at once, the guest's registers as they were loaded and no guest
  /// instruction executed. A kick that lands inside `KVM_RUN` counts as entered.
  public private(set) var lastRunEnteredGuest = false
  /// Written to `kvm_run.exit_reason` before each `KVM_RUN`: KVM writes the field whenever it went
  /// on past its `immediate_exit` check, and leaves it alone when it returned there.
  private static let exitReasonNotWritten = UInt32.max
  /// The CPUID table as created (KVM's supported leaves with this vCPU's identity and APIC ID).
  private var baseCPUID: [kvm_cpuid_entry2] = []
  /// The MSR exits KVM delivers (`KVMVirtualMachine.trapMSRs`), when the controls asked for some.
  private var msrExitsHonoured = false
  /// KVM_GET_TSC_KHZ, asked once.
  private lazy var tscKilohertz: UInt64 = {
    let r = ckvm_ioctl(fd, CKVM_GET_TSC_KHZ, 0)
    return r > 0 ? UInt64(r) : 1_000_000
  }()

  /// MSR exit controls take effect (with the VMM's interrupt controllers only: KVM's in-kernel
  /// local APIC answers the APIC MSRs itself) through the VM's MSR filter; CPUID then advertises
  /// x2APIC and the TSC-deadline timer exactly when their MSRs reach the VMM.
  public var exitControls = ExitControls() {
    didSet {
      let wantsMSRs = !exitControls.msrReadExits.isEmpty || !exitControls.msrWriteExits.isEmpty
      if wantsMSRs && !vm.hasInKernelIRQChip {
        do throws(EngineError) {
          try vm.trapMSRs(exitControls.msrReadExits.union(exitControls.msrWriteExits))
          msrExitsHonoured = true
        } catch {
          msrExitsHonoured = false
        }
        try? applyCPUID()
      }
      // With KVM's local APIC, the MSRs outside it (the hypercall page's) still reach the VMM.
      let outsideAPIC = vm.hasInKernelIRQChip ? Self.outsideKernelAPIC(exitControls) : []
      kernelIRQChipTrappedMSRs = []
      if !outsideAPIC.isEmpty, (try? vm.trapMSRs(outsideAPIC)) != nil { kernelIRQChipTrappedMSRs = outsideAPIC }
      unsupportedExitControls = Self.unsupported(
        exitControls, kernelIRQChip: vm.hasInKernelIRQChip, msrExits: msrExitsHonoured,
        trapped: kernelIRQChipTrappedMSRs)
      allPortsExit = exitControls.exitOnAllPorts
    }
  }
  /// With the in-kernel irqchip: the MSRs outside KVM's local APIC whose exits reach the VMM.
  private var kernelIRQChipTrappedMSRs: Set<UInt32> = []
  /// `exitControls.exitOnAllPorts`, kept apart so the hot path does not copy the controls.
  private var allPortsExit = true
  public private(set) var unsupportedExitControls: [String] = []
  public var instructionsRetired: UInt64? { nil }

  init(vm: KVMVirtualMachine, id: UInt32, identity: GuestCPUIdentity? = nil) throws(EngineError) {
    guard Self.handlerInstalled else { throw EngineError("cannot install the vCPU kick signal handler") }
    self.vm = vm
    self.id = id
    let fd = ckvm_ioctl(vm.fd, CKVM_CREATE_VCPU, UInt(id))
    guard fd >= 0 else { throw EngineError("KVM_CREATE_VCPU failed: \(errnoText(-fd))") }
    mapSize = vm.system.vcpuMapSize
    guard let p = mmap(nil, mapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
      let e = errno
      close(fd)
      throw EngineError("mmap of kvm_run failed: \(errnoText(e))")
    }
    self.fd = fd
    runMapping = p
    run = p.assumingMemoryBound(to: kvm_run.self)
    runThread = .allocate(capacity: 1)
    runThread.initialize(to: 0)
    do throws(EngineError) {
      var cpuid = try vm.system.supportedCPUID()
      if let identity { Self.present(identity, in: &cpuid) }
      Self.setAPICID(id, in: &cpuid)
      Self.presentHypervisorLeaves(in: &cpuid)
      baseCPUID = cpuid
      try applyCPUID()
      var fpu = try fpuState()
      fpu.fcw = 0x37F
      fpu.mxcsr = 0x1F80
      try setFPU(fpu)
      if vm.hasInKernelIRQChip {
        try check(ckvm_setup_lapic_virtual_wire(fd), "KVM_SET_LAPIC (virtual wire)")
      }
      try setSyncedState(Self.defaultSyncedState)
    } catch {
      munmap(p, mapSize)
      close(fd)
      runThread.deallocate()
      throw error
    }
    unsupportedExitControls = Self.unsupported(exitControls, kernelIRQChip: vm.hasInKernelIRQChip, msrExits: false)
  }

  /// Sets the vCPU's CPUID (`KVM_SET_CPUID2`, before the first run): the base table, with x2APIC
  /// (CPUID.1:ECX[21]) and the TSC-deadline timer (ECX[24]) advertised where they work. With the
  /// in-kernel irqchip KVM's local APIC has both (the latter when KVM_CAP_TSC_DEADLINE_TIMER);
  /// with the VMM's, only when their MSRs exit to the VMM (`exitControls`).
  private func applyCPUID() throws(EngineError) {
    let x2APIC: Bool
    let tscDeadline: Bool
    if vm.hasInKernelIRQChip {
      x2APIC = baseCPUID.contains { $0.function == 1 && $0.ecx & (1 << 21) != 0 }
      tscDeadline = vm.system.capabilities.tscDeadlineTimer
    } else {
      let reads = exitControls.msrReadExits
      let writes = exitControls.msrWriteExits
      x2APIC =
        msrExitsHonoured && reads.isSuperset(of: 0x800...0x8FF) && writes.isSuperset(of: 0x800...0x8FF)
        && reads.contains(0x1B) && writes.contains(0x1B)
      tscDeadline = msrExitsHonoured && reads.contains(0x6E0) && writes.contains(0x6E0)
    }
    var cpuid = baseCPUID
    for i in cpuid.indices where cpuid[i].function == 1 {
      cpuid[i].ecx = cpuid[i].ecx & ~(1 << 21 | 1 << 24) | (x2APIC ? 1 << 21 : 0) | (tscDeadline ? 1 << 24 : 0)
    }
    try check(ckvm_set_cpuid2(fd, cpuid, UInt32(cpuid.count)), "KVM_SET_CPUID2")
  }

  deinit {
    if boundThread == ckvm_current_thread() { ckvm_bind_thread_run(nil) }
    ckvm_atomic_store(runThread, 0)
    munmap(runMapping, mapSize)
    close(fd)
    runThread.deallocate()
  }

  // MARK: - Running

  public func run(budget: UInt64?) throws(EngineError) -> VMExit {
    lastRunEnteredGuest = false
    if let pending = stringIO { return nextStringElement(pending) }
    let me = ckvm_current_thread()
    if me != boundThread {
      ckvm_bind_thread_run(run)
      ckvm_atomic_store(runThread, me)
      boundThread = me
    }
    while true {
      run.pointee.exit_reason = Self.exitReasonNotWritten
      let r = ckvm_run(fd)
      if run.pointee.exit_reason != Self.exitReasonNotWritten { lastRunEnteredGuest = true }
      if r < 0 {
        if r == -EINTR || r == -EAGAIN {
          ckvm_run_set_immediate_exit(run, 0)
          return .kicked
        }
        throw EngineError("KVM_RUN failed: \(errnoText(-r))")
      }
      switch ckvm_run_exit_reason(run) {
      case CKVM_EXIT_IO:
        let io = ckvm_run_io(run)
        if !allPortsExit && !exitControls.ioExitPorts.contains(io.port) {
          // The I/O bitmap says this port does not exit: answer like an empty bus, stay in the guest.
          if io.direction == CKVM_EXIT_IO_IN {
            memset(runMapping + Int(io.data_offset), 0xFF, Int(io.size) * Int(io.count))
          }
          continue
        }
        if io.port == KVMHypercallTrap.port && io.direction == CKVM_EXIT_IO_OUT && io.size == 4 && io.count == 1 {
          try retireHypercallTrap()
          pendingHypercall = true
          pendingRead = nil
          return .hypercall
        }
        return nextStringElement((io, 0))
      case CKVM_EXIT_MMIO:
        let m = ckvm_run_mmio(run)
        let data = UnsafeMutableRawPointer(ckvm_run_mmio_data(run)!)
        let size = Int(min(m.len, 8))
        if m.is_write != 0 {
          var value: UInt64 = 0
          withUnsafeMutableBytes(of: &value) { $0.baseAddress!.copyMemory(from: data, byteCount: size) }
          pendingRead = nil
          return .mmio(MMIOAccess(address: m.phys_addr, size: size, isWrite: true, value: UInt64(littleEndian: value)))
        }
        pendingRead = (data, size)
        return .mmio(MMIOAccess(address: m.phys_addr, size: size, isWrite: false))
      case CKVM_EXIT_HLT:
        // With the VMM's irqchip KVM leaves the guest at HLT even when it holds an NMI the guest
        // can take now (one injected while NMIs were blocked): enter again to deliver it.
        if nmiMayBePending, try takeablePendingNMI() { continue }
        return .halt
      case CKVM_EXIT_IRQ_WINDOW_OPEN:
        return .interruptWindow
      case CKVM_EXIT_SET_TPR:
        // A MOV to CR8 lowered it (the VMM's local APIC: KVM intercepts CR8 writes). Only one
        // below the threshold can let an interrupt in; the others go on in the guest.
        if ckvm_run_cr8(run) < UInt64(taskPriorityThreshold) { return .interruptWindow }
        continue
      case CKVM_EXIT_INTR:
        ckvm_run_set_immediate_exit(run, 0)
        return .kicked
      case CKVM_EXIT_SHUTDOWN:
        return .shutdown(.tripleFault)
      case CKVM_EXIT_SYSTEM_EVENT:
        return .shutdown(.unspecified)
      case CKVM_EXIT_X86_RDMSR:
        pendingRead = (UnsafeMutableRawPointer(ckvm_run_msr_data(run)), 8)
        awaitingMSR = true
        ckvm_run_msr_set_error(run, 0)
        return .msrRead(index: ckvm_run_msr_index(run))
      case CKVM_EXIT_X86_WRMSR:
        pendingRead = nil
        awaitingMSR = true
        ckvm_run_msr_set_error(run, 0)
        return .msrWrite(index: ckvm_run_msr_index(run), value: ckvm_run_msr_data(run).pointee)
      case CKVM_EXIT_HYPERCALL:
        pendingRead = (UnsafeMutableRawPointer(ckvm_run_hypercall_ret(run)), 8)
        return .hypercall
      case CKVM_EXIT_EXCEPTION:
        let vector = UInt8(truncatingIfNeeded: ckvm_run_exception(run))
        return .exception(vector: vector, errorCode: ckvm_run_exception_error(run))
      case CKVM_EXIT_FAIL_ENTRY:
        let reason = ckvm_run_fail_entry_reason(run)
        return .internalError(
          report(
            "KVM_EXIT_FAIL_ENTRY: the CPU refused to enter the guest (hardware entry failure reason 0x\(String(reason, radix: 16))"
              + (reason == 0x21 ? ": invalid guest state)" : ")")))
      case CKVM_EXIT_INTERNAL_ERROR:
        return .internalError(report(internalErrorText()))
      case let other:
        return .internalError(report("unexpected KVM exit reason \(other)"))
      }
    }
  }

  /// Element `next` of a (possibly repeated) port-I/O exit.
  private func nextStringElement(_ pending: (exit: ckvm_io_exit, next: UInt32)) -> VMExit {
    let io = pending.exit
    let size = Int(io.size)
    let data = runMapping + Int(io.data_offset) + Int(pending.next) * size
    stringIO = pending.next + 1 < io.count ? (io, pending.next + 1) : nil
    if io.direction == CKVM_EXIT_IO_OUT {
      pendingRead = nil
      let value: UInt32
      switch size {
      case 1: value = UInt32(data.load(as: UInt8.self))
      case 2: value = UInt32(data.loadUnaligned(as: UInt16.self))
      default: value = data.loadUnaligned(as: UInt32.self)
      }
      return .io(PortAccess(port: io.port, size: size, isWrite: true, value: value))
    }
    pendingRead = (data, size)
    return .io(PortAccess(port: io.port, size: size, isWrite: false))
  }

  /// Answers the last exit. `.fault` is possible after RDMSR/WRMSR only (KVM then injects #GP,
  /// whatever the vector asked for: its MSR exits know no other fault).
  public func complete(_ response: ExitResponse) throws(EngineError) {
    let msr = awaitingMSR
    awaitingMSR = false
    if pendingHypercall {
      pendingHypercall = false
      if case .value(let v) = response {
        var r = try registers()
        r.rax = v
        try setRegisters(r)
      }
      return
    }
    if msr, case .fault = response {
      ckvm_run_msr_set_error(run, 1)
      pendingRead = nil
      return
    }
    switch response {
    case .none, .cpuid:
      pendingRead = nil
    case .value(let v):
      guard let (pointer, size) = pendingRead else { return }
      var le = v.littleEndian
      withUnsafeBytes(of: &le) { pointer.copyMemory(from: $0.baseAddress!, byteCount: min(size, 8)) }
      pendingRead = nil
    case .fault(let vector, _):
      throw EngineError("the kvm engine cannot make an exiting instruction fault (vector \(vector))")
    }
  }

  private func internalErrorText() -> String {
    let sub = ckvm_run_internal_suberror(run)
    let names: [UInt32: String] = [
      1: "emulation failure (KVM could not emulate an instruction)",
      2: "simultaneous exceptions",
      3: "event delivery failed",
      4: "unexpected exit reason",
    ]
    var text = "KVM_EXIT_INTERNAL_ERROR: \(names[sub] ?? "suberror \(sub)")"
    let n = min(ckvm_run_internal_ndata(run), 16)
    if n > 0 {
      text +=
        "; data " + (0..<n).map { "0x" + String(ckvm_run_internal_data(run, $0), radix: 16) }.joined(separator: " ")
    }
    return text
  }

  /// An internal-error report with the registers and the bytes at RIP (read through the guest's
  /// page tables when paging is on).
  public func report(_ reason: String) -> InternalErrorReport {
    let regs = try? registers()
    let sregs = try? specialRegisters()
    var bytes: [UInt8] = []
    if let regs, let sregs {
      bytes = GuestPageWalker(memory: vm.memory, specialRegisters: sregs).bytesAtRIP(regs)
    }
    return InternalErrorReport(reason: reason, registers: regs, specialRegisters: sregs, bytesAtRIP: bytes)
  }

  // MARK: - Interrupts

  public var readyForInterruptInjection: Bool { ckvm_run_ready_for_interrupt_injection(run) != 0 }

  /// CR8. With the VMM's local APIC it is `kvm_run.cr8`: KVM stores the guest's CR8 there at every
  /// exit and loads it back at every `KVM_RUN` (no system call either way). With KVM's local APIC,
  /// whose TPR it is, the special registers (a system call; the run loop does not use it then).
  public var taskPriority: UInt8 {
    get {
      if !vm.hasInKernelIRQChip { return UInt8(truncatingIfNeeded: ckvm_run_cr8(run) & 15) }
      return UInt8(truncatingIfNeeded: ((try? specialRegisters())?.cr8 ?? 0) & 15)
    }
    set {
      if !vm.hasInKernelIRQChip { return ckvm_run_set_cr8(run, UInt64(newValue & 15)) }
      guard var s = try? specialRegisters() else { return }
      s.cr8 = UInt64(newValue & 15)
      try? setSpecialRegisters(s)
    }
  }

  /// With the VMM's local APIC, KVM on VMX and SVM intercepts CR8 writes and reports each that
  /// lowers CR8 (`KVM_EXIT_SET_TPR`); `run` returns `.interruptWindow` for one below the threshold
  /// and re-enters the guest for the others. Where KVM emulates the guest's ring 0 itself (the
  /// PVM backend of this project's hosts) no such exit comes: a lowered CR8 reaches the VMM at
  /// the next exit of any kind, and what it admits is delivered then. (Single-stepping the guest
  /// while the threshold is armed was tried there: the first entry after the injection reported
  /// HLT at an ordinary instruction.) KVM's own local APIC needs none (it links CR8 itself).
  public var taskPriorityThreshold: UInt8 = 0

  /// The guest's RFLAGS.IF as of the last exit.
  public var interruptFlag: Bool { ckvm_run_if_flag(run) != 0 }

  /// `KVM_NMI`: KVM latches the NMI and delivers it when the guest's NMI blocking allows.
  public func injectNMI() throws(EngineError) {
    try check(ckvm_ioctl(fd, CKVM_NMI, 0), "KVM_NMI")
    nmiMayBePending = true
  }

  /// Whether KVM holds an NMI that is not blocked (`KVM_GET_VCPU_EVENTS`); none pending clears
  /// `nmiMayBePending`.
  private func takeablePendingNMI() throws(EngineError) -> Bool {
    let events = try pendingEvents()
    if events.nmi.pending == 0 && events.nmi.injected == 0 { nmiMayBePending = false }
    return events.nmi.pending != 0 && events.nmi.masked == 0
  }

  /// The guest TSC as KVM keeps it (IA32_TIME_STAMP_COUNTER through `KVM_GET_MSRS`).
  public func timeStampCounter() throws(EngineError) -> UInt64 {
    guard let tsc = try msrs([0x10])[0x10] else { throw EngineError("KVM_GET_MSRS: no IA32_TIME_STAMP_COUNTER") }
    return tsc
  }

  /// The guest TSC's rate (`KVM_GET_TSC_KHZ`): the host's TSC rate unless KVM scales it.
  public var timeStampCounterFrequency: UInt64 { tscKilohertz * 1000 }

  public func injectInterrupt(vector: UInt8) throws(EngineError) {
    var irq = kvm_interrupt(irq: UInt32(vector))
    try check(ckvm_ioctl_ptr(fd, CKVM_INTERRUPT, &irq), "KVM_INTERRUPT vector \(vector)")
  }

  public func requestInterruptWindow(_ enabled: Bool) {
    ckvm_run_set_request_interrupt_window(run, enabled ? 1 : 0)
  }

  /// KVM has no A20 masking: address line 20 stays open (QEMU under KVM behaves the same).
  public func setA20Gate(_ enabled: Bool) {}
  public var supportsA20Masking: Bool { false }

  public func kick() {
    let thread = ckvm_atomic_load(runThread)
    if thread == 0 {
      ckvm_run_set_immediate_exit(run, 1)
    } else {
      _ = ckvm_signal_thread(thread, Self.kickSignal)
    }
  }

  public func setMSRs(_ msrs: [UInt32: UInt64]) throws(EngineError) {
    guard !msrs.isEmpty else { return }
    let sorted = msrs.sorted { $0.key < $1.key }
    let indices = sorted.map(\.key)
    let values = sorted.map(\.value)
    let r = ckvm_set_msrs(fd, UInt32(indices.count), indices, values)
    try check(r, "KVM_SET_MSRS")
    if r < indices.count {
      throw EngineError("KVM_SET_MSRS rejected MSR 0x\(String(indices[Int(r)], radix: 16))")
    }
  }

  /// RESET for a machine reset: no pending exception, interrupt or NMI (`KVM_SET_VCPU_EVENTS`),
  /// no interrupt window, the x87/SSE state at its reset values, the system-call MSRs zero, and
  /// real mode at F000:FFF0 (CS based at 0xFFFF0000). With the in-kernel irqchip also the local
  /// APIC (RESET state, then virtual wire as at creation; IA32_APIC_BASE enabled at 0xFEE00000,
  /// BSP flag on vCPU 0) and the multiprocessor state: vCPU 0 runnable, the others back in
  /// wait-for-SIPI, where KVM holds them until the guest starts them again.
  public func reset() throws(EngineError) {
    stringIO = nil
    pendingRead = nil
    ckvm_run_set_request_interrupt_window(run, 0)
    try setPendingEvents(kvm_vcpu_events())
    var fpu = kvm_fpu()
    fpu.fcw = 0x37F
    fpu.mxcsr = 0x1F80
    try setFPU(fpu)
    try setMSRs([
      0x174: 0, 0x175: 0, 0x176: 0,  // SYSENTER_CS/ESP/EIP
      0xC000_0081: 0, 0xC000_0082: 0, 0xC000_0083: 0, 0xC000_0084: 0,  // STAR, LSTAR, CSTAR, FMASK
      0xC000_0102: 0,  // KERNEL_GS_BASE
    ])
    var s = SpecialRegisters()
    s.cs = Segment(selector: 0xF000, base: 0xFFFF_0000, limit: 0xFFFF, type: 11)
    try setSpecialRegisters(s)
    var r = Registers()
    r.rip = 0xFFF0
    try setRegisters(r)
    if vm.hasInKernelIRQChip {
      let bootstrap = id == 0
      try setMSRs([0x1B: 0xFEE0_0000 | 0x800 | (bootstrap ? 0x100 : 0)])
      try check(ckvm_reset_lapic(fd), "KVM_SET_LAPIC (reset)")
      try check(ckvm_set_mp_state(fd, bootstrap ? 0 : 2), "KVM_SET_MP_STATE")
    }
  }

  /// Reads model-specific registers (`KVM_GET_MSRS`); MSRs KVM does not know are left out.
  public func msrs(_ indices: [UInt32]) throws(EngineError) -> [UInt32: UInt64] {
    var values = [UInt64](repeating: 0, count: indices.count)
    let r = ckvm_get_msrs(fd, UInt32(indices.count), indices, &values)
    try check(r, "KVM_GET_MSRS")
    var out: [UInt32: UInt64] = [:]
    for i in 0..<Int(r) { out[indices[i]] = values[i] }
    return out
  }

  /// The x87/SSE state (`KVM_GET_FPU`).
  public func fpuState() throws(EngineError) -> kvm_fpu {
    var f = kvm_fpu()
    try check(ckvm_ioctl_ptr(fd, CKVM_GET_FPU, &f), "KVM_GET_FPU")
    return f
  }

  public func setFPU(_ state: kvm_fpu) throws(EngineError) {
    var f = state
    try check(ckvm_ioctl_ptr(fd, CKVM_SET_FPU, &f), "KVM_SET_FPU")
  }

  // MARK: - Exit controls

  /// Gives vCPU `id` its own initial APIC ID: CPUID.1:EBX[31:24] and, where present, the x2APIC
  /// ID in EDX of every subleaf of leaves 0BH and 1FH (KVM's supported table says 0 for all).
  static func setAPICID(_ id: UInt32, in entries: inout [kvm_cpuid_entry2]) {
    for i in entries.indices {
      switch entries[i].function {
      case 1: entries[i].ebx = (entries[i].ebx & 0x00FF_FFFF) | (id & 0xFF) << 24
      case 0xB, 0x1F: entries[i].edx = id
      default: break
      }
    }
  }

  /// Rewrites leaf 0's vendor string (EBX, EDX, ECX) and leaf 1's signature (EAX) to `identity`.
  /// Feature bits stay what KVM supports on this host: guest code runs on the host CPU.
  static func present(_ identity: GuestCPUIdentity, in entries: inout [kvm_cpuid_entry2]) {
    var bytes = Array(identity.vendor.utf8.prefix(12))
    bytes += [UInt8](repeating: 0, count: 12 - bytes.count)
    func word(_ i: Int) -> UInt32 {
      UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
    }
    for i in entries.indices {
      switch entries[i].function {
      case 0:
        entries[i].ebx = word(0)
        entries[i].edx = word(4)
        entries[i].ecx = word(8)
      case 1:
        entries[i].eax = identity.signature
      default: break
      }
    }
  }

  /// What KVM cannot do as asked: HLT, CPUID, RDTSC and INVLPG exiting are decided by KVM (HLT
  /// exits reach userspace only without the in-kernel irqchip); MSR exits work through KVM's MSR
  /// filter when `msrExits` (the VM installed it); the exception bitmap is not exposed through
  /// this engine. The I/O bitmap is honoured by answering non-exiting ports in the engine.
  /// The MSRs `c` asks to exit that KVM's in-kernel local APIC does not answer itself (it owns
  /// IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC range): the hypercall page's MSR, say.
  static func outsideKernelAPIC(_ c: ExitControls) -> Set<UInt32> {
    c.msrReadExits.union(c.msrWriteExits).filter { $0 != 0x1B && $0 != 0x6E0 && !(0x800...0x8FF).contains($0) }
  }

  static func unsupported(
    _ c: ExitControls, kernelIRQChip: Bool, msrExits: Bool, trapped: Set<UInt32> = []
  ) -> [String] {
    var honoured = c
    honoured.hltExiting = !kernelIRQChip
    honoured.cpuidExiting = false
    honoured.rdtscExiting = false
    honoured.invlpgExiting = false
    if !msrExits {
      honoured.msrReadExits = c.msrReadExits.intersection(trapped)
      honoured.msrWriteExits = c.msrWriteExits.intersection(trapped)
    }
    honoured.exceptionBitmap = 0
    return c.differences(from: honoured)
  }
}

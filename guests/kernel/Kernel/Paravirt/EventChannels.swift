/// Event channels (Xen's 2-level ABI) in the shared info page: the timer's VIRQ port and the
/// upcall that replaces the PIC's interrupt lines in the paravirtual mode.
enum EventChannels {
  /// A tick arrived at the SYSCALL callback's entry: preempt when the system call ends.
  static var preemptAfterSystemCall = false
  /// The port bound to VIRQ_TIMER (0 until bound).
  private(set) static var timerPort: UInt32 = 0
  static let pendingOffset = 2048
  static let maskOffset = 2560
  static let pendingSelectorOffset = 8

  /// Binds VIRQ_TIMER on vCPU 0 (`event_channel_op(bind_virq)`), its port masked until the
  /// kernel unmasks line 0.
  static func bindTimer() {
    var binding: (UInt32, UInt32, UInt32) = (0, 0, 0)  // virq, vcpu, port (out)
    let status = withUnsafeMutablePointer(to: &binding) {
      Hypercall.call(Hypercall.eventChannelOp, 1, Hypercall.address($0))
    }
    if status != 0 { Paravirt.fail("cannot bind VIRQ_TIMER") }
    timerPort = binding.2
    setMasked(timerPort, true)
  }

  /// Masks or unmasks a port (`event_channel_op(unmask)` re-raises it when pending).
  static func setMasked(_ port: UInt32, _ masked: Bool) {
    let word = Paravirt.sharedWord(maskOffset + Int(port / 64) * 8)
    let bit = UInt64(1) << UInt64(port % 64)
    if masked {
      atomic_or64(word, bit)
    } else {
      var request = port
      withUnsafeMutablePointer(to: &request) { _ = Hypercall.call(Hypercall.eventChannelOp, 9, Hypercall.address($0)) }
    }
  }

  /// The upcall's work: takes every pending, unmasked port; true when the timer fired.
  static func collect() -> Bool {
    var timer = false
    Paravirt.sharedByte(0).pointee = 0  // evtchn_upcall_pending
    var selector = atomic_exchange64(Paravirt.sharedWord(pendingSelectorOffset), 0)
    while selector != 0 {
      let index = selector.trailingZeroBitCount
      selector &= selector - 1
      let pending = Paravirt.sharedWord(pendingOffset + index * 8)
      let mask = Paravirt.sharedWord(maskOffset + index * 8)
      var ready = atomic_load64(pending) & ~atomic_load64(mask)
      while ready != 0 {
        let bit = ready.trailingZeroBitCount
        ready &= ready - 1
        atomic_and64(pending, ~(UInt64(1) << UInt64(bit)))
        if UInt32(index * 64 + bit) == timerPort { timer = true }
      }
    }
    return timer
  }
}

@_extern(c, "atomic_exchange64") func atomic_exchange64(_ word: UnsafeMutablePointer<UInt64>, _ value: UInt64) -> UInt64

/// The event upcall (Arch/pv.S `pv_upcall_entry`), with events masked: the paravirtual
/// counterpart of the PIC timer line's handler (Kernel/Interrupts.swift).
@_cdecl("pv_event_dispatch")
func pvEventDispatch(_ rawFrame: UnsafeMutableRawPointer) {
  let frame = rawFrame.assumingMemoryBound(to: TrapFrame.self)
  guard EventChannels.collect() else { return }
  Timer.tick()
  if frame.pointee.fromUserMode {
    Scheduler.preemptCurrent()
  } else if frame.pointee.rip == Paravirt.syscallEntry {
    // Xen leaves events enabled on the SYSCALL callback, so a tick can arrive before its first
    // instruction masks them: natively it would wait for SYSRET and preempt the task there.
    EventChannels.preemptAfterSystemCall = true
  }
}

/// The SYSCALL callback's dispatch (Arch/pv.S `pv_syscall_entry`): the native dispatch, then the
/// preemption a tick caught at the callback's entry asked for.
@_cdecl("pv_syscall_dispatch")
func pvSyscallDispatch(_ rawFrame: UnsafeMutableRawPointer) {
  syscallDispatch(rawFrame)
  if EventChannels.preemptAfterSystemCall {
    EventChannels.preemptAfterSystemCall = false
    Scheduler.preemptCurrent()
  }
}

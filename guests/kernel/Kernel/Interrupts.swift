/// Interrupt and exception dispatch (called by Arch/traps.S with the saved frame).
@_cdecl("trap_dispatch")
func trapDispatch(_ rawFrame: UnsafeMutableRawPointer) {
  let frame = rawFrame.assumingMemoryBound(to: TrapFrame.self)
  let vector = Int(frame.pointee.vector)
  switch vector {
  case 0..<32:
    if frame.pointee.fromUserMode {
      Exceptions.handleUserException(frame)
    } else {
      Exceptions.kernelPanic(frame)
    }
  case 0x20..<0x30:
    handleInterruptLine(vector - 0x20, frame)
  case InterruptVector.localTimer:
    LocalAPIC.endOfInterrupt()
    PerCPU.current.pointee.timerTicks += 1
    if frame.pointee.fromUserMode { Scheduler.preemptCurrent() }
  case InterruptVector.reschedule:
    LocalAPIC.endOfInterrupt()
    PerCPU.current.pointee.reschedulesReceived += 1
    if frame.pointee.fromUserMode { Scheduler.preemptCurrent() }
  case InterruptVector.tlbShootdown:
    TLBShootdown.serve()
    LocalAPIC.endOfInterrupt()
  case InterruptVector.crossCall:
    CrossCall.serve()
    LocalAPIC.endOfInterrupt()
  default:
    Interrupts.spurious += 1
  }
}

/// The 8259's lines: only the boot CPU receives them (through LINT0 in ExtINT mode once its local
/// APIC is enabled).
private func handleInterruptLine(_ line: Int, _ frame: UnsafeMutablePointer<TrapFrame>) {
  if line == 7 || line == 15, !Platform.isInterruptInService(line) {
    Interrupts.spurious += 1
    if line == 15 { Platform.endOfInterrupt(0) }  // the master saw the cascade
    return
  }
  Platform.endOfInterrupt(line)
  guard line == 0 else { return }
  Timer.tick()
  if frame.pointee.fromUserMode {
    Scheduler.preemptCurrent()
  }
}

/// Interrupt statistics.
enum Interrupts {
  static var spurious = 0
}

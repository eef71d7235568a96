/// Pause-loop exiting, as VT-x's PLE and AMD's pause filter do it in hardware: a vCPU that
/// executes PAUSE over and over spins on a lock, most likely one a descheduled sibling holds, so
/// the VMM should give its pCPU to that sibling (`PhysicalCPUPool.yieldSpinning`). interp and dbt
/// count PAUSEs in a row (`CPU.pauseLoopLength`, only while the detection is on: `CPU.countsPauses`)
/// and end their run when, at the end of a window of 4096 steps, the spin reached the threshold; kvm leaves it to KVM, which handles PLE exits in the kernel itself (it yields
/// to a preempted vCPU of the same VM on the host's scheduler) and never reports them.
extension VirtualCPU {
  /// By default an engine cannot see PAUSE loops: nothing to set.
  public func setPauseLoopExiting(_ pauses: UInt64) {}
  /// By default never.
  public func takePauseLoopExit() -> Bool { false }
}

/// Trivisor's extension of `sched_op(shutdown)`: a guest exit status, as isa-debug-exit gives a
/// native guest (port 0xF4), for a deprivileged kernel that cannot do port I/O.
extension ParavirtDomain {
  /// `sched_shutdown.reason` values `exitStatusReasonBase + v` (v = 0...255) stop the machine as
  /// an isa-debug-exit write of `v` would: `trivisor run` exits with (v << 1) | 1. Xen's reasons
  /// are 0-5, so these never collide with them.
  public static let exitStatusReasonBase: UInt32 = 0x100

  /// Serves a shutdown with an exit-status reason (true), or leaves `raw` to Xen's reasons.
  func shutdownWithExitStatus(_ raw: UInt32) -> Bool {
    guard raw & ~0xFF == Self.exitStatusReasonBase else { return false }
    machine.control.requestStop(.debugExit(value: raw & 0xFF))
    return true
  }
}

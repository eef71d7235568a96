/// A guest clock driven by the vCPU's instruction count instead of the host's (`--deterministic`).
/// The run loop then stops the vCPU by instruction budget exactly at each timer deadline and, while
/// the guest idles in HLT, moves time forward itself, so the same guest sees the same interrupts at
/// the same instructions on every run.
public protocol InstructionDrivenClock: GuestClock {
  /// Instructions the vCPU may retire before guest time reaches `deadline` (at least 1).
  func instructions(until deadline: UInt64) -> UInt64
  /// Moves guest time forward to `time` while the vCPU retires nothing (no effect if it passed).
  func advance(to time: UInt64)
}

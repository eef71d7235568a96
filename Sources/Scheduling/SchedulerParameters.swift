/// The credit scheduler's knobs (Xen's credit scheduler names and defaults), in nanoseconds of
/// the scheduler's clock: virtual time in a simulation, host time when it drives threads.
public struct SchedulerParameters: Sendable, Equatable {
  /// The longest a vCPU runs before the pCPU picks again (Xen's `tslice_ms`, 30 ms).
  public var timeslice: UInt64 = 30_000_000
  /// The least a vCPU runs before a woken one may preempt it (Xen's `ratelimit_us`, 1 ms).
  public var rateLimit: UInt64 = 1_000_000
  /// How often credits are handed out (Xen accounts every 30 ms).
  public var accountingPeriod: UInt64 = 30_000_000
  /// Relaxed co-scheduling (VMware's, off when nil): a vCPU whose progress (CPU time run) is ahead
  /// of its slowest runnable sibling's by more than this is co-stopped — not dispatched, and
  /// preempted at its next check — until the laggards, which picks take first, catch up.
  public var coScheduleSkew: UInt64?
  /// The skew `--co-schedule relaxed` allows: 3 ms, a tenth of a slice.
  public static let relaxedCoScheduleSkew: UInt64 = 3_000_000

  /// The defaults above.
  public init() {}

  /// Parameters with the given slice, rate limit and accounting period.
  public init(timeslice: UInt64, rateLimit: UInt64, accountingPeriod: UInt64) {
    self.timeslice = timeslice
    self.rateLimit = rateLimit
    self.accountingPeriod = accountingPeriod
  }
}

/// The credit scheduler's knobs (Xen's credit scheduler names and defaults), in nanoseconds of
/// the scheduler's clock: virtual time in a simulation, host time when it drives threads.
public struct SchedulerParameters: Sendable, Equatable {
  /// The longest a vCPU runs before the pCPU picks again (Xen's `tslice_ms`, 30 ms).
  public var timeslice: UInt64 = 30_000_000
  /// The least a vCPU runs before a woken one may preempt it (Xen's `ratelimit_us`, 1 ms).
  public var rateLimit: UInt64 = 1_000_000
  /// How often credits are handed out (Xen accounts every 30 ms).
  public var accountingPeriod: UInt64 = 30_000_000

  /// The defaults above.
  public init() {}

  /// Parameters with the given slice, rate limit and accounting period.
  public init(timeslice: UInt64, rateLimit: UInt64, accountingPeriod: UInt64) {
    self.timeslice = timeslice
    self.rateLimit = rateLimit
    self.accountingPeriod = accountingPeriod
  }
}

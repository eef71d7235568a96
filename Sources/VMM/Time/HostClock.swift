#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Guest time from the host's monotonic clock: nanoseconds since the clock was made. The default
/// `GuestClock` of a `Machine` (devices see real time pass, as on hardware).
public final class HostClock: GuestClock, @unchecked Sendable {
  private let origin: UInt64

  /// A clock that starts at 0 now.
  public init() { origin = HostClock.monotonicNanoseconds() }

  /// Nanoseconds since the clock was made (monotonic; any thread).
  public var nanoseconds: UInt64 { HostClock.monotonicNanoseconds() &- origin }

  /// CLOCK_MONOTONIC in nanoseconds (a vDSO call, no system call on most hosts).
  @inline(__always)
  public static func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
  }
}

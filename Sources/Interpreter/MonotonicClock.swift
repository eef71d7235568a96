import VMM

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Guest time from the host's monotonic clock, counted from the clock's creation.
public final class MonotonicClock: GuestClock {
  private let start: UInt64

  public init() { start = MonotonicClock.now() }

  public var nanoseconds: UInt64 { MonotonicClock.now() &- start }

  static func now() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
  }
}

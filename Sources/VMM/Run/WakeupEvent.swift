#if canImport(Glibc)
  import Glibc
#endif

/// What an idle vCPU thread (a guest in `HLT`) sleeps on: woken by `signal()` from any thread
/// (host input arrived, a stop was requested) or by its deadline. Backed by an eventfd and
/// `ppoll`, so an idle guest costs no host CPU and wakes with nanosecond-precision deadlines.
public final class WakeupEvent: @unchecked Sendable {
  private let fd: Int32

  public init() throws(EngineError) {
    fd = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
    guard fd >= 0 else { throw EngineError("eventfd failed: \(String(cString: strerror(errno)))") }
  }

  deinit { close(fd) }

  /// Wakes the sleeper (or makes its next `wait` return at once). Safe from any thread.
  public func signal() {
    var one: UInt64 = 1
    _ = write(fd, &one, 8)
  }

  /// Sleeps until `signal()`, until `timeout` nanoseconds have passed (nil: no limit), or until a
  /// signal interrupts the sleep. Consumes pending signals.
  public func wait(timeout: UInt64?) {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    if let timeout {
      var ts = timespec(tv_sec: Int(timeout / 1_000_000_000), tv_nsec: Int(timeout % 1_000_000_000))
      _ = ppoll(&p, 1, &ts, nil)
    } else {
      _ = ppoll(&p, 1, nil, nil)
    }
    var value: UInt64 = 0
    _ = read(fd, &value, 8)
  }
}

import Foundation

/// What an idle vCPU thread (a guest in `HLT`) sleeps on: woken by `signal()` from any thread
/// (host input arrived, a stop was requested) or by its timeout, so an idle guest costs no host
/// CPU. A `signal()` that comes before the `wait` is not lost.
public final class WakeupEvent: @unchecked Sendable {
  private let condition = NSCondition()
  private var signalled = false

  /// An event with no signal pending.
  public init() {}

  /// Wakes the sleeper (or makes its next `wait` return at once). Safe from any thread.
  public func signal() {
    condition.lock()
    signalled = true
    condition.signal()
    condition.unlock()
  }

  /// Sleeps until `signal()` or until `timeout` nanoseconds have passed (nil: no limit).
  public func wait(timeout: UInt64?) {
    condition.lock()
    defer {
      signalled = false
      condition.unlock()
    }
    guard !signalled else { return }
    if let timeout {
      _ = condition.wait(until: Date(timeIntervalSinceNow: Double(timeout) / 1e9))
    } else {
      condition.wait()
    }
  }
}

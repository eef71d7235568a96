import Foundation

/// A host timer thread that calls `action` (kicks the vCPU) when guest time reaches the armed
/// deadline, so a guest busy in its own code still gets its timer interrupts on time.
///
/// The run loop re-arms it before every entry when the earliest device deadline changes; arming
/// with an unchanged deadline costs one comparison.
public final class DeadlineTimer: @unchecked Sendable {
  private let condition = NSCondition()
  private var deadline: UInt64?
  private var stopped = false
  /// Last deadline passed to `arm` (vCPU thread only: skips redundant arming).
  private var lastArmed: UInt64?
  private let clock: any GuestClock
  private let action: @Sendable () -> Void

  /// - Parameters:
  ///   - clock: the guest clock the deadlines are in.
  ///   - action: what to do when a deadline passes (called on the timer thread).
  public init(clock: any GuestClock, action: @escaping @Sendable () -> Void) {
    self.clock = clock
    self.action = action
    let thread = Thread { [self] in loop() }
    thread.name = "trivisor-timer"
    thread.start()
  }

  /// Sets the next deadline in guest nanoseconds (nil: none). Call from the vCPU thread.
  @inline(__always)
  public func arm(_ newDeadline: UInt64?) {
    guard newDeadline != lastArmed else { return }
    lastArmed = newDeadline
    condition.lock()
    deadline = newDeadline
    condition.signal()
    condition.unlock()
  }

  /// Ends the timer thread.
  public func stop() {
    condition.lock()
    stopped = true
    condition.signal()
    condition.unlock()
  }

  private func loop() {
    condition.lock()
    while !stopped {
      guard let d = deadline else {
        condition.wait()
        continue
      }
      let now = clock.nanoseconds
      if now >= d {
        deadline = nil
        condition.unlock()
        action()
        condition.lock()
        continue
      }
      _ = condition.wait(until: Date(timeIntervalSinceNow: Double(d - now) / 1e9))
    }
    condition.unlock()
  }
}

import Synchronization

/// A stop asked for from another thread (signal watcher, timer), read by the run loop.
final class StopRequest: @unchecked Sendable {
  private let lock = NSLockLike()
  private var reason: StopReason?
  private let flag = Atomic<Bool>(false)
  /// True once a stop was requested (one atomic load: checked at every exit).
  var pending: Bool { flag.load(ordering: .acquiring) }
  func set(_ r: StopReason) {
    lock.locked { if reason == nil { reason = r } }
    flag.store(true, ordering: .releasing)
  }
  func take() -> StopReason? { lock.locked { reason } }
}

#if canImport(Glibc)
  import Glibc
#endif

// The few host threading primitives the VMM uses outside Foundation: a mutex, a condition variable
// and a detached thread.

/// A pthread mutex with a closure API (usable from non-Foundation code).
final class NSLockLike: @unchecked Sendable {
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  init() {
    mutex = .allocate(capacity: 1)
    pthread_mutex_init(mutex, nil)
  }
  deinit {
    pthread_mutex_destroy(mutex)
    mutex.deallocate()
  }
  /// Waits on `condition`; only inside `locked`.
  func wait(_ condition: UnsafeMutablePointer<pthread_cond_t>) { pthread_cond_wait(condition, mutex) }
  /// The mutex itself, for a hot path that must not touch the lock object's reference count.
  var rawMutex: UnsafeMutablePointer<pthread_mutex_t> { mutex }
  /// Takes the mutex (pair with `unlock` on every path).
  func lock() { pthread_mutex_lock(mutex) }
  /// Releases the mutex.
  func unlock() { pthread_mutex_unlock(mutex) }
  func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return try body()
  }
}

/// Detached host threads.
enum PThread {
  /// Runs `body` on a new detached host thread; false (and `body` never runs) when the host
  /// could not create one.
  @discardableResult
  static func detach(_ body: @escaping @Sendable () -> Void) -> Bool {
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let r = pthread_create(
      &thread, nil,
      { arg in
        let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
        b.body()
        return nil
      }, box)
    guard r == 0 else {
      Unmanaged<Box>.fromOpaque(box).release()
      return false
    }
    pthread_detach(thread)
    return true
  }
  private final class Box {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
  }
}

/// A condition variable used with `NSLockLike`.
final class Condition: @unchecked Sendable {
  private let cond: UnsafeMutablePointer<pthread_cond_t>
  init() {
    cond = .allocate(capacity: 1)
    pthread_cond_init(cond, nil)
  }
  deinit {
    pthread_cond_destroy(cond)
    cond.deallocate()
  }
  /// Waits; the caller holds `lock` (inside `lock.locked`).
  func wait(_ lock: NSLockLike) { lock.wait(cond) }
  func signal() { pthread_cond_signal(cond) }
  /// Wakes every waiter.
  func broadcast() { pthread_cond_broadcast(cond) }
}

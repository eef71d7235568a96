#if canImport(Glibc)
  import Glibc
#endif

/// Turns SIGINT, SIGTERM and SIGHUP into a call on a watcher thread, so the VMM can stop the
/// guest, restore the terminal and exit with its own status instead of dying mid-write.
///
/// The handler only writes the signal number to a pipe (async-signal-safe); the watcher thread
/// reads it and calls the registered action.
public enum HostSignals {
  nonisolated(unsafe) private static var pipeWrite: Int32 = -1
  nonisolated(unsafe) private static var action: (@Sendable (Int32) -> Void)?
  private static let lock = NSLockLike()

  /// Installs the handlers (once per process) and makes `action` the current receiver.
  public static func install(_ action: @escaping @Sendable (Int32) -> Void) {
    lock.locked {
      HostSignals.action = action
      guard pipeWrite < 0 else { return }
      var fds: [Int32] = [-1, -1]
      guard pipe(&fds) == 0 else { return }
      _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
      _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
      pipeWrite = fds[1]
      let readEnd = fds[0]
      let watcher = PThread {
        var byte: UInt8 = 0
        while true {
          let n = read(readEnd, &byte, 1)
          if n < 0 && errno == EINTR { continue }
          if n <= 0 { return }
          let a = HostSignals.lock.locked { HostSignals.action }
          a?(Int32(byte))
        }
      }
      _ = watcher
      for s in [SIGINT, SIGTERM, SIGHUP] {
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { signo in
          var b = UInt8(truncatingIfNeeded: signo)
          _ = write(HostSignals.pipeWrite, &b, 1)
        }
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0
        sigaction(s, &sa, nil)
      }
    }
  }

  /// Stops delivering to the current action (signals then do nothing until the next `install`).
  public static func uninstall() {
    lock.locked { action = nil }
  }
}

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
  func locked<T>(_ body: () -> T) -> T {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    return body()
  }
}

/// A detached host thread running `body`.
final class PThread: @unchecked Sendable {
  init(_ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let r = pthread_create(
      &thread, nil,
      { arg in
        let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
        b.body()
        return nil
      }, box)
    if r == 0 {
      pthread_detach(thread)
    } else {
      Unmanaged<Box>.fromOpaque(box).release()
    }
  }
  private final class Box {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
  }
}

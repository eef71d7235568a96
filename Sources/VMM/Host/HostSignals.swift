#if canImport(Glibc)
  import Glibc
#endif

/// Turns SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 into a call on a watcher thread, so
/// the VMM can stop the guest, restore the terminal and exit with its own status instead of dying
/// mid-write.
///
/// The handler only writes the signal number to a pipe (async-signal-safe); the watcher thread
/// reads it and calls the registered action.
public enum HostSignals {
  /// The signals that stop the VMM (status 12). SIGQUIT (Ctrl-\) too: otherwise the Swift
  /// runtime's crash handler prints a backtrace and the process keeps running.
  public static let stopping: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]
  nonisolated(unsafe) private static var pipeWrite: Int32 = -1
  nonisolated(unsafe) private static var action: (@Sendable (Int32) -> Void)?
  nonisolated(unsafe) private static var previous: (@Sendable (Int32) -> Void)?
  private static let lock = NSLockLike()

  /// Installs the handlers (once per process) and makes `action` the current receiver; `uninstall`
  /// gives the signals back to the receiver before it. The stopping signals are also unblocked on
  /// the calling thread (and so on the threads it starts later): a VMM started by a program that
  /// blocks signals in its threads would otherwise never see SIGTERM.
  public static func install(_ action: @escaping @Sendable (Int32) -> Void) {
    var set = sigset_t()
    sigemptyset(&set)
    for s in stopping { sigaddset(&set, s) }
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
    lock.locked {
      HostSignals.previous = HostSignals.action
      HostSignals.action = action
      guard pipeWrite < 0 else { return }
      var fds: [Int32] = [-1, -1]
      guard pipe(&fds) == 0 else { return }
      _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
      _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
      pipeWrite = fds[1]
      let readEnd = fds[0]
      PThread.detach {
        var byte: UInt8 = 0
        while true {
          let n = read(readEnd, &byte, 1)
          if n < 0 && errno == EINTR { continue }
          if n <= 0 { return }
          let a = HostSignals.lock.locked { HostSignals.action }
          a?(Int32(byte))
        }
      }
      for s in HostSignals.stopping {
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

  /// Gives the signals back to the receiver installed before the current one (none: they are
  /// then ignored until the next `install`).
  public static func uninstall() {
    lock.locked {
      action = previous
      previous = nil
    }
  }
}

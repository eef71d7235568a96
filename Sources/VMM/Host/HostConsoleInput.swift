#if canImport(Glibc)
  import Glibc
#endif

/// Host stdin for `--serial stdio`: a reader thread moves bytes into a `HostInputQueue` and wakes
/// the vCPU thread, which feeds them to the UART. When stdin is a terminal it is put in raw-ish
/// mode (no line buffering, no echo; ^C still stops the VMM) and restored by `restore()`, which the
/// run loop calls when the guest stops and the signal path calls before exiting.
public final class HostConsoleInput: @unchecked Sendable {
  /// Where the reader thread puts the bytes it reads; the vCPU thread drains it.
  public let queue: HostInputQueue
  private let wake: @Sendable () -> Void
  private var savedTerminal: termios?
  private let descriptor: Int32
  private let lock = NSLockLike()

  /// Starts reading `descriptor` (0 for stdin) on a background thread.
  public init(descriptor: Int32 = 0, queue: HostInputQueue, wake: @escaping @Sendable () -> Void) {
    self.queue = queue
    self.wake = wake
    self.descriptor = descriptor
    if isatty(descriptor) == 1 {
      var t = termios()
      if tcgetattr(descriptor, &t) == 0 {
        savedTerminal = t
        var raw = t
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | IEXTEN)
        raw.c_iflag &= ~tcflag_t(ICRNL | IXON)
        raw.c_cc.6 = 1  // VMIN
        raw.c_cc.5 = 0  // VTIME
        tcsetattr(descriptor, TCSANOW, &raw)
      }
    }
    PThread.detach { [queue, wake] in
      var buffer = [UInt8](repeating: 0, count: 256)
      while true {
        let n = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        if queue.push(Array(buffer[0..<n])) { wake() }
      }
    }
  }

  /// Puts the terminal back as it was (idempotent; safe from any thread).
  public func restore() {
    lock.locked {
      if var t = savedTerminal {
        tcsetattr(descriptor, TCSANOW, &t)
        savedTerminal = nil
      }
    }
  }

  deinit { restore() }
}

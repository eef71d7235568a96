#if canImport(Glibc)
  import Glibc
#endif

/// Writes guest console bytes to a host file descriptor on a thread of its own, so the vCPU thread
/// never blocks or spins on a slow, stalled or closed reader.
///
/// `enqueue` (the vCPU thread) only copies into a queue bounded at `limit` bytes and wakes the
/// writer; what does not fit is dropped and counted (`droppedBytes`). The writer thread writes the
/// queue out, waiting in `poll` when a non-blocking descriptor answers EAGAIN. When the reader is
/// gone (EPIPE; SIGPIPE must be ignored by the process) it stops writing, drops what is queued and
/// later bytes, and calls `onClosed` once, on the writer thread.
public final class HostOutputWriter: @unchecked Sendable {
  /// The default queue bound.
  public static let defaultLimit = 1 << 20

  /// How writing ended, if it did.
  public enum Failure: Sendable, Equatable {
    /// The reader closed the pipe or socket (EPIPE).
    case readerClosed
    /// Another write error (errno value).
    case error(Int32)
  }

  private let fd: Int32
  private let closeOnDeinit: Bool
  private let limit: Int
  private let mutex = NSLockLike()
  private let condition = Condition()
  // Guarded by `mutex`.
  private var queue: [UInt8] = []
  private var writing = false
  private var stopping = false
  private var dropped: UInt64 = 0
  private var written: UInt64 = 0
  private var failed: Failure?
  private var closedHandler: (@Sendable (Failure) -> Void)?

  /// Starts the writer thread for `fd`; `limit` bounds the bytes waiting to be written.
  public init(descriptor fd: Int32, closeOnDeinit: Bool = false, limit: Int = HostOutputWriter.defaultLimit) {
    self.fd = fd
    self.closeOnDeinit = closeOnDeinit
    self.limit = max(1, limit)
    PThread.detach { [self] in self.writerLoop() }
  }

  deinit {
    if closeOnDeinit { close(fd) }
  }

  /// Called once, on the writer thread, when the descriptor stops accepting bytes.
  public func onClosed(_ handler: @escaping @Sendable (Failure) -> Void) {
    let already = mutex.locked { () -> Failure? in
      closedHandler = handler
      return failed
    }
    if let already { handler(already) }
  }

  /// Queues `bytes` without blocking; drops (and counts) what exceeds the bound or follows a
  /// failure.
  public func enqueue(_ bytes: [UInt8]) {
    guard !bytes.isEmpty else { return }
    mutex.locked {
      if failed != nil {
        dropped &+= UInt64(bytes.count)
        return
      }
      let room = max(0, limit - queue.count)
      if room >= bytes.count {
        queue.append(contentsOf: bytes)
      } else {
        queue.append(contentsOf: bytes.prefix(room))
        dropped &+= UInt64(bytes.count - room)
      }
      condition.signal()
    }
  }

  /// Bytes dropped so far (queue full, or written after a failure).
  public var droppedBytes: UInt64 { mutex.locked { dropped } }
  /// Bytes the descriptor accepted so far.
  public var writtenBytes: UInt64 { mutex.locked { written } }
  /// Why writing stopped, if it did.
  public var failure: Failure? { mutex.locked { failed } }

  /// Waits until everything queued is written, the descriptor failed, or no byte was written for
  /// `stallNanoseconds` (a reader that stopped reading); then stops the writer thread. What is
  /// still queued when it gives up counts as dropped; a chunk the writer thread is writing at that
  /// moment is counted (written or dropped) when that write ends. Returns true when everything was
  /// written.
  @discardableResult
  public func finish(stallNanoseconds: UInt64 = 2_000_000_000) -> Bool {
    var lastWritten = writtenBytes
    var quietSince = HostClock.monotonicNanoseconds()
    while true {
      let (empty, failedNow, nowWritten) = mutex.locked { (queue.isEmpty && !writing, failed != nil, written) }
      if empty || failedNow { break }
      if nowWritten != lastWritten {
        lastWritten = nowWritten
        quietSince = HostClock.monotonicNanoseconds()
      } else if HostClock.monotonicNanoseconds() &- quietSince >= stallNanoseconds {
        break
      }
      var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
      nanosleep(&pause, nil)
    }
    return mutex.locked {
      stopping = true
      let complete = queue.isEmpty && !writing && failed == nil
      dropped &+= UInt64(queue.count)
      queue.removeAll()
      condition.signal()
      return complete
    }
  }

  private func writerLoop() {
    while true {
      var chunk: [UInt8] = []
      let stop = mutex.locked { () -> Bool in
        while queue.isEmpty && !stopping { condition.wait(mutex) }
        if queue.isEmpty { return true }
        swap(&chunk, &queue)
        writing = true
        return false
      }
      if stop { return }
      let outcome = writeAll(chunk)
      var handler: (@Sendable (Failure) -> Void)?
      mutex.locked {
        writing = false
        if let outcome, failed == nil {
          failed = outcome
          dropped &+= UInt64(queue.count)
          queue.removeAll()
          handler = closedHandler
        }
      }
      if let outcome, let handler { handler(outcome) }
    }
  }

  /// Writes `chunk` completely, or returns why not (counting the unwritten rest as dropped).
  private func writeAll(_ chunk: [UInt8]) -> Failure? {
    var offset = 0
    while offset < chunk.count {
      let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
      if n > 0 {
        offset += n
        mutex.locked { written &+= UInt64(n) }
        continue
      }
      let e = n < 0 ? errno : EIO
      if e == EINTR { continue }
      if e == EAGAIN || e == EWOULDBLOCK {
        // Non-blocking descriptor and a slow reader: wait until it can take more, checking now
        // and then whether the machine is shutting down.
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        _ = poll(&p, 1, 100)
        if mutex.locked({ stopping }) {
          mutex.locked { dropped &+= UInt64(chunk.count - offset) }
          return nil
        }
        continue
      }
      mutex.locked { dropped &+= UInt64(chunk.count - offset) }
      return e == EPIPE ? .readerClosed : .error(e)
    }
    return nil
  }
}

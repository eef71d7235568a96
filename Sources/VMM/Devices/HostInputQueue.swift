#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A lock-protected byte queue between a host reader thread (the terminal) and the vCPU thread.
///
/// The reader thread calls `push(_:)`; the vCPU thread calls `drain()` and hands the bytes to a
/// device (`Serial16550.receive`). Devices themselves are never touched from other threads.
/// `push` reports whether the queue was empty before, so the reader knows when to kick the vCPU.
public final class HostInputQueue: @unchecked Sendable {
  private let lock = NSLockLike()
  private var bytes = ByteRing(capacity: 256)
  /// The most bytes held; input beyond it is dropped (a guest that never reads its console).
  public let limit: Int
  private var dropped: UInt64 = 0

  /// - Parameter limit: the most bytes held before input is dropped.
  public init(limit: Int = 1 << 20) {
    self.limit = max(1, limit)
  }

  /// Appends host input. Returns true when the queue was empty before (the consumer may be idle
  /// and should be woken). Safe from any thread.
  @discardableResult
  public func push(_ input: [UInt8]) -> Bool {
    lock.locked {
      let wasEmpty = bytes.isEmpty
      for b in input {
        if bytes.count >= limit {
          dropped += 1
        } else {
          bytes.append(b)
        }
      }
      return wasEmpty
    }
  }

  /// Removes and returns everything queued (empty when nothing is). Safe from any thread.
  public func drain() -> [UInt8] {
    lock.locked { bytes.removeFirst(upTo: bytes.count) }
  }

  /// Bytes currently queued.
  public var count: Int { lock.locked { bytes.count } }
  /// Whether no byte is waiting.
  public var isEmpty: Bool { count == 0 }
  /// Bytes dropped because the queue was full.
  public var droppedBytes: UInt64 { lock.locked { dropped } }
}

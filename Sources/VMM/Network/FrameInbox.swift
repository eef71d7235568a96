#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A bounded, lock-protected queue of Ethernet frames on their way from a network backend's thread
/// to the guest's network card, which takes them on a vCPU thread when the guest has posted
/// receive buffers. A guest that posts none makes the queue fill up: frames beyond `limit` are
/// dropped and counted (TCP retransmits; that is what a full card does on real hardware too).
///
/// `wake` is called (outside the lock) when a frame arrives in an empty queue, so a halted vCPU
/// can come and take it; the machine sets it while it runs.
public final class FrameInbox: @unchecked Sendable {
  private let lock = NSLockLike()
  private var frames: [[UInt8]] = []
  private var head = 0
  private var droppedCount: UInt64 = 0
  private var wakeHandler: (@Sendable () -> Void)?
  /// The most frames held.
  public let limit: Int

  /// - Parameter limit: the most frames held before new ones are dropped.
  public init(limit: Int = 256) {
    self.limit = max(1, limit)
  }

  /// Called when a frame arrives in an empty queue (any thread may set it).
  public var wake: (@Sendable () -> Void)? {
    get { lock.locked { wakeHandler } }
    set { lock.locked { wakeHandler = newValue } }
  }

  /// Queues a frame for the guest (any thread); false when the queue was full and it was dropped.
  @discardableResult
  public func push(_ frame: [UInt8]) -> Bool {
    let (accepted, wakeNow): (Bool, (@Sendable () -> Void)?) = lock.locked {
      guard frames.count - head < limit else {
        droppedCount &+= 1
        return (false, nil)
      }
      let wasEmpty = frames.count == head
      frames.append(frame)
      return (true, wasEmpty ? wakeHandler : nil)
    }
    wakeNow?()
    return accepted
  }

  /// The oldest frame, removed; nil when none waits.
  public func pop() -> [UInt8]? {
    lock.locked {
      guard head < frames.count else { return nil }
      let frame = frames[head]
      head += 1
      if head == frames.count || head >= 64 {
        frames.removeFirst(head)
        head = 0
      }
      return frame
    }
  }

  /// Frames waiting.
  public var count: Int { lock.locked { frames.count - head } }
  /// Whether no frame waits.
  public var isEmpty: Bool { count == 0 }
  /// Frames dropped because the queue was full.
  public var dropped: UInt64 { lock.locked { droppedCount } }
  /// Forgets every waiting frame (the card was reset).
  public func removeAll() {
    lock.locked {
      frames.removeAll()
      head = 0
    }
  }
}

/// The frames of guest-physical memory the monitor reserves for shadow page tables (like the
/// paravirtual monitor's reserved range: the guest may neither map nor address them). Frames are
/// handed out one at a time and all come back at a flush.
public struct ShadowFramePool: Sendable {
  /// The reserved range, page aligned: physical addresses of the first frame and past the last.
  public let range: Range<UInt64>
  /// Frames not in use, lowest last (so allocation goes upward).
  private var free: [UInt64]

  /// A pool of the frames in `range` (both ends page aligned, at least one frame).
  public init(range: Range<UInt64>) {
    precondition(range.lowerBound & 0xFFF == 0 && range.upperBound & 0xFFF == 0, "pool must be page aligned")
    self.range = range
    self.free = stride(from: range.upperBound, to: range.lowerBound, by: -4096).map { $0 - 4096 }
  }

  /// How many frames the pool has in all.
  public var capacity: Int { Int((range.upperBound - range.lowerBound) >> 12) }
  /// How many frames are free.
  public var available: Int { free.count }

  /// Whether `physical` lies in a frame of the pool.
  public func contains(_ physical: UInt64) -> Bool { range.contains(physical) }

  /// A free frame's physical address, nil when every frame is in use.
  public mutating func allocate() -> UInt64? { free.popLast() }

  /// Returns `frame` to the pool.
  public mutating func release(_ frame: UInt64) {
    precondition(contains(frame) && frame & 0xFFF == 0, "not a frame of the pool")
    free.append(frame)
  }

  /// Makes every frame free again.
  public mutating func reset() {
    free = stride(from: range.upperBound, to: range.lowerBound, by: -4096).map { $0 - 4096 }
  }
}

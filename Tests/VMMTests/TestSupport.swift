@testable import VMM

/// An interrupt sink that records every level change per line.
final class RecordingSink: InterruptSink {
  private(set) var levels = [Bool](repeating: false, count: 24)
  /// Rising edges seen per line.
  private(set) var risingEdges = [Int](repeating: 0, count: 24)
  private(set) var changes: [(line: Int, level: Bool)] = []

  func setIRQ(_ line: Int, level: Bool) {
    if level && !levels[line] { risingEdges[line] += 1 }
    levels[line] = level
    changes.append((line, level))
  }
}

/// A clock the test moves by hand.
final class ManualClock: GuestClock {
  var nanoseconds: UInt64 = 0
  init(_ ns: UInt64 = 0) { nanoseconds = ns }
  func advance(by ns: UInt64) { nanoseconds += ns }
}

/// Collects device output.
final class OutputCollector {
  private(set) var bytes: [UInt8] = []
  var text: String { String(decoding: bytes, as: UTF8.self) }
  func append(_ b: [UInt8]) { bytes += b }
}

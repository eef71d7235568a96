/// Watches a byte stream (guest console output, delivered in chunks of any size) for a text and
/// reports the first time it appears, even when it is split across chunks.
public struct OutputWatcher: Sendable {
  /// The UTF-8 bytes looked for.
  public let pattern: [UInt8]
  /// The last `pattern.count - 1` bytes seen: a match may start in them.
  private var tail: [UInt8] = []
  /// True once the pattern has been seen.
  public private(set) var matched = false

  /// Watches for `text`; an empty text never matches.
  public init(text: String) {
    pattern = Array(text.utf8)
  }

  /// Feeds the next bytes of the stream; returns true when the pattern is complete in them
  /// (only once: later calls return false).
  public mutating func feed(_ bytes: [UInt8]) -> Bool {
    guard !matched, !pattern.isEmpty, !bytes.isEmpty else { return false }
    let window = tail + bytes
    if contains(window) {
      matched = true
      tail = []
      return true
    }
    tail = Array(window.suffix(pattern.count - 1))
    return false
  }

  private func contains(_ window: [UInt8]) -> Bool {
    guard window.count >= pattern.count else { return false }
    let first = pattern[0]
    var i = 0
    while i + pattern.count <= window.count {
      if window[i] == first && window[i..<(i + pattern.count)].elementsEqual(pattern) { return true }
      i += 1
    }
    return false
  }
}

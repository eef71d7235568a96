/// Watches a byte stream (guest console output, delivered in chunks of any size) for a text and
/// follows the line it appears in: first the text, then the end of that line (`\n`), even when
/// either is split across chunks.
public struct OutputWatcher: Sendable {
  /// How far the stream has got.
  public enum Progress: Sendable, Equatable {
    /// The text has not appeared yet.
    case searching
    /// The text has appeared; the line holding it has not ended yet.
    case inMatchedLine
    /// The line holding the text has ended (a `\n` followed the text).
    case lineEnded
  }

  /// The UTF-8 bytes looked for.
  public let pattern: [UInt8]
  /// The last `pattern.count - 1` bytes seen: a match may start in them.
  private var tail: [UInt8] = []
  /// How far the watched stream has got: searching, inside the matched line, or past its end.
  public private(set) var progress = Progress.searching
  /// True once the pattern has been seen.
  public var matched: Bool { progress != .searching }

  /// Watches for `text`; an empty text never matches.
  public init(text: String) {
    pattern = Array(text.utf8)
  }

  /// Feeds the next bytes of the stream; returns the progress after them.
  @discardableResult
  public mutating func feed(_ bytes: [UInt8]) -> Progress {
    switch progress {
    case .lineEnded:
      break
    case .inMatchedLine:
      if bytes.contains(0x0A) { progress = .lineEnded }
    case .searching:
      guard !pattern.isEmpty, !bytes.isEmpty else { break }
      let window = tail + bytes
      if let end = matchEnd(in: window) {
        tail = []
        progress = window[end...].contains(0x0A) ? .lineEnded : .inMatchedLine
      } else {
        tail = Array(window.suffix(pattern.count - 1))
      }
    }
    return progress
  }

  /// The index just past the first occurrence of the pattern in `window`, if there is one.
  private func matchEnd(in window: [UInt8]) -> Int? {
    guard window.count >= pattern.count else { return nil }
    let first = pattern[0]
    var i = 0
    while i + pattern.count <= window.count {
      if window[i] == first && window[i..<(i + pattern.count)].elementsEqual(pattern) { return i + pattern.count }
      i += 1
    }
    return nil
  }
}

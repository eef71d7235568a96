/// An IPv4 address, kept as its 32-bit value (most significant byte first when written out).
public struct IPv4Address: Equatable, Hashable, Sendable, CustomStringConvertible {
  /// The address as a number: 10.0.2.15 is 0x0A00_020F.
  public var value: UInt32

  /// The address with this 32-bit value.
  public init(_ value: UInt32) { self.value = value }

  /// The address `a.b.c.d`.
  public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
    value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
  }

  /// Parses dotted-quad notation (four decimal numbers 0-255, no leading signs or spaces); nil
  /// for anything else.
  public init?(_ text: some StringProtocol) {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var v: UInt32 = 0
    for part in parts {
      guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
        let n = UInt32(part), n <= 255
      else { return nil }
      v = v << 8 | n
    }
    value = v
  }

  /// The four bytes in network order.
  public var bytes: [UInt8] {
    [
      UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8),
      UInt8(truncatingIfNeeded: value),
    ]
  }

  /// Dotted-quad notation.
  public var description: String { bytes.map(String.init).joined(separator: ".") }

  /// 0.0.0.0: every host address.
  public static let any = IPv4Address(0)
  /// 127.0.0.1.
  public static let loopback = IPv4Address(127, 0, 0, 1)
}

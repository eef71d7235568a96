/// A small deterministic generator (SplitMix64) so a seed reproduces a run exactly.
public struct RandomSource: RandomNumberGenerator, Sendable {
  private var state: UInt64

  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// A value in 0..<n.
  public mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }

  /// True with probability `p`.
  public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }

  /// One element of a non-empty array.
  public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

  /// A value with interesting bit patterns: small, near boundaries, or fully random.
  public mutating func interesting(bits: Int) -> UInt64 {
    let mask: UInt64 = bits >= 64 ? ~0 : (1 << UInt64(bits)) - 1
    switch below(8) {
    case 0: return UInt64(below(4)) & mask
    case 1: return (~UInt64(below(3))) & mask
    case 2: return (1 << UInt64(bits - 1)) & mask
    case 3: return ((1 << UInt64(bits - 1)) &- 1) & mask
    case 4: return UInt64(below(256)) & mask
    default: return next() & mask
    }
  }
}

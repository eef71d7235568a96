/// A seeded stream of 64-bit values (SplitMix64), so that random tests replay exactly.
struct SeededGenerator {
  var state: UInt64

  /// The next value.
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// A value in 0..<n (n > 0).
  mutating func below(_ n: UInt64) -> UInt64 { next() % n }

  /// One of `values` (not empty).
  mutating func pick<T>(_ values: [T]) -> T { values[Int(below(UInt64(values.count)))] }
}

/// Marsaglia's xorshift64 (shifts 13, 7, 17): the repeatable pseudo-random numbers the random
/// guest tests draw their code, registers and seeds from (a seed of 0 stays 0: give a non-zero one).
public struct Xorshift64 {
  public var state: UInt64

  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state ^= state << 13
    state ^= state >> 7
    state ^= state << 17
    return state
  }
}

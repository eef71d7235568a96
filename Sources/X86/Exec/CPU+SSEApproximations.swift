/// RCPPS, RCPSS (0F 53, F3 0F 53), RSQRTPS and RSQRTSS (0F 52, F3 0F 52): approximate reciprocals
/// and reciprocal square roots of singles. The SDM bounds their relative error by 1.5 * 2^-12 and
/// leaves the exact bits to the implementation (Intel's and AMD's tables differ), so the model
/// computes the correctly rounded value and keeps 12 fraction bits of it (rounded to nearest): a
/// relative error of at most 2^-13. They raise no exceptions and leave MXCSR alone; MXCSR's
/// rounding control, DAZ and FTZ do not apply. Denormal operands count as zeros (giving
/// infinities) and results below the normal range are flushed to zeros, as both vendors do
/// (RCP of |x| >= 2^126 included).
extension CPU {
  /// Runs RCPPS/RCPSS/RSQRTPS/RSQRTSS; false for anything else.
  func executeSSEApproximation(_ ins: inout DecodedInstruction, ea: UInt64, column: Int) throws(Fault) -> Bool {
    guard ins.opcode == 0x52 || ins.opcode == 0x53, column == 0 || column == 2 else { return false }
    try requireSSE()
    let r = sseReg(ins)
    let scalar = column == 2
    let s = try sseSource(&ins, ea, size: scalar ? 4 : 16)
    var out = scalar ? xmm(r) : s
    for i in 0..<(scalar ? 1 : 4) {
      let lane = SSELanes.lane(s, i, width: 32)
      let v = ins.opcode == 0x53 ? CPU.approximateReciprocal(lane) : CPU.approximateReciprocalSquareRoot(lane)
      SSELanes.setLane(&out, i, width: 32, v)
    }
    setXMM(r, out)
    return true
  }

  /// 1/x for a single `x` (bit pattern), to 12 fraction bits.
  static func approximateReciprocal(_ x: UInt64) -> UInt64 {
    let f = SoftFloat.Format(bits: 32)
    let sign = x & f.signBit
    if f.isNaN(x) { return x | f.quietBit }
    if f.isZero(x) || f.isDenormal(x) { return sign | f.infinity }
    // |x| >= 2^126: the reciprocal is at or below the smallest normal, and both vendors' tables
    // land below it (their 1/1.0 is 1 - 2^-12): a zero.
    if f.isInfinity(x) || f.exponentField(x) >= 253 { return sign }
    return shortened(SoftFloat.compute(.divide, 0x3F80_0000, x & ~f.signBit, f, exactControl).bits, sign: sign)
  }

  /// 1/sqrt(x) for a single `x` (bit pattern), to 12 fraction bits; negative operands give the
  /// default NaN.
  static func approximateReciprocalSquareRoot(_ x: UInt64) -> UInt64 {
    let f = SoftFloat.Format(bits: 32)
    let sign = x & f.signBit
    if f.isNaN(x) { return x | f.quietBit }
    if f.isZero(x) || f.isDenormal(x) { return sign | f.infinity }
    if sign != 0 { return f.defaultNaN }
    if f.isInfinity(x) { return 0 }
    let root = SoftFloat.compute(.squareRoot, x, 0, f, exactControl).bits
    return shortened(SoftFloat.compute(.divide, 0x3F80_0000, root, f, exactControl).bits, sign: 0)
  }

  /// Round to nearest, every exception masked, no DAZ or FTZ.
  private static let exactControl = SoftFloat.Control(mxcsr: 0x1F80)

  /// A positive single rounded to 12 fraction bits (a carry moves into the exponent as it
  /// should), a denormal flushed to zero, with `sign` applied.
  private static func shortened(_ v: UInt64, sign: UInt64) -> UInt64 {
    let rounded = (v + 0x400) & ~0x7FF
    return rounded < 0x0080_0000 ? sign : rounded | sign
  }
}

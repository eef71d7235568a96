/// An x87 80-bit extended-precision value: a 64-bit significand with an explicit integer bit
/// (bit 63) and a 16-bit field holding the sign (bit 15) and the biased exponent (bias 16383).
/// Conversions from binary32/binary64 are exact; the SSE formats' `SoftFloat.Format` describes
/// those.
struct X87Extended: Equatable {
  /// The significand, integer bit in bit 63.
  var significand: UInt64
  /// Sign (bit 15) and biased exponent (bits 0-14).
  var signExponent: UInt16

  /// The exponent bias of the 80-bit format.
  static let bias = 16383
  /// +0.0.
  static let zero = X87Extended(significand: 0, signExponent: 0)
  /// +1.0.
  static let one = X87Extended(significand: 1 << 63, signExponent: 0x3FFF)
  /// The QNaN floating-point indefinite (negative, quiet bit and integer bit set).
  static let indefinite = X87Extended(significand: 0xC000_0000_0000_0000, signExponent: 0xFFFF)

  /// The biased exponent.
  var exponent: Int { Int(signExponent & 0x7FFF) }
  /// The sign bit.
  var negative: Bool { signExponent & 0x8000 != 0 }
  /// A NaN (maximum exponent, integer bit set, fraction non-zero).
  var isNaN: Bool { exponent == 0x7FFF && significand << 1 != 0 }
  /// A signalling NaN (a NaN with the quiet bit, bit 62, clear).
  var isSignalingNaN: Bool { isNaN && significand & (1 << 62) == 0 }
  /// Infinity (maximum exponent, significand exactly the integer bit).
  var isInfinity: Bool { exponent == 0x7FFF && significand << 1 == 0 && significand != 0 }
  /// ±0.
  var isZero: Bool { exponent == 0 && significand == 0 }
  /// A denormal or pseudo-denormal (exponent 0, significand non-zero).
  var isDenormal: Bool { exponent == 0 && significand != 0 }
  /// An unsupported encoding (pseudo-NaN, pseudo-infinity, unnormal: integer bit clear with a
  /// non-zero exponent).
  var isUnsupported: Bool { exponent != 0 && significand & (1 << 63) == 0 }

  /// The full-tag-word class of a non-empty register: 0 valid, 1 zero, 2 special (NaN, infinity,
  /// denormal, unsupported).
  var tagClass: UInt16 {
    if isZero { return 1 }
    if exponent == 0x7FFF || isDenormal || isUnsupported { return 2 }
    return 0
  }

  /// The value with its sign bit flipped (`flip`) or cleared (`clear`).
  func withSign(negative n: Bool) -> X87Extended {
    X87Extended(significand: significand, signExponent: (signExponent & 0x7FFF) | (n ? 0x8000 : 0))
  }

  /// The exact 80-bit value of a binary32 or binary64 operand `v` of format `f`, with whether it
  /// was a denormal (DE) and whether it was a signalling NaN (IE; the result is then quieted).
  static func from(_ v: UInt64, format f: SoftFloat.Format) -> (value: X87Extended, denormal: Bool, invalid: Bool) {
    let sign: UInt16 = f.sign(v) ? 0x8000 : 0
    let fractionBits = UInt64(f.fractionBits)
    let e = f.exponentField(v)
    let frac = f.fraction(v)
    let shift = 63 - fractionBits
    if e == f.maxExponentField {
      if frac == 0 { return (X87Extended(significand: 1 << 63, signExponent: sign | 0x7FFF), false, false) }
      var s = (1 << 63) | (frac << shift)
      let signaling = s & (1 << 62) == 0
      s |= 1 << 62
      return (X87Extended(significand: s, signExponent: sign | 0x7FFF), false, signaling)
    }
    let formatBias = Int(f.maxExponentField >> 1)
    if e == 0 {
      if frac == 0 { return (X87Extended(significand: 0, signExponent: sign), false, false) }
      // A denormal: normalize it, which the 80-bit exponent range always allows.
      let lead = frac.leadingZeroBitCount
      let s = frac << UInt64(lead)
      let unbiased = (1 - formatBias) - (lead - Int(64 - 1 - fractionBits))
      return (X87Extended(significand: s, signExponent: sign | UInt16(unbiased + bias)), true, false)
    }
    let s = (1 << 63) | (frac << shift)
    return (X87Extended(significand: s, signExponent: sign | UInt16(Int(e) - formatBias + bias)), false, false)
  }

  /// The exact 80-bit value of a signed integer.
  static func from(integer v: Int64) -> X87Extended {
    if v == 0 { return .zero }
    let magnitude = v.magnitude
    let lead = magnitude.leadingZeroBitCount
    let sign: UInt16 = v < 0 ? 0x8000 : 0
    return X87Extended(significand: magnitude << UInt64(lead), signExponent: sign | UInt16(bias + 63 - lead))
  }
}

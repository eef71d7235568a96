/// Conversions out of the 80-bit format for the x87 stores (FST/FSTP m32/m64, FIST, FISTP,
/// FISTTP, FBSTP), the ordering the compares use, and the packed BCD format. Pure integer code;
/// the rules (tininess, which flags a masked or unmasked response raises) are the host's, found
/// with small native programs and written down where they apply.
extension X87Extended {
  /// Rounding control: FCW bits 10-11.
  enum Rounding: Int {
    case nearest = 0, down = 1, up = 2, towardZero = 3
  }

  /// What rounding to a binary32/binary64 gives: the bits a masked response stores and what the
  /// caller needs to pick the flags (an unmasked IE, OE or UE stores nothing).
  struct BinaryResult {
    /// The value to store when nothing unmasked stops the store.
    var bits: UInt64
    /// An SNaN or an unsupported encoding (pseudo-NaN, pseudo-infinity, unnormal).
    var invalid = false
    /// The rounded value is beyond the format's largest finite.
    var overflow = false
    /// The value rounded to the format's precision with an unbounded exponent is below the
    /// smallest normal (the host detects tininess after rounding).
    var tiny = false
    /// The stored value differs from the exact one.
    var inexact = false
    /// The stored magnitude is larger than the exact one (C1).
    var roundedUp = false
  }

  /// Whether rounding a magnitude whose discarded part is `rem` (of `shiftedOut` bits, more than
  /// 64 meaning all of them lie below the last) increments the kept part `kept`.
  static func roundsUp(kept: UInt64, rem: UInt64, shiftedOut: Int, negative: Bool, _ rc: Rounding) -> Bool {
    guard rem != 0 else { return false }
    switch rc {
    case .nearest:
      if shiftedOut > 64 { return false }
      let half: UInt64 = 1 << UInt64(shiftedOut - 1)
      return rem > half || (rem == half && kept & 1 != 0)
    case .down: return negative
    case .up: return !negative
    case .towardZero: return false
    }
  }

  /// The significand normalized (bit 63 set) with its unbiased exponent: value = sig * 2^(e - 63).
  /// Only for finite non-zero values with a supported encoding.
  var normalized: (significand: UInt64, exponent: Int) {
    if exponent == 0 {
      let lead = significand.leadingZeroBitCount
      return (significand << UInt64(lead), 1 - X87Extended.bias - lead)
    }
    return (significand, exponent - X87Extended.bias)
  }

  /// This value rounded to binary32/binary64 (`f`) under `rc`, as FST m32/m64 does. Denormal
  /// sources raise no DE on the host. NaNs keep the top bits of their payload, quieted.
  func rounded(to f: SoftFloat.Format, _ rc: Rounding) -> BinaryResult {
    let sign: UInt64 = negative ? f.signBit : 0
    let p = f.precision
    if isUnsupported { return BinaryResult(bits: f.defaultNaN, invalid: true) }
    if exponent == 0x7FFF {
      if significand << 1 == 0 { return BinaryResult(bits: sign | f.infinity) }
      let fraction = (significand >> UInt64(64 - p)) & ((1 << UInt64(f.fractionBits)) - 1)
      return BinaryResult(bits: sign | f.infinity | fraction | f.quietBit, invalid: isSignalingNaN)
    }
    if significand == 0 { return BinaryResult(bits: sign) }
    let (sig, e) = normalized
    let emin = 1 - f.bias
    let emax = f.bias
    var r = BinaryResult(bits: 0)
    // Tininess: the value rounded to p bits with an unbounded exponent is below 2^emin.
    let shift = 64 - p
    let keptUnbounded = sig >> UInt64(shift)
    let up = X87Extended.roundsUp(
      kept: keptUnbounded, rem: sig & ((1 << UInt64(shift)) - 1), shiftedOut: shift, negative: negative, rc)
    let unboundedExponent = up && keptUnbounded + 1 == 1 << UInt64(p) ? e + 1 : e
    r.tiny = unboundedExponent < emin
    // The real rounding: fewer bits below the normal range.
    let out = e >= emin ? shift : shift + (emin - e)
    let kept = out >= 64 ? 0 : sig >> UInt64(out)
    let rem = out >= 64 ? (out == 64 ? sig : sig | 1) : sig & ((1 << UInt64(out)) - 1)
    let increment = X87Extended.roundsUp(kept: kept, rem: rem, shiftedOut: min(out, 65), negative: negative, rc)
    r.inexact = rem != 0
    r.roundedUp = increment
    var m = kept + (increment ? 1 : 0)
    if e >= emin {
      var exp = e
      if m == 1 << UInt64(p) {
        m >>= 1
        exp += 1
      }
      if exp > emax {
        r.overflow = true
        r.inexact = true
        let toInfinity: Bool
        switch rc {
        case .nearest: toInfinity = true
        case .down: toInfinity = negative
        case .up: toInfinity = !negative
        case .towardZero: toInfinity = false
        }
        r.roundedUp = toInfinity
        r.bits = sign | (toInfinity ? f.infinity : f.largestFinite)
        return r
      }
      r.bits = sign | UInt64(exp + f.bias) << UInt64(f.fractionBits) | (m & ((1 << UInt64(f.fractionBits)) - 1))
    } else {
      // A denormal result; a carry into the exponent field makes it the smallest normal.
      r.bits = sign | m
    }
    return r
  }

  /// The magnitude of this finite value rounded to an integer under `rc` (nil above 2^64 - 1),
  /// whether that was inexact and whether the magnitude went up.
  func roundedMagnitude(_ rc: Rounding) -> (magnitude: UInt64?, inexact: Bool, roundedUp: Bool) {
    if significand == 0 { return (0, false, false) }
    let e = (exponent == 0 ? 1 : exponent) - X87Extended.bias
    if e > 63 { return (nil, false, false) }
    let out = 63 - e
    if out == 0 { return (significand, false, false) }
    let kept = out >= 64 ? 0 : significand >> UInt64(out)
    let rem = out >= 64 ? (out == 64 ? significand : significand | 1) : significand & ((1 << UInt64(out)) - 1)
    let up = X87Extended.roundsUp(kept: kept, rem: rem, shiftedOut: min(out, 65), negative: negative, rc)
    if up && kept == UInt64.max { return (nil, true, true) }
    return (kept + (up ? 1 : 0), rem != 0, up)
  }

  /// This value as a signed integer of `bytes` bytes (2, 4 or 8), rounded under `rc`: nil for a
  /// NaN, an infinity, an unsupported encoding or a value out of range (the caller raises IE and
  /// stores the integer indefinite); otherwise the two's complement bits, inexactness and C1.
  func integer(bytes: Int, _ rc: Rounding) -> (bits: UInt64, inexact: Bool, roundedUp: Bool)? {
    if isUnsupported || exponent == 0x7FFF { return nil }
    let (m, inexact, up) = roundedMagnitude(rc)
    guard let magnitude = m else { return nil }
    let limit: UInt64 = 1 << UInt64(8 * bytes - 1)
    if negative ? magnitude > limit : magnitude >= limit { return nil }
    let value = negative ? 0 &- magnitude : magnitude
    let mask: UInt64 = bytes == 8 ? ~0 : (1 << UInt64(8 * bytes)) - 1
    return (value & mask, inexact, up)
  }

  /// The integer indefinite of a `bytes`-byte integer: only the sign bit set.
  static func integerIndefinite(bytes: Int) -> UInt64 { 1 << UInt64(8 * bytes - 1) }

  /// A key that orders non-NaN supported values by magnitude: (exponent, significand), with
  /// exponent 0 read as 1 so pseudo-denormals order with the smallest normals.
  var magnitudeKey: (Int, UInt64) { (exponent == 0 ? 1 : exponent, significand) }

  /// -1, 0 or 1: this value against `other` (neither a NaN nor unsupported; ±0 are equal).
  func compare(_ other: X87Extended) -> Int {
    if isZero && other.isZero { return 0 }
    if negative != other.negative {
      if isZero { return other.negative ? 1 : -1 }
      if other.isZero { return negative ? -1 : 1 }
      return negative ? -1 : 1
    }
    let a = magnitudeKey
    let b = other.magnitudeKey
    let c = a == b ? 0 : (a < b ? -1 : 1)
    return negative ? -c : c
  }

  // MARK: Packed BCD

  /// 10^18: packed BCD holds 18 digits.
  static let bcdLimit: UInt64 = 1_000_000_000_000_000_000

  /// The value of the 10-byte packed BCD `bytes` as FBLD loads it: every nibble is taken as a
  /// digit, even 0xA-0xF (weight 10^position, as the host does); the sign is bit 7 of byte 9,
  /// whose other bits are ignored. Always exact (the sum stays below 2^63).
  static func fromPackedBCD(_ bytes: [UInt8]) -> X87Extended {
    var v: UInt64 = 0
    for i in stride(from: 8, through: 0, by: -1) {
      v = v * 10 + UInt64(bytes[i] >> 4)
      v = v * 10 + UInt64(bytes[i] & 0xF)
    }
    let r = from(integer: Int64(v))
    return r.withSign(negative: bytes[9] & 0x80 != 0)
  }

  /// The 10 bytes of packed BCD for the magnitude `m` (below 10^18) with sign `negative`.
  static func packedBCD(_ m: UInt64, negative: Bool) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 10)
    var v = m
    for i in 0..<9 {
      let low = UInt8(v % 10)
      v /= 10
      let high = UInt8(v % 10)
      v /= 10
      out[i] = high << 4 | low
    }
    out[9] = negative ? 0x80 : 0
    return out
  }

  /// The packed BCD indefinite FBSTP stores for an invalid operand.
  static let bcdIndefinite: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0xC0, 0xFF, 0xFF]
}

/// IEEE 754 binary32 and binary64 arithmetic in software, as SSE performs it: add, subtract,
/// multiply, divide and square root, correctly rounded in each of MXCSR's four rounding modes, with
/// x86's NaN rules, DAZ and FTZ, and the six exception conditions. Pure integer code (no host
/// floating point), so it gives the same bits on every host and in every host rounding mode.
///
/// The exact result of an operation is formed as an integer significand times a power of two
/// (`Exact`), with a sticky bit standing for any nonzero bits below it; `round` then rounds it once.
/// Tininess is detected after rounding (with unbounded exponent), as SDM vol. 1 "Numeric
/// Underflow Exception" says for SSE.
enum SoftFloat {
  /// MXCSR exception flag bits.
  enum Flag {
    static let invalid: UInt32 = 0x01
    static let denormal: UInt32 = 0x02
    static let divideByZero: UInt32 = 0x04
    static let overflow: UInt32 = 0x08
    static let underflow: UInt32 = 0x10
    static let precision: UInt32 = 0x20
  }

  /// The operation.
  enum Operation { case add, subtract, multiply, divide, squareRoot }

  /// A binary format: 32 or 64 bits.
  struct Format {
    let bits: Int
    var fractionBits: Int { bits == 32 ? 23 : 52 }
    var precision: Int { fractionBits + 1 }
    var bias: Int { bits == 32 ? 127 : 1023 }
    var maxExponentField: UInt64 { bits == 32 ? 0xFF : 0x7FF }
    var signBit: UInt64 { 1 << UInt64(bits - 1) }
    var quietBit: UInt64 { 1 << UInt64(fractionBits - 1) }
    /// The default NaN ("QNaN floating-point indefinite"): sign set, quiet, zero payload.
    var defaultNaN: UInt64 { signBit | (maxExponentField << UInt64(fractionBits)) | quietBit }
    var infinity: UInt64 { maxExponentField << UInt64(fractionBits) }
    var largestFinite: UInt64 { ((maxExponentField - 1) << UInt64(fractionBits)) | ((1 << UInt64(fractionBits)) - 1) }

    func exponentField(_ v: UInt64) -> UInt64 { (v >> UInt64(fractionBits)) & maxExponentField }
    func fraction(_ v: UInt64) -> UInt64 { v & ((1 << UInt64(fractionBits)) - 1) }
    func isNaN(_ v: UInt64) -> Bool { exponentField(v) == maxExponentField && fraction(v) != 0 }
    func isSignalingNaN(_ v: UInt64) -> Bool { isNaN(v) && v & quietBit == 0 }
    func isInfinity(_ v: UInt64) -> Bool { exponentField(v) == maxExponentField && fraction(v) == 0 }
    func isZero(_ v: UInt64) -> Bool { v & ~signBit == 0 }
    func isDenormal(_ v: UInt64) -> Bool { exponentField(v) == 0 && fraction(v) != 0 }
    func sign(_ v: UInt64) -> Bool { v & signBit != 0 }
    /// The value as a Double (exact for both formats), for ordering.
    func value(_ v: UInt64) -> Double {
      bits == 32 ? Double(Float(bitPattern: UInt32(truncatingIfNeeded: v))) : Double(bitPattern: v)
    }
    /// A denormal read as a zero of its sign (DAZ), anything else as it is.
    func flushed(_ v: UInt64) -> UInt64 { isDenormal(v) ? v & signBit : v }

    /// A finite nonzero value as (significand, exponent): value = significand * 2^exponent.
    func unpack(_ v: UInt64) -> (UInt64, Int) {
      let e = exponentField(v)
      let f = fraction(v)
      if e == 0 { return (f, 1 - bias - fractionBits) }
      return (f | 1 << UInt64(fractionBits), Int(e) - bias - fractionBits)
    }
  }

  /// MXCSR's rounding control (bits 13-14): 0 nearest even, 1 down, 2 up, 3 toward zero.
  struct Control {
    var rounding: Int
    var flushToZero: Bool
    var denormalsAreZero: Bool
    var underflowMasked: Bool
    var overflowMasked: Bool

    init(mxcsr: UInt32) {
      overflowMasked = mxcsr & 0x400 != 0
      rounding = Int((mxcsr >> 13) & 3)
      flushToZero = mxcsr & 0x8000 != 0
      denormalsAreZero = mxcsr & 0x40 != 0
      underflowMasked = mxcsr & 0x800 != 0
    }
  }

  /// The outcome of one lane: the result bits, and the pre- and post-computation flags apart (a
  /// pre-computation exception that is unmasked suppresses the other lanes' results too).
  struct Outcome {
    var bits: UInt64
    var pre: UInt32 = 0
    var post: UInt32 = 0
  }

  /// `a op b` (`b` ignored for the square root) in format `f` under `control`. An invalid
  /// operation or a division by zero hides a denormal operand in the same lane (measured against
  /// the host: the denormal flag is not set then).
  static func compute(_ op: Operation, _ a: UInt64, _ b: UInt64, _ f: Format, _ control: Control) -> Outcome {
    var outcome = computeLane(op, a, b, f, control)
    if outcome.pre & (Flag.invalid | Flag.divideByZero) != 0 { outcome.pre &= ~Flag.denormal }
    return outcome
  }

  private static func computeLane(_ op: Operation, _ a0: UInt64, _ b0: UInt64, _ f: Format, _ control: Control)
    -> Outcome
  {
    var a = a0
    var b = op == .squareRoot ? 0 : b0
    let operands = op == .squareRoot ? [a] : [a, b]
    // NaNs: a signaling one is invalid; the first NaN operand (quieted) is the result.
    if operands.contains(where: f.isNaN) {
      let invalid = operands.contains(where: f.isSignalingNaN)
      let first = operands.first(where: f.isNaN)!
      return Outcome(bits: first | f.quietBit, pre: invalid ? Flag.invalid : 0)
    }
    var pre: UInt32 = 0
    if control.denormalsAreZero {
      a = f.flushed(a)
      b = f.flushed(b)
    } else if operands.contains(where: f.isDenormal) {
      pre |= Flag.denormal
    }
    let sa = f.sign(a)
    var sb = f.sign(b)
    if op == .subtract { sb.toggle() }
    let signOfProduct = sa != sb
    switch op {
    case .add, .subtract:
      if f.isInfinity(a) && f.isInfinity(b) && sa != sb { return Outcome(bits: f.defaultNaN, pre: pre | Flag.invalid) }
      if f.isInfinity(a) { return Outcome(bits: a, pre: pre) }
      if f.isInfinity(b) { return Outcome(bits: (b & ~f.signBit) | (sb ? f.signBit : 0), pre: pre) }
      if f.isZero(a) && f.isZero(b) {
        // Zeros of opposite signs sum to +0, or -0 when rounding down.
        let negative = sa == sb ? sa : control.rounding == 1
        return Outcome(bits: negative ? f.signBit : 0, pre: pre)
      }
      let (ma, ea) = f.isZero(a) ? (UInt64(0), 0) : f.unpack(a)
      let (mb, eb) = f.isZero(b) ? (UInt64(0), 0) : f.unpack(b)
      if ma == 0 { return finish(round(sb, UInt128(mb), eb, false, f, control), pre) }
      if mb == 0 { return finish(round(sa, UInt128(ma), ea, false, f, control), pre) }
      // Align on the smaller exponent. An operand more than 72 bits below the other lies far
      // below half an ulp of the result: it only makes the result inexact, so a 1 far below the
      // larger operand's last bit stands in for it.
      let (bigM, bigE, bigS, smallM, smallE, smallS) =
        ea >= eb ? (ma, ea, sa, mb, eb, sb) : (mb, eb, sb, ma, ea, sa)
      let far = bigE - smallE > 72
      let exponent = far ? bigE - 72 : smallE
      let big = UInt128(bigM) << UInt128(far ? 72 : bigE - smallE)
      let small = far ? UInt128(1) : UInt128(smallM)
      if bigS == smallS { return finish(round(bigS, big + small, exponent, false, f, control), pre) }
      if big == small { return Outcome(bits: control.rounding == 1 ? f.signBit : 0, pre: pre) }  // exact zero
      let (difference, sign) = big > small ? (big - small, bigS) : (small - big, smallS)
      return finish(round(sign, difference, exponent, false, f, control), pre)
    case .multiply:
      if (f.isInfinity(a) && f.isZero(b)) || (f.isZero(a) && f.isInfinity(b)) {
        return Outcome(bits: f.defaultNaN, pre: pre | Flag.invalid)
      }
      if f.isInfinity(a) || f.isInfinity(b) {
        return Outcome(bits: f.infinity | (signOfProduct ? f.signBit : 0), pre: pre)
      }
      if f.isZero(a) || f.isZero(b) { return Outcome(bits: signOfProduct ? f.signBit : 0, pre: pre) }
      let (ma, ea) = f.unpack(a)
      let (mb, eb) = f.unpack(b)
      return finish(round(signOfProduct, UInt128(ma) * UInt128(mb), ea + eb, false, f, control), pre)
    case .divide:
      if (f.isInfinity(a) && f.isInfinity(b)) || (f.isZero(a) && f.isZero(b)) {
        return Outcome(bits: f.defaultNaN, pre: pre | Flag.invalid)
      }
      let signBits: UInt64 = signOfProduct ? f.signBit : 0
      if f.isInfinity(a) { return Outcome(bits: f.infinity | signBits, pre: pre) }
      if f.isInfinity(b) { return Outcome(bits: signBits, pre: pre) }
      if f.isZero(b) { return Outcome(bits: f.infinity | signBits, pre: pre | Flag.divideByZero) }
      if f.isZero(a) { return Outcome(bits: signBits, pre: pre) }
      let (ma, ea) = f.unpack(a)
      let (mb, eb) = f.unpack(b)
      // Enough quotient bits (about 64) for any precision and its rounding bits.
      let shift = max(0, 64 + bitLength(UInt128(mb)) - bitLength(UInt128(ma)))
      let dividend = UInt128(ma) << UInt128(shift)
      let (q, r) = dividend.quotientAndRemainder(dividingBy: UInt128(mb))
      return finish(round(signOfProduct, q, ea - eb - shift, r != 0, f, control), pre)
    case .squareRoot:
      if f.isZero(a) { return Outcome(bits: a, pre: pre) }  // sqrt(-0) = -0
      if sa { return Outcome(bits: f.defaultNaN, pre: pre | Flag.invalid) }
      if f.isInfinity(a) { return Outcome(bits: a, pre: pre) }
      var (m, e) = f.unpack(a)
      var wide = UInt128(m)
      if e & 1 != 0 {
        wide <<= 1
        e -= 1
      }
      // Widen to about 120 bits (an even shift) so the root has 60 bits or more.
      let widen = (120 - bitLength(wide)) & ~1
      wide <<= UInt128(widen)
      let (root, exact) = integerSquareRoot(wide)
      return finish(round(false, root, (e - widen) / 2, !exact, f, control), pre)
    }
  }

  private static func finish(_ rounded: (UInt64, UInt32), _ pre: UInt32) -> Outcome {
    Outcome(bits: rounded.0, pre: pre, post: rounded.1)
  }

  static func bitLength(_ v: UInt128) -> Int { v == 0 ? 0 : 128 - v.leadingZeroBitCount }

  /// floor(sqrt(v)) and whether it is exact.
  static func integerSquareRoot(_ v: UInt128) -> (UInt128, Bool) {
    guard v > 0 else { return (0, true) }
    var x = UInt128(1) << UInt128((bitLength(v) + 1) / 2)
    while true {
      let y = (x + v / x) / 2
      if y >= x { break }
      x = y
    }
    while x * x > v { x -= 1 }
    while (x + 1) * (x + 1) <= v { x += 1 }
    return (x, x * x == v)
  }

  /// Whether to round a magnitude up, given the bits below the kept ones.
  private static func roundsUp(
    negative: Bool, odd: Bool, remainder: UInt128, half: UInt128, sticky: Bool, _ control: Control
  ) -> Bool {
    let inexact = remainder != 0 || sticky
    switch control.rounding {
    case 0: return remainder > half || (remainder == half && (sticky || odd))
    case 1: return inexact && negative
    case 2: return inexact && !negative
    default: return false
    }
  }

  /// `m` rounded at bit `shift` (0: exact): the kept value and whether it is inexact.
  private static func roundAt(
    _ m: UInt128, _ shift: Int, negative: Bool, sticky: Bool, _ control: Control
  ) -> (UInt128, Bool) {
    guard shift > 0 else { return (m << UInt128(-shift), sticky) }
    if shift >= 127 {
      let inexact = m != 0 || sticky
      let up = roundsUp(negative: negative, odd: false, remainder: m == 0 ? 0 : 1, half: 2, sticky: sticky, control)
      return (up ? 1 : 0, inexact)
    }
    let kept = m >> UInt128(shift)
    let remainder = m & ((UInt128(1) << UInt128(shift)) - 1)
    let half = UInt128(1) << UInt128(shift - 1)
    let up = roundsUp(negative: negative, odd: kept & 1 != 0, remainder: remainder, half: half, sticky: sticky, control)
    return (up ? kept + 1 : kept, remainder != 0 || sticky)
  }

  /// Rounds (-1)^negative * (m + sticky) * 2^e to format `f`: the bits and the post-computation
  /// flags (overflow, underflow, precision).
  static func round(_ negative: Bool, _ m: UInt128, _ e: Int, _ sticky: Bool, _ f: Format, _ control: Control)
    -> (UInt64, UInt32)
  {
    let signBits: UInt64 = negative ? f.signBit : 0
    let n = bitLength(m)
    let p = f.precision
    let emin = 1 - f.bias  // the exponent of the smallest normal number
    // Round to p bits with unbounded exponent: tininess is judged on that result.
    var (unbounded, unboundedInexact) = roundAt(m, n - p, negative: negative, sticky: sticky, control)
    // An unmasked overflow or underflow is taken with the result rounded to full precision and
    // no destination written: the precision flag then says whether that rounding was exact.
    let precisionIfUnmasked: UInt32 = unboundedInexact ? Flag.precision : 0
    var leading = e + n - 1
    if bitLength(unbounded) > p {
      unbounded >>= 1
      leading += 1
    }
    let tiny = leading < emin
    if leading > f.bias {
      // Overflow: infinity, or the largest finite number where the rounding direction says so.
      let toInfinity =
        control.rounding == 0 || (control.rounding == 1 && negative) || (control.rounding == 2 && !negative)
      return (
        (toInfinity ? f.infinity : f.largestFinite) | signBits,
        control.overflowMasked ? Flag.overflow | Flag.precision : Flag.overflow | precisionIfUnmasked
      )
    }
    if !tiny {
      let (kept, inexact) = roundAt(m, n - p, negative: negative, sticky: sticky, control)
      var significand = kept
      var exponent = leading
      if bitLength(significand) > p {
        significand >>= 1
        exponent = leading
      }
      let field = UInt64(exponent + f.bias)
      let bits =
        signBits | field << UInt64(f.fractionBits) | (UInt64(significand) & ((1 << UInt64(f.fractionBits)) - 1))
      return (bits, inexact ? Flag.precision : 0)
    }
    // Tiny: round at the subnormal spacing 2^(emin - fractionBits).
    let shift = (emin - f.fractionBits) - e
    let (kept, inexact) = roundAt(m, shift, negative: negative, sticky: sticky, control)
    if !control.underflowMasked { return (signBits | UInt64(kept), Flag.underflow | precisionIfUnmasked) }
    if control.flushToZero { return (signBits, Flag.underflow | Flag.precision) }
    let flags: UInt32 = inexact ? Flag.underflow | Flag.precision : 0
    // `kept` may have rounded up into the smallest normal number: the field then reads 1.
    return (signBits | UInt64(kept), flags)
  }

  // MARK: Conversions

  /// A value of format `from` converted to format `to` (CVTSS2SD, CVTSD2SS, CVTPS2PD, CVTPD2PS):
  /// NaNs keep their sign and top payload bits, quieted (a signaling one is invalid); a denormal
  /// operand is flagged (or read as zero under DAZ); narrowing rounds under `control`.
  static func convert(_ v0: UInt64, from: Format, to: Format, _ control: Control) -> Outcome {
    var v = v0
    let negative = from.sign(v)
    let signBits: UInt64 = negative ? to.signBit : 0
    if from.isNaN(v) {
      let payload =
        from.bits > to.bits
        ? from.fraction(v) >> UInt64(from.fractionBits - to.fractionBits)
        : from.fraction(v) << UInt64(to.fractionBits - from.fractionBits)
      return Outcome(
        bits: signBits | to.infinity | payload | to.quietBit, pre: from.isSignalingNaN(v) ? Flag.invalid : 0)
    }
    var pre: UInt32 = 0
    if from.isDenormal(v) {
      if control.denormalsAreZero { v = from.flushed(v) } else { pre |= Flag.denormal }
    }
    if from.isInfinity(v) { return Outcome(bits: signBits | to.infinity, pre: pre) }
    if from.isZero(v) { return Outcome(bits: signBits, pre: pre) }
    let (m, e) = from.unpack(v)
    return finish(round(negative, UInt128(m), e, false, to, control), pre)
  }

  /// A signed integer converted to format `to` (CVTSI2SS/SD, CVTDQ2PS/PD), rounded under `control`.
  static func fromInteger(_ v: Int64, to: Format, _ control: Control) -> Outcome {
    if v == 0 { return Outcome(bits: 0) }
    let (r, flags) = round(v < 0, UInt128(v.magnitude), 0, false, to, control)
    return Outcome(bits: r, post: flags)
  }

  /// A value of format `from` converted to a signed integer of `bits` bits (32 or 64), rounded
  /// under `control` or truncated (CVTT*): NaNs, infinities and values out of range give the
  /// integer indefinite (the sign bit alone) and the invalid flag; inexact results the precision
  /// flag. No denormal flag (the SDM lists none for these); DAZ reads a denormal as zero.
  static func toInteger(_ v0: UInt64, from: Format, bits: Int, truncate: Bool, _ control: Control) -> Outcome {
    var v = v0
    let indefinite: UInt64 = 1 << UInt64(bits - 1)
    if from.isNaN(v) || from.isInfinity(v) { return Outcome(bits: indefinite, pre: Flag.invalid) }
    if control.denormalsAreZero { v = from.flushed(v) }
    if from.isZero(v) { return Outcome(bits: 0) }
    let negative = from.sign(v)
    let (m, e) = from.unpack(v)
    var c = control
    if truncate { c.rounding = 3 }
    let magnitude: UInt128
    var inexact = false
    if e >= 0 {
      guard e < 64 else { return Outcome(bits: indefinite, pre: Flag.invalid) }
      magnitude = UInt128(m) << UInt128(e)
    } else {
      (magnitude, inexact) = roundAt(UInt128(m), -e, negative: negative, sticky: false, c)
    }
    let limit = UInt128(1) << UInt128(bits - 1)  // |minimum|; the maximum is one less
    guard negative ? magnitude <= limit : magnitude < limit else { return Outcome(bits: indefinite, pre: Flag.invalid) }
    let mask: UInt64 = bits == 64 ? ~0 : 0xFFFF_FFFF
    let result = negative ? (0 &- UInt64(magnitude)) & mask : UInt64(magnitude)
    return Outcome(bits: result, post: inexact ? Flag.precision : 0)
  }
}

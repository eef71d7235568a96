/// The x87's 80-bit arithmetic in software: add, subtract, multiply, divide and square root of
/// `X87Extended` values, each rounded once to FCW's precision control (24, 53 or 64 bits) under
/// its rounding control, over the extended format's exponent range whatever the precision. Pure
/// integer code, like `SoftFloat` (the SSE formats), so it gives the host x87's bits on any host.
///
/// Rules measured on the host (AMD EPYC, family 19h) with a native program that sets FCW, runs
/// the instruction and reads the result back with FNSAVE:
/// - an unsupported encoding (pseudo-NaN, pseudo-infinity, unnormal) is an invalid operand, even
///   next to a NaN: IE and the indefinite, no DE;
/// - NaNs: an SNaN and a QNaN give the QNaN, two of a kind give the one with the larger
///   significand (equal significands: the positive one), quieted; an SNaN raises IE; a NaN
///   operand hides a denormal operand (no DE);
/// - an invalid operation or a division by zero hides a denormal operand (no DE);
/// - a pseudo-denormal reads as a denormal with exponent 1 (DE);
/// - tininess is detected after rounding to the precision control with unbounded exponent; a
///   tiny result is then rounded at the spacing of that precision at the smallest normal
///   exponent, 2^(-16382 - (p - 1)) (with PC = 24, a result below 2^-16406 becomes zero, not a
///   24-bit denormal);
/// - masked underflow: UE only when the tiny result is inexact; unmasked overflow or underflow:
///   the result rounded to the precision with unbounded exponent, its exponent adjusted by
///   -24576 or +24576 (SDM vol. 1, "Numeric Overflow/Underflow Exception"), PE if that rounding
///   was inexact;
/// - C1 says whether the rounded magnitude is larger than the exact one.
enum X87SoftFloat {
  /// The operation of `compute`: the first operand minus/over the second for subtract/divide.
  enum Operation { case add, subtract, multiply, divide, squareRoot }

  /// What FCW says about rounding: precision (24, 53, 64), rounding control (0 nearest even,
  /// 1 down, 2 up, 3 toward zero) and whether OE and UE are masked.
  struct Control {
    var precision: Int
    var rounding: Int
    var overflowMasked: Bool
    var underflowMasked: Bool

    init(precision: Int, rounding: Int, overflowMasked: Bool = true, underflowMasked: Bool = true) {
      self.precision = precision
      self.rounding = rounding
      self.overflowMasked = overflowMasked
      self.underflowMasked = underflowMasked
    }

    /// From a control word: PC (bits 8-9: 00 single, 10 double, 11 extended; 01 is reserved and
    /// taken as extended), RC (bits 10-11), OM (bit 3), UM (bit 4).
    init(fcw: UInt16) {
      switch (fcw >> 8) & 3 {
      case 0: precision = 24
      case 2: precision = 53
      default: precision = 64
      }
      rounding = Int((fcw >> 10) & 3)
      overflowMasked = fcw & 0x08 != 0
      underflowMasked = fcw & 0x10 != 0
    }

    /// The same control with full (64-bit) precision: the precision control does not apply to
    /// FPREM, FRNDINT, FSCALE and the rest.
    var extended: Control {
      var c = self
      c.precision = 64
      return c
    }
  }

  /// FSW exception bits.
  enum Flag {
    static let invalid: UInt16 = 0x01
    static let denormal: UInt16 = 0x02
    static let zeroDivide: UInt16 = 0x04
    static let overflow: UInt16 = 0x08
    static let underflow: UInt16 = 0x10
    static let precision: UInt16 = 0x20
  }

  /// A result: the value, the exceptions found before computing (IE, DE, ZE: an unmasked one
  /// means the destination is left alone) and after (OE, UE, PE), and whether rounding increased
  /// the magnitude (C1).
  struct Outcome {
    var value: X87Extended
    var pre: UInt16 = 0
    var post: UInt16 = 0
    var roundedUp = false
  }

  /// The smallest normal exponent (unbiased) and the largest.
  static let minExponent = -16382
  static let maxExponent = 16383
  /// The exponent adjustment of an unmasked overflow (subtracted) or underflow (added).
  static let unmaskedBias = 24576

  // MARK: Operands

  /// An operand's class for the arithmetic.
  enum Kind { case zero, finite, infinity, quietNaN, signalingNaN, unsupported }

  static func kind(_ v: X87Extended) -> Kind {
    if v.isUnsupported { return .unsupported }
    if v.exponent == 0x7FFF { return v.isInfinity ? .infinity : (v.isSignalingNaN ? .signalingNaN : .quietNaN) }
    return v.isZero ? .zero : .finite
  }

  /// A finite nonzero value as (significand with bit 63 set, exponent): value = m * 2^e. A
  /// denormal or pseudo-denormal reads with exponent field 1.
  static func unpack(_ v: X87Extended) -> (UInt64, Int) {
    let field = max(v.exponent, 1)
    let lead = v.significand.leadingZeroBitCount
    return (v.significand << UInt64(lead), field - X87Extended.bias - 63 - lead)
  }

  /// The NaN a NaN operand (or two) gives: an SNaN and a QNaN give the QNaN; two of a kind the
  /// larger significand, the positive one on a tie; quieted.
  static func propagate(_ a: X87Extended, _ b: X87Extended?) -> X87Extended {
    var pick = a
    if let b, b.isNaN {
      if !a.isNaN {
        pick = b
      } else if a.isSignalingNaN != b.isSignalingNaN {
        pick = a.isSignalingNaN ? b : a
      } else if b.significand > a.significand || (b.significand == a.significand && !b.negative) {
        pick = b
      }
    }
    return X87Extended(significand: pick.significand | 1 << 62, signExponent: pick.signExponent)
  }

  /// An infinity or zero of the given sign.
  static func infinity(_ negative: Bool) -> X87Extended {
    X87Extended(significand: 1 << 63, signExponent: negative ? 0xFFFF : 0x7FFF)
  }

  static func zero(_ negative: Bool) -> X87Extended {
    X87Extended(significand: 0, signExponent: negative ? 0x8000 : 0)
  }

  /// The checks every operation makes first: an unsupported operand, then NaNs (an SNaN is
  /// invalid), then denormal operands (`denormalSource`: a memory operand that was a denormal in
  /// its own format). Nil when the operands are numbers (zero, finite, infinity); `pre` then
  /// holds DE if there was one.
  static func screen(_ a: X87Extended, _ b: X87Extended?, denormalSource: Bool, pre: inout UInt16) -> Outcome? {
    let ka = kind(a)
    let kb = b.map(kind) ?? .zero
    if ka == .unsupported || kb == .unsupported {
      return Outcome(value: .indefinite, pre: Flag.invalid)
    }
    if a.isNaN || b?.isNaN == true {
      let signaling = ka == .signalingNaN || kb == .signalingNaN
      return Outcome(value: propagate(a, b), pre: signaling ? Flag.invalid : 0)
    }
    if a.isDenormal || b?.isDenormal == true || denormalSource { pre |= Flag.denormal }
    return nil
  }

  // MARK: The five operations

  /// `a op b` (`b` ignored for the square root) under `control`.
  static func compute(
    _ op: Operation, _ a: X87Extended, _ b: X87Extended, _ control: Control, denormalSource: Bool = false
  ) -> Outcome {
    var pre: UInt16 = 0
    if let early = screen(a, op == .squareRoot ? nil : b, denormalSource: denormalSource, pre: &pre) {
      return early
    }
    let ka = kind(a)
    let kb = kind(b)
    let sa = a.negative
    var sb = b.negative
    if op == .subtract { sb.toggle() }
    let productSign = sa != sb
    func invalid() -> Outcome { Outcome(value: .indefinite, pre: Flag.invalid) }
    switch op {
    case .add, .subtract:
      if ka == .infinity && kb == .infinity && sa != sb { return invalid() }
      if ka == .infinity { return Outcome(value: a, pre: pre) }
      if kb == .infinity { return Outcome(value: infinity(sb), pre: pre) }
      if ka == .zero && kb == .zero {
        // Zeros of opposite signs sum to +0, or -0 when rounding down.
        return Outcome(value: zero(sa == sb ? sa : control.rounding == 1), pre: pre)
      }
      if kb == .zero { return roundOnce(pre, sa, unpack(a), control) }
      if ka == .zero { return roundOnce(pre, sb, unpack(b), control) }
      return sum(pre, sa, unpack(a), sb, unpack(b), control)
    case .multiply:
      if (ka == .infinity && kb == .zero) || (ka == .zero && kb == .infinity) { return invalid() }
      if ka == .infinity || kb == .infinity { return Outcome(value: infinity(productSign), pre: pre) }
      if ka == .zero || kb == .zero { return Outcome(value: zero(productSign), pre: pre) }
      let (ma, ea) = unpack(a)
      let (mb, eb) = unpack(b)
      return finish(pre, round(productSign, UInt128(ma) * UInt128(mb), ea + eb, sticky: false, control))
    case .divide:
      if (ka == .infinity && kb == .infinity) || (ka == .zero && kb == .zero) { return invalid() }
      if ka == .infinity { return Outcome(value: infinity(productSign), pre: pre) }
      if kb == .infinity { return Outcome(value: zero(productSign), pre: pre) }
      // A division by zero hides a denormal dividend (no DE), as an invalid operation does.
      if kb == .zero { return Outcome(value: infinity(productSign), pre: Flag.zeroDivide) }
      if ka == .zero { return Outcome(value: zero(productSign), pre: pre) }
      let (ma, ea) = unpack(a)
      let (mb, eb) = unpack(b)
      // Two steps of long division: 62-64 quotient bits, then 8 more, and the remainder as sticky.
      let (q1, r1) = (UInt128(ma) << 63).quotientAndRemainder(dividingBy: UInt128(mb))
      let (q2, r2) = (r1 << 8).quotientAndRemainder(dividingBy: UInt128(mb))
      return finish(pre, round(productSign, q1 << 8 | q2, ea - eb - 71, sticky: r2 != 0, control))
    case .squareRoot:
      if ka == .zero { return Outcome(value: a, pre: pre) }  // sqrt(-0) = -0
      if sa { return invalid() }
      if ka == .infinity { return Outcome(value: a, pre: pre) }
      let (m, e) = unpack(a)
      // A 127- or 128-bit radicand with an even exponent: a 64-bit root, then one more bit from
      // the remainder (sqrt >= r + 1/2 exactly when remainder > r; never a tie).
      let shift = e & 1 == 0 ? 64 : 63
      let (root, remainder) = squareRoot(UInt128(m) << UInt128(shift))
      let half: UInt128 = remainder > root ? 1 : 0
      return finish(pre, round(false, root << 1 | half, (e - shift) / 2 - 1, sticky: remainder != 0, control))
    }
  }

  /// Rounds one finite nonzero operand (x + 0, x - 0): exact at 64 bits, but the precision
  /// control may round it.
  static func roundOnce(_ pre: UInt16, _ negative: Bool, _ v: (UInt64, Int), _ control: Control) -> Outcome {
    finish(pre, round(negative, UInt128(v.0), v.1, sticky: false, control))
  }

  /// The exact sum of two finite nonzero values (signs already applied), rounded.
  static func sum(_ pre: UInt16, _ sa: Bool, _ a: (UInt64, Int), _ sb: Bool, _ b: (UInt64, Int), _ control: Control)
    -> Outcome
  {
    let (big, bigSign, small, smallSign) = a.1 >= b.1 ? (a, sa, b, sb) : (b, sb, a, sa)
    // The larger operand at the top of 127 bits; the smaller aligned to it, the bits it loses
    // (all far below the result's last place) kept as a sticky bit.
    let top = UInt128(big.0) << 63
    let exponent = big.1 - 63
    let distance = big.1 - small.1 - 63
    var aligned = UInt128(small.0)
    var lost = false
    if distance > 0 {
      if distance >= 64 {
        aligned = 0
        lost = true
      } else {
        lost = small.0 & ((1 << UInt64(distance)) - 1) != 0
        aligned >>= UInt128(distance)
      }
    } else {
      aligned <<= UInt128(-distance)
    }
    if bigSign == smallSign { return finish(pre, round(bigSign, top + aligned, exponent, sticky: lost, control)) }
    if top == aligned && !lost {
      return Outcome(value: zero(control.rounding == 1), pre: pre)  // an exact zero
    }
    if top > aligned {
      // top - (aligned + fraction) = (top - aligned - 1) + (1 - fraction)
      let m = lost ? top - aligned - 1 : top - aligned
      return finish(pre, round(bigSign, m, exponent, sticky: lost, control))
    }
    return finish(pre, round(smallSign, aligned - top, exponent, sticky: lost, control))
  }

  static func finish(_ pre: UInt16, _ r: Outcome) -> Outcome {
    var o = r
    o.pre = pre
    return o
  }

  /// floor(sqrt(v)) and v - floor(sqrt(v))^2, bit by bit (no overflow for any 128-bit v).
  static func squareRoot(_ v: UInt128) -> (UInt128, UInt128) {
    var remainder = v
    var root: UInt128 = 0
    var bit: UInt128 = 1 << 126
    while bit > v { bit >>= 2 }
    while bit != 0 {
      if remainder >= root + bit {
        remainder -= root + bit
        root = (root >> 1) + bit
      } else {
        root >>= 1
      }
      bit >>= 2
    }
    return (root, remainder)
  }

  static func bitLength(_ v: UInt128) -> Int { v == 0 ? 0 : 128 - v.leadingZeroBitCount }

  // MARK: Rounding

  /// Whether to round a magnitude up, given the bits below the kept ones.
  static func roundsUp(negative: Bool, odd: Bool, remainder: UInt128, half: UInt128, sticky: Bool, _ rounding: Int)
    -> Bool
  {
    let inexact = remainder != 0 || sticky
    switch rounding {
    case 0: return remainder > half || (remainder == half && (sticky || odd))
    case 1: return inexact && negative
    case 2: return inexact && !negative
    default: return false
    }
  }

  /// (`m` + sticky) rounded at bit `shift` (<= 0: exact): the kept value, whether it is inexact
  /// and whether it was rounded up.
  static func roundAt(_ m: UInt128, _ shift: Int, negative: Bool, sticky: Bool, _ rounding: Int)
    -> (kept: UInt128, inexact: Bool, up: Bool)
  {
    guard shift > 0 else { return (m << UInt128(-shift), sticky, false) }
    if shift == 128 {
      // Nothing kept: all of m is the remainder, against a half of 2^127.
      let up = roundsUp(negative: negative, odd: false, remainder: m, half: 1 << 127, sticky: sticky, rounding)
      return (up ? 1 : 0, m != 0 || sticky, up)
    }
    if shift > 128 {
      // Everything lies below half of the last place (m < 2^128 <= half).
      let inexact = m != 0 || sticky
      let up = roundsUp(negative: negative, odd: false, remainder: inexact ? 1 : 0, half: 2, sticky: false, rounding)
      return (up ? 1 : 0, inexact, up)
    }
    let kept = m >> UInt128(shift)
    let remainder = m & ((UInt128(1) << UInt128(shift)) - 1)
    let half = UInt128(1) << UInt128(shift - 1)
    let up = roundsUp(
      negative: negative, odd: kept & 1 != 0, remainder: remainder, half: half, sticky: sticky, rounding)
    return (up ? kept + 1 : kept, remainder != 0 || sticky, up)
  }

  /// An 80-bit value from a significand `m` of at most 64 bits at unbiased exponent `e` of its
  /// leading bit (normal: bit 63 set after the shift), or a denormal significand with field 0.
  static func pack(_ negative: Bool, significand: UInt64, field: Int) -> X87Extended {
    X87Extended(significand: significand, signExponent: UInt16(field & 0x7FFF) | (negative ? 0x8000 : 0))
  }

  /// Rounds (-1)^negative * (m + sticky) * 2^e (m nonzero, or sticky) to `control.precision`
  /// bits under `control.rounding`, with the extended format's exponent range: the value, the
  /// post-computation flags (OE, UE, PE) and whether the magnitude was rounded up.
  ///
  /// Shared: FST m32/m64 can use it with precision 24 or 53 only for the rounding, not for the
  /// narrower exponent range; `SoftFloat.round` does the binary32/binary64 range.
  static func round(_ negative: Bool, _ m: UInt128, _ e: Int, sticky: Bool, _ control: Control) -> Outcome {
    let p = control.precision
    let n = max(bitLength(m), 1)
    // Round to p bits with unbounded exponent: overflow and tininess are judged on that.
    var (kept, inexact, up) = roundAt(m, n - p, negative: negative, sticky: sticky, control.rounding)
    var leading = e + n - 1
    if bitLength(kept) > p {
      kept >>= 1
      leading += 1
    }
    let significand = UInt64(kept) << UInt64(64 - p)
    let precisionFlag = inexact ? Flag.precision : 0
    if leading > maxExponent {
      if !control.overflowMasked {
        let field = leading - unmaskedBias + X87Extended.bias
        // Out of range even after the bias adjustment (FSCALE alone gets there): infinity.
        if field > maxExponent + X87Extended.bias {
          return Outcome(value: infinity(negative), post: Flag.overflow | Flag.precision, roundedUp: true)
        }
        return Outcome(
          value: pack(negative, significand: significand, field: field), post: Flag.overflow | precisionFlag,
          roundedUp: up)
      }
      // Infinity, or the largest finite value of the precision where the rounding direction says so.
      let toInfinity: Bool
      switch control.rounding {
      case 0: toInfinity = true
      case 1: toInfinity = negative
      case 2: toInfinity = !negative
      default: toInfinity = false
      }
      let value =
        toInfinity
        ? infinity(negative)
        : pack(negative, significand: ~UInt64(0) << UInt64(64 - p), field: maxExponent + X87Extended.bias)
      return Outcome(value: value, post: Flag.overflow | Flag.precision, roundedUp: toInfinity)
    }
    if leading >= minExponent {
      return Outcome(
        value: pack(negative, significand: significand, field: leading + X87Extended.bias), post: precisionFlag,
        roundedUp: up)
    }
    if !control.underflowMasked {
      let field = leading + unmaskedBias + X87Extended.bias
      // Out of range even after the bias adjustment (FSCALE alone gets there): a zero.
      if field < 1 { return Outcome(value: zero(negative), post: Flag.underflow | Flag.precision) }
      return Outcome(
        value: pack(negative, significand: significand, field: field), post: Flag.underflow | precisionFlag,
        roundedUp: up)
    }
    // Tiny: round at the spacing 2^(minExponent - (p - 1)).
    let shift = (minExponent - (p - 1)) - e
    let tiny = roundAt(m, shift, negative: negative, sticky: sticky, control.rounding)
    let bits = UInt64(tiny.kept) << UInt64(64 - p)
    // A result that rounded up to the smallest normal number takes exponent field 1.
    let value = pack(negative, significand: bits, field: bits >> 63 != 0 ? 1 : 0)
    return Outcome(
      value: value, post: tiny.inexact ? Flag.underflow | Flag.precision : 0, roundedUp: tiny.up)
  }
}

// MARK: FRNDINT, FSCALE, FPREM/FPREM1, FXTRACT

extension X87SoftFloat {
  /// FRNDINT: `v` rounded to an integer under `control.rounding` (the precision control does not
  /// apply); PE when inexact, C1 when rounded up. A zero result keeps the operand's sign.
  static func roundToIntegral(_ v: X87Extended, _ control: Control) -> Outcome {
    var pre: UInt16 = 0
    if let early = screen(v, nil, denormalSource: false, pre: &pre) { return early }
    if v.isZero || v.isInfinity { return Outcome(value: v, pre: pre) }
    let (m, e) = unpack(v)
    if e >= 0 { return finish(pre, round(v.negative, UInt128(m), e, sticky: false, control)) }
    let (kept, inexact, up) = roundAt(UInt128(m), -e, negative: v.negative, sticky: false, control.rounding)
    let post = inexact ? Flag.precision : 0
    if kept == 0 { return Outcome(value: zero(v.negative), pre: pre, post: post, roundedUp: up) }
    var o = round(v.negative, kept, 0, sticky: false, control)
    o.pre = pre
    o.post = post
    o.roundedUp = up
    return o
  }

  /// FSCALE: `a` * 2^trunc(`b`), rounded under `control` (the precision control does not
  /// apply). An infinite `b` gives an infinity or a zero, invalid against an infinite or zero `a`
  /// of the other kind.
  static func scale(_ a: X87Extended, by b: X87Extended, _ control: Control) -> Outcome {
    var pre: UInt16 = 0
    if let early = screen(a, b, denormalSource: false, pre: &pre) { return early }
    let ka = kind(a)
    let kb = kind(b)
    if kb == .infinity {
      if b.negative {
        if ka == .infinity { return Outcome(value: .indefinite, pre: Flag.invalid) }
        return Outcome(value: zero(a.negative), pre: pre)
      }
      if ka == .zero { return Outcome(value: .indefinite, pre: Flag.invalid) }
      return Outcome(value: infinity(a.negative), pre: pre)
    }
    if ka == .zero || ka == .infinity { return Outcome(value: a, pre: pre) }
    // trunc(b), limited to a range where every result over- or underflows all the same.
    var n = 0
    if kb == .finite {
      let (mb, eb) = unpack(b)
      if eb >= -63 {
        let magnitude = eb >= 0 ? Int.max : (eb <= -64 ? 0 : Int(truncatingIfNeeded: mb >> UInt64(-eb)))
        n = min(magnitude, 1 << 20)
        if b.negative { n = -n }
      }
    }
    let (m, e) = unpack(a)
    return finish(pre, round(a.negative, UInt128(m), e + n, sticky: false, control))
  }

  /// FPREM (`nearest` false: quotient truncated) and FPREM1 (quotient rounded to nearest even):
  /// the exact remainder of `a` / `b`, the quotient's low three bits and whether the reduction
  /// is complete. When the exponents differ by 64 or more, only a partial reduction is made: `b`
  /// scaled by 2^(32 * floor(d / 32) - 32), which leaves an exponent difference of 32-63 (the
  /// host's choice of the SDM's "N between 32 and 63", measured: N = 32 + d mod 32), quotient
  /// truncated for both.
  static func remainder(_ a: X87Extended, _ b: X87Extended, nearest: Bool, _ control: Control)
    -> (Outcome, quotient: UInt64?, complete: Bool)
  {
    var pre: UInt16 = 0
    if let early = screen(a, b, denormalSource: false, pre: &pre) { return (early, nil, true) }
    let ka = kind(a)
    let kb = kind(b)
    if ka == .infinity || kb == .zero { return (Outcome(value: .indefinite, pre: Flag.invalid), nil, true) }
    if ka == .zero { return (finish(pre, exact(a)), 0, true) }
    let (ma, ea) = unpack(a)
    // A finite `a` against an infinite `b`, or |a| < |b| / 2 (below): `a` itself, a tiny one with
    // an unmasked UE signalled (and bias-adjusted).
    func unchanged() -> Outcome { finish(pre, round(a.negative, UInt128(ma), ea, sticky: false, control)) }
    if kb == .infinity { return (unchanged(), 0, true) }
    let (mb, eb0) = unpack(b)
    var eb = eb0
    let d = ea - eb
    var partial = false
    if d >= 64 {
      eb += (d & ~31) - 32
      partial = true
    }
    if ea - eb < -1 { return (unchanged(), 0, true) }
    // In units of 2^(eb - 1): a = ma << (ea - eb + 1), b = mb << 1.
    let dividend = UInt128(ma) << UInt128(ea - eb + 1)
    let divisor = UInt128(mb) << 1
    var (q, r) = dividend.quotientAndRemainder(dividingBy: divisor)
    var negative = a.negative
    if nearest && !partial && (2 * r > divisor || (2 * r == divisor && q & 1 != 0)) {
      q += 1
      r = divisor - r
      negative.toggle()
    }
    if r == 0 { return (Outcome(value: zero(a.negative), pre: pre), UInt64(truncatingIfNeeded: q), !partial) }
    let outcome = finish(pre, round(negative, r, eb - 1, sticky: false, control))
    return (outcome, UInt64(truncatingIfNeeded: q), !partial)
  }

  /// A number operand as the arithmetic returns it unchanged (a denormal stays as it is; a
  /// pseudo-denormal becomes its normal encoding).
  static func exact(_ v: X87Extended) -> Outcome {
    if v.isZero || v.isInfinity || !v.isDenormal { return Outcome(value: v) }
    let (m, e) = unpack(v)
    return round(v.negative, UInt128(m), e, sticky: false, Control(precision: 64, rounding: 0))
  }

  /// FXTRACT: the exponent (as a value) and the significand with exponent 0 of `v`, and the
  /// exceptions: ZE for a zero (exponent -infinity), DE for a denormal, IE for an SNaN or an
  /// unsupported encoding.
  static func extract(_ v: X87Extended) -> (exponent: X87Extended, significand: X87Extended, pre: UInt16) {
    var pre: UInt16 = 0
    if let early = screen(v, nil, denormalSource: false, pre: &pre) { return (early.value, early.value, early.pre) }
    if v.isZero { return (infinity(true), v, Flag.zeroDivide) }
    if v.isInfinity { return (infinity(false), v, 0) }
    let (m, e) = unpack(v)
    let significand = X87Extended(significand: m, signExponent: 0x3FFF | (v.negative ? 0x8000 : 0))
    return (X87Extended.from(integer: Int64(e + 63)), significand, pre)
  }
}

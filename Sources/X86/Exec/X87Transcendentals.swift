/// The functions behind the x87 transcendentals, on finite operands inside their domains, in
/// `X87WideFloat` precision (128 bits): the callers (`CPU+X87Transcendental.swift`) deal with
/// special operands and round the result once to 64 bits.
///
/// The series: e^t - 1 by Taylor for |t| <= ln 2; ln f = 2 atanh((f - 1) / (f + 1)) for f in
/// [sqrt(2)/2, sqrt(2)]; atan z by its series for z < 1/4 and, above, through
/// atan z = pi/6 + atan((sqrt(3) z - 1) / (sqrt(3) + z)); sine and cosine by Taylor after the
/// reduction. Every series stops when a term no longer reaches the sum's 128 bits.
///
/// The reduction for FSIN, FCOS, FSINCOS and FPTAN is exact but, like the hardware's, by a
/// 66-bit pi (0xC90FDAA22168C234C * 2^-66): measured on the host (AMD), whose results near
/// multiples of pi/2 agree with exact reduction by that constant and with no longer or shorter
/// one; Intel documents the same 66-bit constant.
enum X87Transcendentals {
  /// pi, ln 2, log2(e) and sqrt(3), each rounded to 128 bits.
  static let pi = X87WideFloat(significand: 0xC90F_DAA2_2168_C234_C4C6_628B_80DC_1CD1, exponent: -126)
  static let ln2 = X87WideFloat(significand: 0xB172_17F7_D1CF_79AB_C9E3_B398_03F2_F6AF, exponent: -128)
  static let log2e = X87WideFloat(significand: 0xB8AA_3B29_5C17_F0BB_BE87_FED0_691D_3E89, exponent: -127)
  static let sqrt3 = X87WideFloat(significand: 0xDDB3_D742_C265_539D_92BA_16B8_3C5C_1DC5, exponent: -127)
  /// sqrt(2), rounded to 128 bits: the split point of the logarithm's mantissa.
  static let sqrt2 = X87WideFloat(significand: 0xB504_F333_F9DE_6484_597D_89B3_754A_BE9F, exponent: -127)
  /// The hardware's pi/2: 0xC90FDAA22168C234C * 2^-67.
  static let reductionHalfPi: UInt128 = 0xC_90FD_AA22_168C_234C

  /// first + t1 + t2 + ..., each term from the one before and its index (t_k = next(t_(k-1), k)),
  /// until a term no longer reaches the sum's 128 bits.
  static func series(_ first: X87WideFloat, _ next: (X87WideFloat, Int) -> X87WideFloat) -> X87WideFloat {
    var sum = first
    var term = first
    var k = 1
    while true {
      term = next(term, k)
      if term.isNegligible(against: sum) { return sum }
      sum = sum + term
      k += 1
    }
  }

  // MARK: Exponential and logarithms

  /// 2^x - 1 for |x| <= 1: t + t^2/2! + t^3/3! + ... with t = x ln 2.
  static func exp2MinusOne(_ x: X87WideFloat) -> X87WideFloat {
    let t = x * ln2
    return series(t) { term, k in (term * t).divided(by: k + 1) }
  }

  /// 2 atanh(s) = ln((1 + s) / (1 - s)) for |s| <= 0.18: 2 (s + s^3/3 + s^5/5 + ...).
  static func twiceAtanh(_ s: X87WideFloat) -> X87WideFloat {
    let square = s * s
    return series(s) { term, k in (term * square * X87WideFloat(2 * k - 1)).divided(by: 2 * k + 1) }.scaled(by: 1)
  }

  /// log2(x) for x > 0: x = f * 2^k with f in [sqrt(2)/2, sqrt(2)), then k + ln(f) log2(e).
  static func log2(_ x: X87WideFloat) -> X87WideFloat {
    var k = x.magnitudeExponent
    var f = x.magnitude.scaled(by: -k)  // [1, 2)
    if f.significand > sqrt2.significand {
      f = f.scaled(by: -1)
      k += 1
    }
    let one = X87WideFloat(1)
    let lnF = twiceAtanh((f - one) / (f + one))
    return X87WideFloat(k) + lnF * log2e
  }

  /// log2(1 + x) for |x| < 1 - sqrt(2)/2 (FYL2XP1's domain): ln(1 + x) = 2 atanh(x / (2 + x)),
  /// which keeps a small x's precision.
  static func log2OnePlus(_ x: X87WideFloat) -> X87WideFloat {
    twiceAtanh(x / (X87WideFloat(2) + x)) * log2e
  }

  // MARK: Arc tangent

  /// atan(z) by its series for |z| <= 0.3: z - z^3/3 + z^5/5 - ...
  static func atanSeries(_ z: X87WideFloat) -> X87WideFloat {
    let square = z * z
    return series(z) { term, k in -(term * square * X87WideFloat(2 * k - 1)).divided(by: 2 * k + 1) }
  }

  /// atan(z) for 0 <= z <= 1.
  static func atan(_ z: X87WideFloat) -> X87WideFloat {
    if z.isZero || z.magnitudeExponent < -2 { return atanSeries(z) }
    let w = (sqrt3 * z - X87WideFloat(1)) / (sqrt3 + z)
    return pi.divided(by: 6) + atanSeries(w)
  }

  /// The angle of (x, y) in (-pi, pi] for finite nonzero x and y (FPATAN: y = ST(1), x = ST(0)).
  static func atan2(_ y: X87WideFloat, _ x: X87WideFloat) -> X87WideFloat {
    let a = y.magnitude
    let b = x.magnitude
    let below = a.exponent < b.exponent || (a.exponent == b.exponent && a.significand <= b.significand)
    var angle = below ? atan(a / b) : pi.scaled(by: -1) - atan(b / a)
    if x.negative { angle = pi - angle }
    return y.negative ? -angle : angle
  }

  // MARK: Sine, cosine, tangent

  /// |x| - q * pi66/2 with the integer q nearest, exactly, and q mod 4; nil when |x| >= 2^63
  /// (the instructions then leave the operand alone and set C2). `x` is finite and nonzero.
  static func reduce(_ x: X87Extended) -> (X87WideFloat, quadrant: Int)? {
    let (m, e) = X87SoftFloat.unpack(x)  // |x| = m * 2^e, bit 63 of m set
    if e >= 0 { return nil }
    // |x| / (n * 2^-67) = m * 2^(e + 67) / n, by long division one bit of 2^(e + 67) at a
    // time (m < n, so the quotient starts at zero).
    let n = reductionHalfPi
    let steps = e + 67
    if steps <= 0 { return (X87WideFloat(x).magnitude, 0) }  // |x| < 2^-4
    var r = UInt128(m)
    var q = 0
    for _ in 0..<steps {
      r <<= 1
      q = (q << 1) & 3
      if r >= n {
        r -= n
        q |= 1
      }
    }
    // The nearest quotient: past half of n, one more, and the remainder turns negative.
    if 2 * r > n {
      return (X87WideFloat(negative: true, significand: n - r, exponent: -67), (q + 1) & 3)
    }
    return (X87WideFloat(significand: r, exponent: -67), q)
  }

  /// sin(r) and cos(r) for |r| <= pi/4 (a little over: the reduction's), by Taylor.
  static func sineAndCosine(_ r: X87WideFloat) -> (sine: X87WideFloat, cosine: X87WideFloat) {
    let square = r * r
    let sine = series(r) { term, k in -(term * square).divided(by: (2 * k) * (2 * k + 1)) }
    let cosine = series(X87WideFloat(1)) { term, k in -(term * square).divided(by: (2 * k - 1) * (2 * k)) }
    return (sine, cosine)
  }

  /// sin(x) and cos(x) for a finite nonzero x, nil when |x| >= 2^63.
  static func sineAndCosine(of x: X87Extended) -> (sine: X87WideFloat, cosine: X87WideFloat)? {
    guard let (r, quadrant) = reduce(x) else { return nil }
    let (s, c) = sineAndCosine(r)
    let sine: X87WideFloat
    let cosine: X87WideFloat
    switch quadrant {
    case 0: (sine, cosine) = (s, c)
    case 1: (sine, cosine) = (c, -s)
    case 2: (sine, cosine) = (-s, -c)
    default: (sine, cosine) = (-c, s)
    }
    return (x.negative ? -sine : sine, cosine)
  }
}

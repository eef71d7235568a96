/// The working precision of the x87 transcendentals (`X87Transcendentals`): a binary number
/// with a 128-bit significand, value = (-1)^negative * significand * 2^exponent, the significand
/// normalized (bit 127 set) unless the value is zero, the exponent unbounded.
///
/// The operations truncate. Each errs by less than 2^-126 of its result (a difference, of its
/// larger operand), some sixty bits below the 64-bit significand the instructions round to, so
/// the series built on them give results within an ulp or so of the exact value before that
/// final rounding (the host's own x87 is no closer: AMD's and Intel's differ in the last bit).
struct X87WideFloat {
  var negative: Bool
  var significand: UInt128
  var exponent: Int

  init(negative: Bool = false, significand: UInt128, exponent: Int) {
    self.negative = negative
    guard significand != 0 else {
      self.significand = 0
      self.exponent = 0
      return
    }
    let shift = significand.leadingZeroBitCount
    self.significand = significand << UInt128(shift)
    self.exponent = exponent - shift
  }

  /// A finite x87 value, exactly (zero for a zero).
  init(_ v: X87Extended) {
    if v.isZero {
      self.init(negative: v.negative, significand: 0, exponent: 0)
    } else {
      let (m, e) = X87SoftFloat.unpack(v)
      self.init(negative: v.negative, significand: UInt128(m), exponent: e)
    }
  }

  /// An integer, exactly.
  init(_ n: Int) {
    self.init(negative: n < 0, significand: UInt128(n.magnitude), exponent: 0)
  }

  var isZero: Bool { significand == 0 }

  /// The exponent of the leading bit: 2^magnitudeExponent <= |value| < 2^(magnitudeExponent + 1).
  var magnitudeExponent: Int { exponent + 127 }

  var magnitude: X87WideFloat { X87WideFloat(negative: false, significand: significand, exponent: exponent) }

  /// The value times 2^n, exactly.
  func scaled(by n: Int) -> X87WideFloat {
    isZero ? self : X87WideFloat(negative: negative, significand: significand, exponent: exponent + n)
  }

  /// Whether the magnitude is below 2^-130 of `other`'s: adding it cannot change `other`'s 128 bits.
  func isNegligible(against other: X87WideFloat) -> Bool {
    isZero || magnitudeExponent < other.magnitudeExponent - 130
  }

  static prefix func - (a: X87WideFloat) -> X87WideFloat {
    X87WideFloat(negative: !a.negative, significand: a.significand, exponent: a.exponent)
  }

  static func + (a: X87WideFloat, b: X87WideFloat) -> X87WideFloat {
    if a.isZero { return b }
    if b.isZero { return a }
    var (x, y) = (a, b)
    if y.exponent > x.exponent || (y.exponent == x.exponent && y.significand > x.significand) { swap(&x, &y) }
    // One bit of headroom for a carry; the smaller operand aligned below, truncated.
    let shift = x.exponent - y.exponent + 1
    let larger = x.significand >> 1
    let smaller = shift >= 128 ? 0 : y.significand >> UInt128(shift)
    let sum = x.negative == y.negative ? larger + smaller : larger - smaller
    return X87WideFloat(negative: x.negative, significand: sum, exponent: x.exponent + 1)
  }

  static func - (a: X87WideFloat, b: X87WideFloat) -> X87WideFloat { a + -b }

  static func * (a: X87WideFloat, b: X87WideFloat) -> X87WideFloat {
    if a.isZero || b.isZero { return X87WideFloat(negative: a.negative != b.negative, significand: 0, exponent: 0) }
    // The 256-bit product is in [2^254, 2^256): its top 128 bits, normalized with the next bit.
    let (high, low) = a.significand.multipliedFullWidth(by: b.significand)
    let top = high >> 127 != 0 ? high : high << 1 | low >> 127
    let adjust = high >> 127 != 0 ? 128 : 127
    return X87WideFloat(
      negative: a.negative != b.negative, significand: top, exponent: a.exponent + b.exponent + adjust)
  }

  /// `a` / `b` for a nonzero `b`.
  static func / (a: X87WideFloat, b: X87WideFloat) -> X87WideFloat {
    if a.isZero { return X87WideFloat(negative: a.negative != b.negative, significand: 0, exponent: 0) }
    // (a * 2^127) / b: the high half a >> 1 is below b, so the quotient fits in 128 bits.
    let (q, _) = b.significand.dividingFullWidth((high: a.significand >> 1, low: a.significand << 127))
    return X87WideFloat(negative: a.negative != b.negative, significand: q, exponent: a.exponent - b.exponent - 127)
  }

  /// `self` / `n` for a small positive integer `n`.
  func divided(by n: Int) -> X87WideFloat { self / X87WideFloat(n) }

  /// Rounded to 64 bits under `control` (the range and the unmasked OE/UE responses of
  /// `X87SoftFloat.round`) as an inexact value (PE, and UE when tiny): it stands for an
  /// irrational result, of which it holds the first 128 bits.
  func rounded(_ control: X87SoftFloat.Control) -> X87SoftFloat.Outcome {
    if isZero { return X87SoftFloat.Outcome(value: X87SoftFloat.zero(negative), post: X87SoftFloat.Flag.precision) }
    var o = X87SoftFloat.round(negative, significand, exponent, sticky: true, control)
    o.post |= X87SoftFloat.Flag.precision
    return o
  }
}

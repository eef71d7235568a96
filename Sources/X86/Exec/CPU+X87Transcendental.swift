/// The x87 transcendentals (D9 F0-F3, F9, FB, FE, FF): F2XM1, FYL2X, FYL2XP1, FPATAN, FSIN,
/// FCOS, FSINCOS and FPTAN.
///
/// This file handles the stack, the special operands (the SDM's tables for each instruction,
/// which match atan2 and the limits of the logarithm) and the flags; `X87Transcendentals`
/// computes the finite cases in 128-bit precision, rounded once to 64 bits under FCW.RC (the
/// precision control does not apply). Every computed result sets PE, even one that happens to be
/// exact (FYL2X of 8 and 3 gives 9 with PE on the host); the exact special results (zeros, the
/// cosine of zero, FYL2X at 1) do not. The hardware's results are not correctly rounded either,
/// so the two may differ in the last bit (the difftest's `x87-transcendental` class allows that).
///
/// Outside their domains F2XM1 (|x| > 1) and FYL2XP1 (x <= -1) leave the result undefined; this
/// model returns x with PE, as the AMD host does. FSIN, FCOS, FSINCOS and FPTAN set C2 and leave
/// the stack alone for |x| >= 2^63; C2 is cleared otherwise.
extension CPU {
  /// False when the encoding is not a transcendental.
  func executeX87Transcendental(reg: Int, rm: Int) throws(Fault) -> Bool {
    let control = X87SoftFloat.Control(fcw: x87ControlWord).extended
    switch (reg, rm) {
    case (6, 0):  // F2XM1
      try requireX87(waiting: true)
      guard let x = x87Read(0) else {
        x87StackUnderflowResult(0, pop: false)
        return true
      }
      x87Apply(CPU.exp2MinusOne(x, control), to: 0)
    case (7, 6), (7, 7):  // FSIN, FCOS
      try requireX87(waiting: true)
      x87StatusWord &= ~X87Status.c2
      guard let x = x87Read(0) else {
        x87StackUnderflowResult(0, pop: false)
        return true
      }
      guard x87InTrigonometricRange(x) else { return true }
      let (sine, cosine) = CPU.sineAndCosine(x, control)
      x87Apply(rm == 6 ? sine : cosine, to: 0)
    case (6, 1), (7, 1), (6, 3):  // FYL2X, FYL2XP1, FPATAN: ST(1) = f(ST(1), ST(0)), pop
      try requireX87(waiting: true)
      guard let (x, y) = x87ReadTwo(0, 1) else {
        x87StackUnderflowResult(1, pop: true)
        return true
      }
      let outcome: X87SoftFloat.Outcome
      switch (reg, rm) {
      case (6, 1): outcome = CPU.yLog2X(y, x, control)
      case (7, 1): outcome = CPU.yLog2XPlusOne(y, x, control)
      default: outcome = CPU.arcTangent(y, x, control)
      }
      x87Apply(outcome, to: 1, pop: true)
    case (6, 2), (7, 3):  // FPTAN (ST(0) = tan, push 1), FSINCOS (ST(0) = sin, push cos)
      try requireX87(waiting: true)
      try executeX87ReplaceAndPush(tangent: rm == 2, control)
    default:
      return false
    }
    return true
  }

  /// FPTAN and FSINCOS: two results, the second pushed (stack faults as FXTRACT's).
  func executeX87ReplaceAndPush(tangent: Bool, _ control: X87SoftFloat.Control) throws(Fault) {
    x87StatusWord &= ~X87Status.c2
    // The stack faults come before the range check (measured on the host).
    guard let x = x87ReadForReplaceAndPush(), x87InTrigonometricRange(x) else { return }
    let (first, second): (X87SoftFloat.Outcome, X87SoftFloat.Outcome)
    if tangent {
      first = CPU.tangent(x, control)
      second = X87SoftFloat.Outcome(value: first.value.isNaN ? first.value : .one, pre: first.pre)
    } else {
      (first, second) = CPU.sineAndCosine(x, control)
    }
    let pre = first.pre | second.pre
    if pre & ~x87ControlWord & X87Status.exceptions != 0 {
      x87StatusWord &= ~X87Status.c1
      raiseX87(pre)
      return
    }
    x87Write(0, first.value)
    x87Push(second.value)
    let roundedUp = tangent ? first.roundedUp : second.roundedUp
    x87StatusWord = roundedUp ? x87StatusWord | X87Status.c1 : x87StatusWord & ~X87Status.c1
    raiseX87(pre | first.post | second.post)
  }

  /// For FSIN, FCOS, FSINCOS, FPTAN (C2 already clear): false, with C2 set, when |x| >= 2^63
  /// (nothing else changes).
  func x87InTrigonometricRange(_ x: X87Extended) -> Bool {
    guard X87SoftFloat.kind(x) == .finite && X87SoftFloat.unpack(x).1 >= 0 else { return true }
    x87StatusWord |= X87Status.c2
    return false
  }

  // MARK: The values

  /// F2XM1.
  static func exp2MinusOne(_ x: X87Extended, _ control: X87SoftFloat.Control) -> X87SoftFloat.Outcome {
    var pre: UInt16 = 0
    if let early = X87SoftFloat.screen(x, nil, denormalSource: false, pre: &pre) { return early }
    switch X87SoftFloat.kind(x) {
    case .zero: return X87SoftFloat.Outcome(value: x, pre: pre)
    case .infinity:
      return X87SoftFloat.Outcome(value: x.negative ? X87Extended.one.withSign(negative: true) : x, pre: pre)
    default: break
    }
    if x.exponent >= X87Extended.bias && x.withSign(negative: false) != .one {
      return X87SoftFloat.Outcome(value: x, pre: pre, post: X87SoftFloat.Flag.precision)  // |x| > 1
    }
    return X87SoftFloat.finish(pre, X87Transcendentals.exp2MinusOne(X87WideFloat(x)).rounded(control))
  }

  /// sin(x) and cos(x) for FSIN, FCOS and FSINCOS (x within range: finite ones below 2^63).
  static func sineAndCosine(_ x: X87Extended, _ control: X87SoftFloat.Control)
    -> (X87SoftFloat.Outcome, X87SoftFloat.Outcome)
  {
    var pre: UInt16 = 0
    if let early = X87SoftFloat.screen(x, nil, denormalSource: false, pre: &pre) { return (early, early) }
    switch X87SoftFloat.kind(x) {
    case .zero:
      return (X87SoftFloat.Outcome(value: x, pre: pre), X87SoftFloat.Outcome(value: .one, pre: pre))
    case .infinity:
      let invalid = X87SoftFloat.Outcome(value: .indefinite, pre: X87SoftFloat.Flag.invalid)
      return (invalid, invalid)
    default:
      // The caller checked the range (`x87InTrigonometricRange`); out of it, the indefinite.
      guard let (sine, cosine) = X87Transcendentals.sineAndCosine(of: x) else {
        let invalid = X87SoftFloat.Outcome(value: .indefinite, pre: X87SoftFloat.Flag.invalid)
        return (invalid, invalid)
      }
      return (X87SoftFloat.finish(pre, sine.rounded(control)), X87SoftFloat.finish(pre, cosine.rounded(control)))
    }
  }

  /// tan(x) for FPTAN (x within range).
  static func tangent(_ x: X87Extended, _ control: X87SoftFloat.Control) -> X87SoftFloat.Outcome {
    var pre: UInt16 = 0
    if let early = X87SoftFloat.screen(x, nil, denormalSource: false, pre: &pre) { return early }
    switch X87SoftFloat.kind(x) {
    case .zero: return X87SoftFloat.Outcome(value: x, pre: pre)
    case .infinity: return X87SoftFloat.Outcome(value: .indefinite, pre: X87SoftFloat.Flag.invalid)
    default:
      // The caller checked the range; out of it, the indefinite.
      guard let (sine, cosine) = X87Transcendentals.sineAndCosine(of: x) else {
        return X87SoftFloat.Outcome(value: .indefinite, pre: X87SoftFloat.Flag.invalid)
      }
      return X87SoftFloat.finish(pre, (sine / cosine).rounded(control))
    }
  }

  /// FYL2X: y * log2(x).
  static func yLog2X(_ y: X87Extended, _ x: X87Extended, _ control: X87SoftFloat.Control) -> X87SoftFloat.Outcome {
    var pre: UInt16 = 0
    if let early = X87SoftFloat.screen(x, y, denormalSource: false, pre: &pre) { return early }
    let invalid = X87SoftFloat.Outcome(value: .indefinite, pre: X87SoftFloat.Flag.invalid)
    let kx = X87SoftFloat.kind(x)
    let ky = X87SoftFloat.kind(y)
    if x.negative && kx != .zero { return invalid }
    switch kx {
    case .zero:
      // log2(0) = -infinity: ZE for a finite y (and then no DE for a denormal one).
      if ky == .zero { return invalid }
      let z = ky == .infinity ? pre : X87SoftFloat.Flag.zeroDivide
      return X87SoftFloat.Outcome(value: X87SoftFloat.infinity(!y.negative), pre: z)
    case .infinity:
      if ky == .zero { return invalid }
      return X87SoftFloat.Outcome(value: X87SoftFloat.infinity(y.negative), pre: pre)
    default:
      break
    }
    if x == .one {
      if ky == .infinity { return invalid }
      return X87SoftFloat.Outcome(value: X87SoftFloat.zero(y.negative), pre: pre)
    }
    let belowOne = x.exponent < X87Extended.bias  // the logarithm is negative
    switch ky {
    case .zero: return X87SoftFloat.Outcome(value: X87SoftFloat.zero(y.negative != belowOne), pre: pre)
    case .infinity: return X87SoftFloat.Outcome(value: X87SoftFloat.infinity(y.negative != belowOne), pre: pre)
    default:
      let product = X87WideFloat(y) * X87Transcendentals.log2(X87WideFloat(x))
      return X87SoftFloat.finish(pre, product.rounded(control))
    }
  }

  /// FYL2XP1: y * log2(x + 1).
  static func yLog2XPlusOne(_ y: X87Extended, _ x: X87Extended, _ control: X87SoftFloat.Control)
    -> X87SoftFloat.Outcome
  {
    var pre: UInt16 = 0
    if let early = X87SoftFloat.screen(x, y, denormalSource: false, pre: &pre) { return early }
    let invalid = X87SoftFloat.Outcome(value: .indefinite, pre: X87SoftFloat.Flag.invalid)
    let kx = X87SoftFloat.kind(x)
    let ky = X87SoftFloat.kind(y)
    switch kx {
    case .zero:
      if ky == .infinity { return invalid }
      return X87SoftFloat.Outcome(value: X87SoftFloat.zero(x.negative != y.negative), pre: pre)
    case .infinity:
      if x.negative || ky == .zero { return invalid }
      return X87SoftFloat.Outcome(value: X87SoftFloat.infinity(y.negative), pre: pre)
    default:
      break
    }
    // A zero or infinite y gives a zero or infinity of the sign of y * x, even for x <= -1.
    switch ky {
    case .zero: return X87SoftFloat.Outcome(value: X87SoftFloat.zero(y.negative != x.negative), pre: pre)
    case .infinity: return X87SoftFloat.Outcome(value: X87SoftFloat.infinity(y.negative != x.negative), pre: pre)
    default: break
    }
    let wide = X87WideFloat(x)
    let sum = X87WideFloat(1) + wide
    if sum.isZero || sum.negative {
      return X87SoftFloat.Outcome(value: x, pre: pre, post: X87SoftFloat.Flag.precision)  // x <= -1
    }
    // Below 1/4 the small-x form; above, log2 of 1 + x (exact in 128 bits there).
    let logarithm =
      wide.magnitudeExponent < -2 ? X87Transcendentals.log2OnePlus(wide) : X87Transcendentals.log2(sum)
    return X87SoftFloat.finish(pre, (X87WideFloat(y) * logarithm).rounded(control))
  }

  /// FPATAN: the angle of (x, y), as atan2(y, x).
  static func arcTangent(_ y: X87Extended, _ x: X87Extended, _ control: X87SoftFloat.Control)
    -> X87SoftFloat.Outcome
  {
    var pre: UInt16 = 0
    if let early = X87SoftFloat.screen(x, y, denormalSource: false, pre: &pre) { return early }
    let kx = X87SoftFloat.kind(x)
    let ky = X87SoftFloat.kind(y)
    let pi = X87Transcendentals.pi
    func angle(_ a: X87WideFloat) -> X87SoftFloat.Outcome {
      X87SoftFloat.finish(pre, (y.negative ? -a : a).rounded(control))
    }
    switch (ky, kx) {
    case (.zero, _):
      return x.negative ? angle(pi) : X87SoftFloat.Outcome(value: X87SoftFloat.zero(y.negative), pre: pre)
    case (.infinity, .infinity):
      return angle(x.negative ? pi.scaled(by: -2) * X87WideFloat(3) : pi.scaled(by: -2))
    case (.infinity, _), (_, .zero):
      return angle(pi.scaled(by: -1))
    case (_, .infinity):
      return x.negative ? angle(pi) : X87SoftFloat.Outcome(value: X87SoftFloat.zero(y.negative), pre: pre)
    default:
      return X87SoftFloat.finish(
        pre, X87Transcendentals.atan2(X87WideFloat(y), X87WideFloat(x)).rounded(control))
    }
  }
}

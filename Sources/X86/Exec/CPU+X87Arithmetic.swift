/// The x87 arithmetic: FADD, FSUB(R), FMUL, FDIV(R) and their integer and popping forms, FSQRT,
/// FPREM, FPREM1, FRNDINT, FSCALE and FXTRACT (the transcendentals: `CPU+X87Transcendental.swift`).
///
/// The values come from `X87SoftFloat`; this file picks the operands, checks the stack, and
/// applies the outcome: an unmasked IE, DE or ZE leaves every register (and TOP) alone and
/// clears C1; otherwise the destination is written, C1 says whether the result was rounded up,
/// the flags are raised (an unmasked OE or UE has the exponent-adjusted result written, #MF then
/// comes at the next waiting instruction) and popping forms pop. C0, C2 and C3 are left alone by
/// the five basic operations (measured on the host).
extension CPU {
  /// The operation of the ModRM reg field in D8/DC/DA/DE: 0 add, 1 multiply, 4 subtract, 5
  /// reverse subtract, 6 divide, 7 reverse divide (2 and 3 are the compares).
  static func x87Operation(_ reg: Int) -> (X87SoftFloat.Operation, reversed: Bool)? {
    switch reg {
    case 0: return (.add, false)
    case 1: return (.multiply, false)
    case 4: return (.subtract, false)
    case 5: return (.subtract, true)
    case 6: return (.divide, false)
    case 7: return (.divide, true)
    default: return nil
    }
  }

  /// The memory forms; false when the encoding is not one of this group's.
  func executeX87ArithmeticMemory(_ ins: DecodedInstruction, reg: Int, seg: Int, ea: UInt64) throws(Fault) -> Bool {
    let size: Int
    switch ins.opcode {
    case 0xD8, 0xDA: size = 4  // m32real, m32int
    case 0xDC: size = 8  // m64real
    case 0xDE: size = 2  // m16int
    default: return false
    }
    guard let (op, reversed) = CPU.x87Operation(reg) else { return false }
    try requireX87(waiting: true)
    let raw = try read(seg: seg, offset: ea, size: size)
    var source: X87Extended
    var denormal = false
    if ins.opcode == 0xD8 || ins.opcode == 0xDC {
      let (v, d, signaling) = X87Extended.from(raw, format: SoftFloat.Format(bits: size * 8))
      // Kept signalling, so the NaN rules see an SNaN (the result is quieted all the same).
      source = signaling ? X87Extended(significand: v.significand & ~(1 << 62), signExponent: v.signExponent) : v
      denormal = d
    } else {
      let shift = UInt64(64 - 8 * size)
      source = .from(integer: Int64(bitPattern: raw << shift) >> Int64(shift))
    }
    guard let st0 = x87Read(0) else {
      if x87ControlWord & X87Status.invalid != 0 { x87Write(0, .indefinite) }
      return true
    }
    let outcome = X87SoftFloat.compute(
      op, reversed ? source : st0, reversed ? st0 : source, X87SoftFloat.Control(fcw: x87ControlWord),
      denormalSource: denormal)
    x87Apply(outcome, to: 0)
    return true
  }

  /// The register forms; false when the encoding is not one of this group's.
  func executeX87ArithmeticRegister(_ ins: DecodedInstruction, reg: Int, rm: Int) throws(Fault) -> Bool {
    switch ins.opcode {
    case 0xD8, 0xDC, 0xDE:
      guard let (op, isReverse) = CPU.x87Operation(reg) else { return false }
      try requireX87(waiting: true)
      // D8: ST(0) = ST(0) op ST(i). DC and DE: ST(i) = ST(i) op ST(0), with the encodings of the
      // subtract/reverse subtract and divide/reverse divide pairs swapped (DC E0+i is FSUBR).
      let destination = ins.opcode == 0xD8 ? 0 : rm
      let reversed = (ins.opcode != 0xD8 && reg >= 4) != isReverse
      let pop = ins.opcode == 0xDE
      guard let (d, s) = x87ReadTwo(destination, ins.opcode == 0xD8 ? rm : 0) else {
        x87StackUnderflowResult(destination, pop: pop)
        return true
      }
      let outcome = X87SoftFloat.compute(
        op, reversed ? s : d, reversed ? d : s, X87SoftFloat.Control(fcw: x87ControlWord))
      x87Apply(outcome, to: destination, pop: pop)
      return true
    case 0xD9 where reg >= 6:
      return try executeX87Function(reg: reg, rm: rm)
    default:
      return false
    }
  }

  /// D9 F0-FF but FDECSTP and FINCSTP.
  func executeX87Function(reg: Int, rm: Int) throws(Fault) -> Bool {
    let control = X87SoftFloat.Control(fcw: x87ControlWord)
    switch (reg, rm) {
    case (7, 2):  // FSQRT
      try requireX87(waiting: true)
      guard let v = x87Read(0) else {
        x87StackUnderflowResult(0, pop: false)
        return true
      }
      x87Apply(X87SoftFloat.compute(.squareRoot, v, .zero, control), to: 0)
    case (7, 4):  // FRNDINT
      try requireX87(waiting: true)
      guard let v = x87Read(0) else {
        x87StackUnderflowResult(0, pop: false)
        return true
      }
      x87Apply(X87SoftFloat.roundToIntegral(v, control.extended), to: 0)
    case (7, 5):  // FSCALE
      try requireX87(waiting: true)
      guard let (a, b) = x87ReadTwo(0, 1) else {
        x87StackUnderflowResult(0, pop: false)
        return true
      }
      x87Apply(X87SoftFloat.scale(a, by: b, control.extended), to: 0)
    case (6, 5), (7, 0):  // FPREM1, FPREM
      try requireX87(waiting: true)
      // Without a quotient (a stack underflow, a NaN or invalid operand, an unmasked exception)
      // C1 and C2 are cleared and C0 and C3 keep their values (measured on the host).
      x87StatusWord &= ~X87Status.c2
      guard let (a, b) = x87ReadTwo(0, 1) else {
        x87StackUnderflowResult(0, pop: false)
        return true
      }
      let (outcome, quotient, complete) = X87SoftFloat.remainder(a, b, nearest: reg == 6, control.extended)
      guard x87Apply(outcome, to: 0), let quotient else { return true }
      var status = x87StatusWord & ~(X87Status.c0 | X87Status.c1 | X87Status.c2 | X87Status.c3)
      if complete {
        if quotient & 4 != 0 { status |= X87Status.c0 }
        if quotient & 2 != 0 { status |= X87Status.c3 }
        if quotient & 1 != 0 { status |= X87Status.c1 }
      } else {
        status |= X87Status.c2
      }
      x87StatusWord = status
    case (6, 4):  // FXTRACT
      try requireX87(waiting: true)
      try executeFXTRACT()
    default:
      return try executeX87Transcendental(reg: reg, rm: rm)
    }
    return true
  }

  /// FXTRACT: ST(0) = x becomes its exponent (ST(1) after the push) and the significand with
  /// the exponent 0 is pushed.
  func executeFXTRACT() throws(Fault) {
    guard let v = x87ReadForReplaceAndPush() else { return }
    let (exponent, significand, pre) = X87SoftFloat.extract(v)
    if pre & ~x87ControlWord & X87Status.exceptions != 0 {
      x87StatusWord &= ~X87Status.c1
      raiseX87(pre)
      return
    }
    x87Write(0, exponent)
    x87Push(significand)
    raiseX87(pre)
  }

  /// ST(0) for an instruction that replaces it and pushes a second result (FXTRACT, FPTAN,
  /// FSINCOS), or nil after a stack fault: an empty ST(0) (underflow) or a full ST(7) (overflow),
  /// which write the indefinite and push it again when IE is masked. The underflow's C1 = 0
  /// stands even when that push overflows too (measured on the host).
  func x87ReadForReplaceAndPush() -> X87Extended? {
    guard let v = x87Read(0) else {
      if x87ControlWord & X87Status.invalid != 0 {
        x87Write(0, .indefinite)
        x87Push(.indefinite)
        x87StatusWord &= ~X87Status.c1
      }
      return nil
    }
    if !x87IsEmpty(7) {
      if x87StackFault(overflow: true) {
        x87Write(0, .indefinite)
        x87Push(.indefinite)
      }
      return nil
    }
    return v
  }

  /// ST(`a`) and ST(`b`), or nil after a stack underflow (either empty).
  func x87ReadTwo(_ a: Int, _ b: Int) -> (X87Extended, X87Extended)? {
    if x87IsEmpty(a) || x87IsEmpty(b) {
      _ = x87StackFault(overflow: false)
      return nil
    }
    return (x87Register(physical: x87Physical(a)), x87Register(physical: x87Physical(b)))
  }

  /// After a stack underflow (already raised): a masked one writes the indefinite to ST(`i`)
  /// (and pops for a popping form); an unmasked one changes nothing.
  func x87StackUnderflowResult(_ i: Int, pop: Bool) {
    guard x87ControlWord & X87Status.invalid != 0 else { return }
    x87Write(i, .indefinite)
    if pop { x87Pop() }
  }

  /// Applies an outcome to ST(`i`) (see the file comment); returns false when an unmasked
  /// pre-computation exception left everything alone.
  @discardableResult
  func x87Apply(_ outcome: X87SoftFloat.Outcome, to i: Int, pop: Bool = false) -> Bool {
    if outcome.pre & ~x87ControlWord & X87Status.exceptions != 0 {
      x87StatusWord &= ~X87Status.c1
      raiseX87(outcome.pre)
      return false
    }
    x87Write(i, outcome.value)
    x87StatusWord = outcome.roundedUp ? x87StatusWord | X87Status.c1 : x87StatusWord & ~X87Status.c1
    raiseX87(outcome.pre | outcome.post)
    if pop { x87Pop() }
    return true
  }
}

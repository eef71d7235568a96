/// The x87 compares (FCOM, FUCOM, FCOMI, FICOM, FTST, FXAM), FCMOVcc, the rounded stores (FST
/// m32/m64, FIST, FISTP, FISTTP), the constants, FBLD/FBSTP and the environment (FSTENV, FLDENV,
/// FSAVE, FRSTOR; `CPU+X87Environment.swift`).
///
/// The host's (AMD) rules, each checked with a native program:
/// - compares: a NaN operand hides a denormal one (no DE); FCOM/FCOMI/FTST/FICOM raise IE for
///   any NaN, FUCOM/FUCOMI only for an SNaN; unsupported encodings raise IE in both; the
///   condition codes (or ZF/PF/CF) are written even when an unmasked exception is raised, but
///   the popping forms then do not pop; C1 is cleared;
/// - FST m32/m64: tininess after rounding (unbounded exponent); a denormal source raises no DE;
///   an unmasked OE or UE raises only that flag (no PE, C1 clear), stores nothing and does not
///   pop; a masked UE needs an inexact result; C1 says the magnitude was rounded up;
/// - FIST/FISTP/FISTTP: IE (and no PE) for NaNs, infinities and out-of-range results, stored as
///   the integer indefinite when masked; no DE for denormals;
/// - FLDL2T & co.: the exact constant rounded under RC, no PE and C1 clear.
extension CPU {
  /// FCW.RC.
  var x87Rounding: X87Extended.Rounding {
    X87Extended.Rounding(rawValue: Int((x87ControlWord >> 10) & 3)) ?? .nearest
  }

  /// Sets C1 (`on`) or clears it.
  func setX87C1(_ on: Bool) {
    x87StatusWord = on ? x87StatusWord | X87Status.c1 : x87StatusWord & ~X87Status.c1
  }

  /// Whether IE is masked in FCW.
  var x87InvalidMasked: Bool { x87ControlWord & X87Status.invalid != 0 }

  /// The memory forms; false when the encoding is not one of this group's.
  func executeX87TransferMemory(_ ins: DecodedInstruction, reg: Int, seg: Int, ea: UInt64) throws(Fault) -> Bool {
    switch (ins.opcode, reg) {
    case (0xD8, 2), (0xD8, 3), (0xDC, 2), (0xDC, 3):  // FCOM/FCOMP m32/m64
      try requireX87(waiting: true)
      let bits = ins.opcode == 0xD8 ? 32 : 64
      let raw = try read(seg: seg, offset: ea, size: bits / 8)
      let (b, denormal, invalid) = X87Extended.from(raw, format: SoftFloat.Format(bits: bits))
      x87CompareAndSetCC(
        x87Read(0), b, quiet: false, operandDenormal: denormal, operandNaN: invalid, pops: reg == 3 ? 1 : 0)
    case (0xDE, 2), (0xDE, 3), (0xDA, 2), (0xDA, 3):  // FICOM/FICOMP m16/m32
      try requireX87(waiting: true)
      let size = ins.opcode == 0xDE ? 2 : 4
      let raw = try read(seg: seg, offset: ea, size: size)
      let shift = UInt64(64 - 8 * size)
      let b = X87Extended.from(integer: Int64(bitPattern: raw << shift) >> Int64(shift))
      x87CompareAndSetCC(x87Read(0), b, quiet: false, pops: reg == 3 ? 1 : 0)
    case (0xD9, 2), (0xD9, 3), (0xDD, 2), (0xDD, 3):  // FST/FSTP m32/m64
      try requireX87(waiting: true)
      try x87StoreBinary(bits: ins.opcode == 0xD9 ? 32 : 64, seg: seg, ea: ea, pop: reg == 3)
    case (0xDF, 2), (0xDF, 3), (0xDB, 2), (0xDB, 3), (0xDF, 7):  // FIST/FISTP m16/m32, FISTP m64
      try requireX87(waiting: true)
      let size = reg == 7 ? 8 : (ins.opcode == 0xDF ? 2 : 4)
      try x87StoreInteger(bytes: size, seg: seg, ea: ea, rounding: x87Rounding, pop: reg != 2)
    case (0xDF, 1), (0xDB, 1), (0xDD, 1):  // FISTTP m16/m32/m64
      try requireX87(waiting: true)
      let size = ins.opcode == 0xDF ? 2 : (ins.opcode == 0xDB ? 4 : 8)
      try x87StoreInteger(bytes: size, seg: seg, ea: ea, rounding: .towardZero, pop: true)
    case (0xDF, 4):  // FBLD m80bcd
      try requireX87(waiting: true)
      let low = try read(seg: seg, offset: ea, size: 8)
      let high = try read(seg: seg, offset: ea &+ 8, size: 2)
      let bytes =
        (0..<8).map { UInt8(truncatingIfNeeded: low >> UInt64(8 * $0)) } + [
          UInt8(truncatingIfNeeded: high), UInt8(truncatingIfNeeded: high >> 8),
        ]
      x87Push(.fromPackedBCD(bytes))
    case (0xDF, 6):  // FBSTP m80bcd
      try requireX87(waiting: true)
      try x87StoreBCD(seg: seg, ea: ea)
    case (0xD9, 6), (0xD9, 4), (0xDD, 6), (0xDD, 4):  // FNSTENV, FLDENV, FNSAVE, FRSTOR
      try executeX87Environment(ins, reg: reg, seg: seg, ea: ea)
    default:
      return false
    }
    return true
  }

  /// The register forms; false when the encoding is not one of this group's.
  func executeX87TransferRegister(_ ins: DecodedInstruction, reg: Int, rm: Int) throws(Fault) -> Bool {
    switch (ins.opcode, reg) {
    case (0xD8, 2), (0xD8, 3), (0xDC, 2), (0xDC, 3), (0xDE, 2):
      // FCOM/FCOMP ST(i); DC D0-DF and DE D0-D7 are the undocumented aliases the host executes.
      try requireX87(waiting: true)
      let b = x87Read(rm)
      x87CompareAndSetCC(x87Read(0), b, quiet: false, pops: reg == 3 || ins.opcode == 0xDE ? 1 : 0)
    case (0xDE, 3) where rm == 1:  // FCOMPP
      try requireX87(waiting: true)
      let b = x87Read(1)
      x87CompareAndSetCC(x87Read(0), b, quiet: false, pops: 2)
    case (0xDD, 4), (0xDD, 5):  // FUCOM/FUCOMP ST(i)
      try requireX87(waiting: true)
      let b = x87Read(rm)
      x87CompareAndSetCC(x87Read(0), b, quiet: true, pops: reg == 5 ? 1 : 0)
    case (0xDA, 5) where rm == 1:  // FUCOMPP
      try requireX87(waiting: true)
      let b = x87Read(1)
      x87CompareAndSetCC(x87Read(0), b, quiet: true, pops: 2)
    case (0xDB, 5), (0xDB, 6), (0xDF, 5), (0xDF, 6):  // FUCOMI, FCOMI, FUCOMIP, FCOMIP
      try requireX87(waiting: true)
      let b = x87Read(rm)
      let a = x87Read(0)
      // C1 is left alone unless a stack fault cleared it (the host; the SDM says "0").
      let (order, flags) = x87Order(a, b, quiet: reg == 5)
      let masked = x87CompareMasked(a, b, flags)
      let f: UInt64
      switch order {
      case .greater: f = 0
      case .less: f = Flags.cf
      case .equal: f = Flags.zf
      case .unordered: f = Flags.zf | Flags.pf | Flags.cf
      }
      setStatusFlagsDroppingLazy(f)
      if masked && ins.opcode == 0xDF { x87Pop() }
    case (0xD9, 4) where rm == 4:  // FTST
      try requireX87(waiting: true)
      x87CompareAndSetCC(x87Read(0), .zero, quiet: false, pops: 0)
    case (0xD9, 4) where rm == 5:  // FXAM
      try requireX87(waiting: true)
      x87Examine()
    case (0xDA, 0...3), (0xDB, 0...3):  // FCMOVcc
      try requireX87(waiting: true)
      // B, E, BE, U (DA) and their negations (DB), as Jcc condition numbers.
      let cc = UInt8([2, 4, 6, 10][reg] + (ins.opcode == 0xDB ? 1 : 0))
      let a = x87Read(0)
      let b = x87Read(rm)
      guard a != nil, let source = b else {
        if x87InvalidMasked { x87Write(0, .indefinite) }
        return true
      }
      if condition(cc) { x87Write(0, source) }
    case (0xD9, 5) where (1...5).contains(rm):  // FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2
      try requireX87(waiting: true)
      x87Push(x87Constant(rm))
    case (0xDF, 0):  // FFREEP ST(i) (undocumented, executed by the host)
      try requireX87(waiting: true)
      x87SetEmpty(rm, true)
      x87Pop()
    default:
      return false
    }
    return true
  }

  // MARK: Compares

  /// The outcome of a compare.
  enum X87Order {
    case greater, less, equal, unordered
  }

  /// Orders `a` against `b` (nil: an empty register, the stack fault already raised) and returns
  /// the exception flags to raise. `quiet`: FUCOM (IE only for an SNaN). `operandDenormal` and
  /// `operandNaN` describe a memory operand before its conversion (a denormal single or double
  /// is normal in 80 bits; an SNaN has been quieted).
  func x87Order(
    _ a: X87Extended?, _ b: X87Extended?, quiet: Bool, operandDenormal: Bool = false, operandNaN: Bool = false
  ) -> (X87Order, UInt16) {
    guard let a, let b else { return (.unordered, 0) }
    if a.isUnsupported || b.isUnsupported { return (.unordered, X87Status.invalid) }
    if a.isNaN || b.isNaN {
      let signaling = a.isSignalingNaN || b.isSignalingNaN || operandNaN
      return (.unordered, quiet && !signaling ? 0 : X87Status.invalid)
    }
    let denormal = a.isDenormal || b.isDenormal || operandDenormal
    let c = a.compare(b)
    return (c == 0 ? .equal : (c < 0 ? .less : .greater), denormal ? X87Status.denormal : 0)
  }

  /// Raises a compare's `flags`; whether every exception it raised (the stack fault included,
  /// when `a` or `b` is nil) is masked.
  func x87CompareMasked(_ a: X87Extended?, _ b: X87Extended?, _ flags: UInt16) -> Bool {
    if a == nil || b == nil { return x87InvalidMasked }
    return flags == 0 || raiseX87(flags)
  }

  /// A compare into C3/C2/C0 (C1 cleared), then `pops` pops unless an unmasked exception was
  /// raised (the condition codes are written either way, as on the host).
  func x87CompareAndSetCC(
    _ a: X87Extended?, _ b: X87Extended?, quiet: Bool, operandDenormal: Bool = false, operandNaN: Bool = false,
    pops: Int
  ) {
    let (order, flags) = x87Order(a, b, quiet: quiet, operandDenormal: operandDenormal, operandNaN: operandNaN)
    let masked = x87CompareMasked(a, b, flags)
    let cc: UInt16
    switch order {
    case .greater: cc = 0
    case .less: cc = X87Status.c0
    case .equal: cc = X87Status.c3
    case .unordered: cc = X87Status.c3 | X87Status.c2 | X87Status.c0
    }
    x87StatusWord = (x87StatusWord & ~(X87Status.c3 | X87Status.c2 | X87Status.c1 | X87Status.c0)) | cc
    guard masked else { return }
    for _ in 0..<pops { x87Pop() }
  }

  /// FXAM: C1 is the sign of ST(0) (of its contents even when empty); C3/C2/C0 its class.
  func x87Examine() {
    let v = x87Register(physical: x87Physical(0))
    let cc: UInt16
    if x87IsEmpty(0) {
      cc = X87Status.c3 | X87Status.c0
    } else if v.isUnsupported {
      cc = 0
    } else if v.isNaN {
      cc = X87Status.c0
    } else if v.isInfinity {
      cc = X87Status.c2 | X87Status.c0
    } else if v.isZero {
      cc = X87Status.c3
    } else if v.isDenormal {
      cc = X87Status.c3 | X87Status.c2
    } else {
      cc = X87Status.c2
    }
    let c1 = v.negative ? X87Status.c1 : 0
    x87StatusWord = (x87StatusWord & ~(X87Status.c3 | X87Status.c2 | X87Status.c1 | X87Status.c0)) | cc | c1
  }

  // MARK: Stores

  /// FST/FSTP m32/m64: ST(0) rounded to `bits` under FCW.RC (not PC).
  func x87StoreBinary(bits: Int, seg: Int, ea: UInt64, pop: Bool) throws(Fault) {
    let f = SoftFloat.Format(bits: bits)
    try probeWrite(seg: seg, offset: ea, size: bits / 8)  // a #PF comes before any x87 exception
    guard let v = x87Read(0) else {
      guard x87InvalidMasked else { return }
      try write(seg: seg, offset: ea, size: bits / 8, value: f.defaultNaN)
      if pop { x87Pop() }
      return
    }
    let r = v.rounded(to: f, x87Rounding)
    let masks = x87ControlWord
    setX87C1(false)
    if r.invalid {
      guard raiseX87(X87Status.invalid) else { return }
    } else if r.overflow && masks & X87Status.overflow == 0 {
      raiseX87(X87Status.overflow)
      return
    } else if r.tiny && masks & X87Status.underflow == 0 {
      raiseX87(X87Status.underflow)
      return
    } else {
      var flags: UInt16 = 0
      if r.overflow {
        flags = X87Status.overflow | X87Status.precision
      } else if r.tiny && r.inexact {
        flags = X87Status.underflow | X87Status.precision
      } else if r.inexact {
        flags = X87Status.precision
      }
      setX87C1(r.roundedUp)
      if flags != 0 { raiseX87(flags) }
    }
    try write(seg: seg, offset: ea, size: bits / 8, value: r.bits)
    if pop { x87Pop() }
  }

  /// FIST/FISTP/FISTTP: ST(0) as a `bytes`-byte integer rounded under `rounding`.
  func x87StoreInteger(bytes: Int, seg: Int, ea: UInt64, rounding: X87Extended.Rounding, pop: Bool) throws(Fault) {
    try probeWrite(seg: seg, offset: ea, size: bytes)
    var bits = X87Extended.integerIndefinite(bytes: bytes)
    if let v = x87Read(0) {
      if let r = v.integer(bytes: bytes, rounding) {
        bits = r.bits
        setX87C1(r.roundedUp)
        if r.inexact { raiseX87(X87Status.precision) }
      } else {
        setX87C1(false)
        guard raiseX87(X87Status.invalid) else { return }
      }
    } else if !x87InvalidMasked {
      return
    }
    try write(seg: seg, offset: ea, size: bytes, value: bits)
    if pop { x87Pop() }
  }

  /// FBSTP: ST(0) rounded to an integer under FCW.RC, as 18 packed BCD digits and a sign byte
  /// (0x80 for any negative value, -0 included); IE and the BCD indefinite for NaNs, infinities,
  /// unsupported encodings and magnitudes of 10^18 or more after rounding.
  func x87StoreBCD(seg: Int, ea: UInt64) throws(Fault) {
    try probeWrite(seg: seg, offset: ea, size: 10)
    var bytes = X87Extended.bcdIndefinite
    if let v = x87Read(0) {
      let (m, inexact, up) =
        v.isUnsupported || v.exponent == 0x7FFF ? (nil, false, false) : v.roundedMagnitude(x87Rounding)
      if let m, m < X87Extended.bcdLimit {
        bytes = X87Extended.packedBCD(m, negative: v.negative)
        setX87C1(up)
        if inexact { raiseX87(X87Status.precision) }
      } else {
        setX87C1(false)
        guard raiseX87(X87Status.invalid) else { return }
      }
    } else if !x87InvalidMasked {
      return
    }
    var low: UInt64 = 0
    for i in 0..<8 { low |= UInt64(bytes[i]) << UInt64(8 * i) }
    try write(seg: seg, offset: ea, size: 8, value: low)
    try write(seg: seg, offset: ea &+ 8, size: 2, value: UInt64(bytes[8]) | UInt64(bytes[9]) << 8)
    x87Pop()
  }

  // MARK: Constants

  /// The constants of D9 E9-ED: each significand truncated to 64 bits, and whether the bits
  /// beyond are more than half an ulp (round to nearest then rounds up; none of them is exact or
  /// a tie). log2(10), log2(e), pi, log10(2), ln(2).
  static let x87Constants: [(signExponent: UInt16, significand: UInt64, nearestRoundsUp: Bool)] = [
    (0x4000, 0xD49A_784B_CD1B_8AFE, false),
    (0x3FFF, 0xB8AA_3B29_5C17_F0BB, true),
    (0x4000, 0xC90F_DAA2_2168_C234, true),
    (0x3FFD, 0x9A20_9A84_FBCF_F798, true),
    (0x3FFE, 0xB172_17F7_D1CF_79AB, true),
  ]

  /// Constant `rm` (1-5) rounded under FCW.RC; all are positive, so down and toward zero truncate.
  func x87Constant(_ rm: Int) -> X87Extended {
    let c = CPU.x87Constants[rm - 1]
    let up: Bool
    switch x87Rounding {
    case .nearest: up = c.nearestRoundsUp
    case .up: up = true
    case .down, .towardZero: up = false
    }
    return X87Extended(significand: c.significand + (up ? 1 : 0), signExponent: c.signExponent)
  }
}

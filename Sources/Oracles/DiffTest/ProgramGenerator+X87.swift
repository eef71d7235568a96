/// The `x87` and `x87-all` classes: x87 instructions (D8-DF, WAIT) on a random but interesting
/// x87 state (every RC, PC and exception mask, TOP anywhere, some registers empty, zeros,
/// denormals, infinities, QNaNs and SNaNs, extreme exponents, integers), the whole x87 state
/// compared after each instruction (FCW, FSW, the abridged tag, ST0-7, memory; not FOP, FIP, FDP).
///
/// `X87Form.all` lists every x87 instruction form; `X87Form.implemented` names those the model
/// executes. `x87` draws from those, `x87-all` from everything: add a name to `implemented` when
/// the model gains the instruction.
public struct X87Form: Sendable {
  /// How the form takes its operand.
  public enum Operand: Sendable {
    /// A memory operand of `bytes` bytes (the environment ones 28 or 108).
    case memory(bytes: Int)
    /// ST(i) in ModRM.rm (register form, mod 11).
    case stack
    /// A fixed ModRM byte (mod 11, rm = `rm`): FLD1, FCHS, FNSTSW AX...
    case fixed(rm: Int)
    /// No ModRM (WAIT).
    case none
  }

  /// The mnemonic with its operand kind ("fadd m32", "fadd st,st(i)").
  public var name: String
  /// D8-DF (0x9B for WAIT).
  public var opcode: UInt8
  /// ModRM.reg.
  public var reg: Int
  public var operand: Operand
  /// The status flags the form reads (FCMOVcc) or writes (FCOMI & co.).
  public var readsFlags: UInt64 = 0
  public var writesFlags: UInt64 = 0

  /// Every x87 instruction form (SDM vol. 2, the opcode map's escape tables).
  public static let all: [X87Form] = {
    var forms: [X87Form] = []
    func mem(_ name: String, _ op: UInt8, _ reg: Int, _ bytes: Int) {
      forms.append(X87Form(name: name, opcode: op, reg: reg, operand: .memory(bytes: bytes)))
    }
    func st(_ name: String, _ op: UInt8, _ reg: Int, reads: UInt64 = 0, writes: UInt64 = 0) {
      forms.append(X87Form(name: name, opcode: op, reg: reg, operand: .stack, readsFlags: reads, writesFlags: writes))
    }
    func fixed(_ name: String, _ op: UInt8, _ modrm: Int) {
      forms.append(X87Form(name: name, opcode: op, reg: (modrm >> 3) & 7, operand: .fixed(rm: modrm & 7)))
    }
    let arithmetic = ["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"]
    for (r, n) in arithmetic.enumerated() {
      mem("\(n) m32", 0xD8, r, 4)
      st("\(n) st,st(i)", 0xD8, r)
      mem("fi\(n.dropFirst()) m32int", 0xDA, r, 4)
      mem("\(n) m64", 0xDC, r, 8)
      mem("fi\(n.dropFirst()) m16int", 0xDE, r, 2)
    }
    // DC and DE register forms: st(i),st0 (SUB/SUBR and DIV/DIVR swap places).
    for (r, n) in ["fadd", "fmul", "", "", "fsubr", "fsub", "fdivr", "fdiv"].enumerated() where !n.isEmpty {
      st("\(n) st(i),st", 0xDC, r)
      st("\(n)p st(i),st", 0xDE, r)
    }
    fixed("fcompp", 0xDE, 0xD9)
    // D9
    mem("fld m32", 0xD9, 0, 4)
    mem("fst m32", 0xD9, 2, 4)
    mem("fstp m32", 0xD9, 3, 4)
    mem("fldenv", 0xD9, 4, 28)
    mem("fldcw", 0xD9, 5, 2)
    mem("fnstenv", 0xD9, 6, 28)
    mem("fnstcw", 0xD9, 7, 2)
    st("fld st(i)", 0xD9, 0)
    st("fxch st(i)", 0xD9, 1)
    let d9: [(String, Int)] = [
      ("fnop", 0xD0), ("fchs", 0xE0), ("fabs", 0xE1), ("ftst", 0xE4), ("fxam", 0xE5), ("fld1", 0xE8),
      ("fldl2t", 0xE9), ("fldl2e", 0xEA), ("fldpi", 0xEB), ("fldlg2", 0xEC), ("fldln2", 0xED), ("fldz", 0xEE),
      ("f2xm1", 0xF0), ("fyl2x", 0xF1), ("fptan", 0xF2), ("fpatan", 0xF3), ("fxtract", 0xF4), ("fprem1", 0xF5),
      ("fdecstp", 0xF6), ("fincstp", 0xF7), ("fprem", 0xF8), ("fyl2xp1", 0xF9), ("fsqrt", 0xFA),
      ("fsincos", 0xFB), ("frndint", 0xFC), ("fscale", 0xFD), ("fsin", 0xFE), ("fcos", 0xFF),
    ]
    for (n, m) in d9 { fixed(n, 0xD9, m) }
    // DA, DB: FCMOVcc (reading CF, ZF, PF), FUCOMPP, FUCOMI/FCOMI (writing ZF, PF, CF; clearing OF, SF, AF)
    let cmov: [(String, UInt64)] = [
      ("fcmovb", FlagBits.cf), ("fcmove", FlagBits.zf), ("fcmovbe", FlagBits.cf | FlagBits.zf), ("fcmovu", FlagBits.pf),
    ]
    for (r, (n, f)) in cmov.enumerated() {
      st("\(n) st,st(i)", 0xDA, r, reads: f)
      st("fcmovn\(n.dropFirst(5)) st,st(i)", 0xDB, r, reads: f)
    }
    fixed("fucompp", 0xDA, 0xE9)
    mem("fild m32", 0xDB, 0, 4)
    mem("fisttp m32", 0xDB, 1, 4)
    mem("fist m32", 0xDB, 2, 4)
    mem("fistp m32", 0xDB, 3, 4)
    mem("fld m80", 0xDB, 5, 10)
    mem("fstp m80", 0xDB, 7, 10)
    fixed("fnclex", 0xDB, 0xE2)
    fixed("fninit", 0xDB, 0xE3)
    let comi = FlagBits.arithmetic
    st("fucomi st,st(i)", 0xDB, 5, writes: comi)
    st("fcomi st,st(i)", 0xDB, 6, writes: comi)
    st("fucomip st,st(i)", 0xDF, 5, writes: comi)
    st("fcomip st,st(i)", 0xDF, 6, writes: comi)
    // DD
    mem("fld m64", 0xDD, 0, 8)
    mem("fisttp m64", 0xDD, 1, 8)
    mem("fst m64", 0xDD, 2, 8)
    mem("fstp m64", 0xDD, 3, 8)
    mem("frstor", 0xDD, 4, 108)
    mem("fnsave", 0xDD, 6, 108)
    mem("fnstsw m16", 0xDD, 7, 2)
    st("ffree st(i)", 0xDD, 0)
    st("fst st(i)", 0xDD, 2)
    st("fstp st(i)", 0xDD, 3)
    st("fucom st(i)", 0xDD, 4)
    st("fucomp st(i)", 0xDD, 5)
    // DF
    mem("fild m16", 0xDF, 0, 2)
    mem("fisttp m16", 0xDF, 1, 2)
    mem("fist m16", 0xDF, 2, 2)
    mem("fistp m16", 0xDF, 3, 2)
    mem("fbld", 0xDF, 4, 10)
    mem("fild m64", 0xDF, 5, 8)
    mem("fbstp", 0xDF, 6, 10)
    mem("fistp m64", 0xDF, 7, 8)
    fixed("fnstsw ax", 0xDF, 0xE0)
    forms.append(X87Form(name: "wait", opcode: 0x9B, reg: 0, operand: .none))
    return forms
  }()

  /// The forms the X86 model executes today (the `x87` class draws from these only). Keep this
  /// the one place that says so: add names as the model gains instructions.
  public static let implemented: Set<String> = [
    "fninit", "fldcw", "fnstcw", "fnstsw m16", "fnstsw ax", "fnclex", "fnop", "wait", "ffree st(i)", "fincstp",
    "fdecstp", "fxch st(i)", "fld m32", "fld m64", "fld m80", "fld st(i)", "fild m16", "fild m32", "fild m64",
    "fstp m80", "fst st(i)", "fstp st(i)", "fld1", "fldz", "fchs", "fabs",
    // Compares, FCMOVcc, rounded stores, constants, BCD, environment (`CPU+X87Transfer.swift`).
    "fcom m32", "fcomp m32", "fcom m64", "fcomp m64", "fcom st,st(i)", "fcomp st,st(i)", "fcompp", "fucom st(i)",
    "fucomp st(i)", "fucompp", "ficom m16int", "ficomp m16int", "ficom m32int", "ficomp m32int", "fcomi st,st(i)",
    "fcomip st,st(i)", "fucomi st,st(i)", "fucomip st,st(i)", "ftst", "fxam", "fcmovb st,st(i)", "fcmove st,st(i)",
    "fcmovbe st,st(i)", "fcmovu st,st(i)", "fcmovnb st,st(i)", "fcmovne st,st(i)", "fcmovnbe st,st(i)",
    "fcmovnu st,st(i)", "fst m32", "fstp m32", "fst m64", "fstp m64", "fist m16", "fistp m16", "fist m32",
    "fistp m32", "fistp m64", "fisttp m16", "fisttp m32", "fisttp m64", "fldl2t", "fldl2e", "fldpi", "fldlg2",
    "fldln2", "fbld", "fbstp", "fldenv", "fnstenv", "frstor", "fnsave",
    // Arithmetic (`CPU+X87Arithmetic.swift`, `X87SoftFloat.swift`).
    "fadd m32", "fadd st,st(i)", "fiadd m32int", "fadd m64", "fiadd m16int", "fadd st(i),st", "faddp st(i),st",
    "fmul m32", "fmul st,st(i)", "fimul m32int", "fmul m64", "fimul m16int", "fmul st(i),st", "fmulp st(i),st",
    "fsub m32", "fsub st,st(i)", "fisub m32int", "fsub m64", "fisub m16int", "fsub st(i),st", "fsubp st(i),st",
    "fsubr m32", "fsubr st,st(i)", "fisubr m32int", "fsubr m64", "fisubr m16int", "fsubr st(i),st", "fsubrp st(i),st",
    "fdiv m32", "fdiv st,st(i)", "fidiv m32int", "fdiv m64", "fidiv m16int", "fdiv st(i),st", "fdivp st(i),st",
    "fdivr m32", "fdivr st,st(i)", "fidivr m32int", "fdivr m64", "fidivr m16int", "fdivr st(i),st", "fdivrp st(i),st",
    "fsqrt", "frndint", "fprem", "fprem1", "fscale", "fxtract",
  ]

  /// The implemented forms.
  public static let implementedForms: [X87Form] = all.filter { implemented.contains($0.name) }
}

extension ProgramGenerator {
  /// An 80-bit value as (significand, sign and exponent) from an interesting family.
  mutating func interestingExtended() -> (UInt64, UInt16) {
    let sign: UInt16 = rng.chance(0.5) ? 0x8000 : 0
    let fraction = rng.next() & 0x7FFF_FFFF_FFFF_FFFF
    switch rng.below(12) {
    case 0: return (0, sign)  // zero
    case 1: return (fraction | (rng.chance(0.5) ? 1 : 0), sign)  // denormal
    case 2: return (1 << 63, sign | 0x7FFF)  // infinity
    case 3: return (0xC000_0000_0000_0000 | (fraction >> UInt64(rng.below(64))), sign | 0x7FFF)  // QNaN
    case 4: return (0x8000_0000_0000_0000 | ((fraction >> 1) | 1) >> UInt64(rng.below(62)), sign | 0x7FFF)  // SNaN
    case 5: return (1 << 63 | fraction, sign | UInt16(0x7FFE - rng.below(70)))  // huge
    case 6: return (1 << 63 | fraction, sign | UInt16(1 + rng.below(70)))  // tiny normal
    case 7:
      // A small integer: n << (63 - k) with exponent 0x3FFF + k.
      let n = UInt64(1 + rng.below(100_000))
      let k = 63 - n.leadingZeroBitCount
      return (n << UInt64(63 - k), sign | UInt16(0x3FFF + k))
    case 8:
      // Around 1 and 2^±64 (conversions to integers, rounding).
      return (1 << 63 | (rng.chance(0.5) ? fraction : fraction >> 50), sign | UInt16(0x3FFF - 2 + rng.below(67)))
    case 9: return (1 << 63, sign | 0x3FFF)  // ±1
    default: return (1 << 63 | fraction, sign | UInt16(0x3FFF - 200 + rng.below(400)))
    }
  }

  /// The x87 part of a random initial state: FCW with every RC/PC and random exception masks
  /// (mostly all masked), FSW with a random TOP and condition codes (no pending exception),
  /// random interesting registers, about one in five empty. `fx` is the FXSAVE image (stack order).
  mutating func randomizeX87(_ fx: inout [UInt8]) {
    let masks: UInt16 = rng.chance(0.6) ? 0x3F : UInt16(rng.below(64))
    let fcw = masks | 0x40 | UInt16(rng.below(4)) << 8 | UInt16(rng.below(4)) << 10
    let top = rng.below(8)
    let conditions: UInt16 = UInt16(rng.below(16))
    let fsw =
      UInt16(top) << 11 | (conditions & 7) << 8 | (conditions & 8) << 11
    var tag: UInt8 = 0
    for j in 0..<8 {
      let physical = (top + j) & 7
      let empty = rng.chance(0.2)
      if !empty { tag |= 1 << UInt8(physical) }
      let (significand, signExponent) = interestingExtended()
      for k in 0..<8 { fx[FXLayout.st(j) + k] = UInt8(truncatingIfNeeded: significand >> (8 * UInt64(k))) }
      fx[FXLayout.st(j) + 8] = UInt8(truncatingIfNeeded: signExponent)
      fx[FXLayout.st(j) + 9] = UInt8(truncatingIfNeeded: signExponent >> 8)
      for k in 10..<16 { fx[FXLayout.st(j) + k] = 0 }
    }
    fx[FXLayout.fcw] = UInt8(truncatingIfNeeded: fcw)
    fx[FXLayout.fcw + 1] = UInt8(truncatingIfNeeded: fcw >> 8)
    fx[FXLayout.fsw] = UInt8(truncatingIfNeeded: fsw)
    fx[FXLayout.fsw + 1] = UInt8(truncatingIfNeeded: fsw >> 8)
    fx[FXLayout.ftw] = tag
  }

  /// Interesting memory operands for the x87 classes: each 16-byte sandbox chunk, with some
  /// probability, starts with a special single, double or extended value (the rest of the
  /// sandbox stays random bytes).
  mutating func sprinkleX87Operands(_ sandbox: inout [UInt8]) {
    for chunk in stride(from: 0, to: sandbox.count, by: 16) where rng.chance(0.5) {
      let (significand, signExponent) = interestingExtended()
      let negative = signExponent & 0x8000 != 0
      let exponent = Int(signExponent & 0x7FFF)
      let bytes: [UInt8]
      switch rng.below(3) {
      case 0:  // single: the extended value's class carried over (exponent rebiased, clamped)
        let e = exponent == 0 ? 0 : exponent == 0x7FFF ? 0xFF : min(max(exponent - 16383 + 127, 0), 0xFF)
        let bits =
          (negative ? UInt32(1) << 31 : 0) | UInt32(e) << 23 | UInt32(truncatingIfNeeded: significand >> 40) & 0x7F_FFFF
        bytes = littleEndian(UInt64(bits), count: 4)
      case 1:  // double
        let e = exponent == 0 ? 0 : exponent == 0x7FFF ? 0x7FF : min(max(exponent - 16383 + 1023, 0), 0x7FF)
        let bits = (negative ? UInt64(1) << 63 : 0) | UInt64(e) << 52 | (significand >> 11) & 0xF_FFFF_FFFF_FFFF
        bytes = littleEndian(bits, count: 8)
      default:
        bytes = littleEndian(significand, count: 8) + littleEndian(UInt64(signExponent), count: 2)
      }
      for (k, b) in bytes.enumerated() where chunk + k < sandbox.count { sandbox[chunk + k] = b }
    }
  }

  /// One random x87 instruction from `forms`.
  mutating func emitX87(from forms: [X87Form], _ c: InstructionClass) {
    let form = rng.pick(forms)
    var e = Encoder()
    if form.name == "fnstenv" || form.name == "fnsave" {
      // The stored FIP, FCS, FOP, FDP and FDS (bytes 12-27 of the 32-bit image) are not compared:
      // AMD stores them only while FSW.ES is set, the model (as Intel) always. Zero them after
      // the store, by setup instructions through the same base register.
      let base = destination()
      setRegister(base, sandboxAddress() & ~31, c)
      e.emit(opcode: [form.opcode], reg: form.reg, rm: .memory(base: base, index: nil, scale: 1, displacement: 0))
      add(e.bytes, c)
      for displacement: Int32 in [12, 20] {
        var zero = Encoder()
        zero.emit(
          size: 64, opcode: [0xC7], reg: 0, rm: .memory(base: base, index: nil, scale: 1, displacement: displacement),
          immediate: [0, 0, 0, 0])
        add(zero.bytes, c, setup: true)
      }
      return
    }
    switch form.operand {
    case .memory where rng.chance(0.5):
      // At the start of a 16-byte chunk, where `sprinkleX87Operands` may have put a value.
      let base = destination()
      setRegister(base, sandboxAddress() & ~15, c)
      e.emit(opcode: [form.opcode], reg: form.reg, rm: .memory(base: base, index: nil, scale: 1, displacement: 0))
    case .memory:
      e.emit(opcode: [form.opcode], reg: form.reg, rm: memoryOperand(c))
    case .stack:
      e.emit(opcode: [form.opcode], reg: form.reg, rm: .register(rng.below(8)))
    case .fixed(let rm):
      e.emit(opcode: [form.opcode], reg: form.reg, rm: .register(rm))
    case .none:
      e.emit(opcode: [form.opcode])
    }
    add(e.bytes, c, defines: form.writesFlags, reads: form.readsFlags)
  }
}

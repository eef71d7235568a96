/// The `x87-transcendental` class: F2XM1, FYL2X, FYL2XP1, FPATAN, FSIN, FCOS, FSINCOS and
/// FPTAN. Their results are not correctly rounded on any CPU (AMD and Intel differ in the last
/// bit), so a program with them compares the x87 registers within an ulp and FSW without C1
/// (`StateComparison.withinAnULP`). So that no compared value is more than one transcendental
/// away from the host's, each instruction gets fresh operands first: setup instructions write an
/// 80-bit value into the sandbox and FLD it (after FFREE ST(7), so the push does not overflow),
/// in the domain the SDM gives where it gives one (|x| <= 1 for F2XM1, |x| < 1 - sqrt(2)/2 for
/// FYL2XP1), else from the interesting families and angles near multiples of pi/2. Now and then
/// ST(7) is left full (the overflow of FPTAN and FSINCOS) or an operand is freed (the underflow).
extension ProgramGenerator {
  /// (name, ModRM byte after D9, operands: 1 = ST(0), 2 = ST(0) and ST(1)).
  static let x87TranscendentalForms: [(String, UInt8, Int)] = [
    ("f2xm1", 0xF0, 1), ("fyl2x", 0xF1, 2), ("fptan", 0xF2, 1), ("fpatan", 0xF3, 2), ("fyl2xp1", 0xF9, 2),
    ("fsincos", 0xFB, 1), ("fsin", 0xFE, 1), ("fcos", 0xFF, 1),
  ]

  mutating func emitX87Transcendental() {
    let (name, modrm, operands) = rng.pick(Self.x87TranscendentalForms)
    if operands == 2 { loadX87Operand(interestingExtended()) }  // ST(1) after the next push
    let x: (UInt64, UInt16)
    switch name {
    case "f2xm1": x = rng.chance(0.85) ? unitRangeExtended(maximumExponent: 0x3FFF) : interestingExtended()
    case "fyl2xp1": x = rng.chance(0.85) ? unitRangeExtended(maximumExponent: 0x3FFD) : interestingExtended()
    case "fsin", "fcos", "fsincos", "fptan": x = rng.chance(0.5) ? angleExtended() : interestingExtended()
    default: x = interestingExtended()
    }
    loadX87Operand(x)
    if rng.chance(0.05) {
      // An empty operand: the stack underflow.
      add([0xDD, 0xC0 + UInt8(rng.below(operands))], .x87Transcendental, setup: true)
    }
    add([0xD9, modrm], .x87Transcendental)
  }

  /// Setup: FFREE ST(7) (mostly), the value written to a 16-byte sandbox chunk, FLD m80 of it.
  mutating func loadX87Operand(_ value: (UInt64, UInt16)) {
    let c = InstructionClass.x87Transcendental
    if rng.chance(0.9) { add([0xDD, 0xC7], c, setup: true) }
    let base = destination()
    setRegister(base, sandboxAddress() & ~15, c)
    let (significand, signExponent) = value
    for (displacement, size, bits) in [
      (Int32(0), 32, significand & 0xFFFF_FFFF), (4, 32, significand >> 32), (8, 16, UInt64(signExponent)),
    ] {
      var store = Encoder()
      store.emit(
        size: size, opcode: [0xC7], reg: 0, rm: .memory(base: base, index: nil, scale: 1, displacement: displacement),
        immediate: littleEndian(bits, count: size / 8))
      add(store.bytes, c, setup: true)
    }
    var load = Encoder()
    load.emit(opcode: [0xDB], reg: 5, rm: .memory(base: base, index: nil, scale: 1, displacement: 0))
    add(load.bytes, c, setup: true)
  }

  /// A value of magnitude up to 2^(maximumExponent - 16383) (exactly that power of two at the
  /// top when it is 1, else below 0.2929 for FYL2XP1's 0.25 binade), down to denormals, either sign.
  mutating func unitRangeExtended(maximumExponent: Int) -> (UInt64, UInt16) {
    let sign: UInt16 = rng.chance(0.5) ? 0x8000 : 0
    let fraction = rng.next() & 0x7FFF_FFFF_FFFF_FFFF
    switch rng.below(10) {
    case 0: return (1 << 63, sign | UInt16(maximumExponent))  // the edge: 1, or 0.25
    case 1: return (0, sign)
    case 2: return (fraction, sign)  // denormal
    default:
      let exponent = maximumExponent - (rng.chance(0.7) ? rng.below(8) : rng.below(200))
      // In FYL2XP1's top binade keep below 1 - sqrt(2)/2 = 1.1715... * 2^-2.
      let limit: UInt64 = exponent == 0x3FFD ? 0x15F6_1998_0C43_1000 : 0x7FFF_FFFF_FFFF_FFFF
      let top = exponent == 0x3FFF ? UInt64(0) : fraction % (limit + 1)
      return (1 << 63 | top, sign | UInt16(max(exponent, 1)))
    }
  }

  /// An angle: near a multiple of pi/2 (k * pi/2 plus a small offset), or of any size up to
  /// 2^66 (the range limit of FSIN & co. is 2^63).
  mutating func angleExtended() -> (UInt64, UInt16) {
    let sign: UInt16 = rng.chance(0.5) ? 0x8000 : 0
    if rng.chance(0.5) {
      // k * pi/2 with pi/2 = 0xC90FDAA22168C234C4C6 * 2^-79 (80 bits), perturbed in its low bits.
      let k = UInt128(1 + rng.below(1 << UInt(rng.below(20) + 1)))
      let halfPi: UInt128 = 0xC90F_DAA2_2168_C234_C4C6
      let product = k * halfPi ^ UInt128(rng.next() & 0xFFFF)
      let width = 128 - product.leadingZeroBitCount
      let significand = UInt64(truncatingIfNeeded: product >> UInt128(width - 64))
      let exponent = 0x3FFF + (width - 1) - 79
      return (significand, sign | UInt16(exponent))
    }
    let exponent = 0x3FFF - 70 + rng.below(137)
    return (1 << 63 | rng.next() & 0x7FFF_FFFF_FFFF_FFFF, sign | UInt16(exponent))
  }
}

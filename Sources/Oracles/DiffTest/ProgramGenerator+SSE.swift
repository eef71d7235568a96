/// The `sse` class: the SSE/SSE2 instructions the model executes (`CPU+SSE.swift`,
/// `CPU+SSEInteger.swift`) on random XMM registers (the initial state's XMM0-15 are random) and
/// sandbox memory: moves of every width, the integer arithmetic, compare, pack, unpack, shuffle
/// and shift instructions, the bitwise instructions of the floating-point types, and transfers to
/// and from general registers, and the floating-point compares, MIN and MAX. 16-byte memory
/// operands are aligned nine times in ten (the tenth checks the #GP(0) of a misaligned operand).
/// XMM lanes often hold special floating-point values (`floatLaneValue`) and MXCSR varies
/// (`randomMXCSR`).
extension ProgramGenerator {
  /// How an SSE form takes its operands.
  enum SSEShape {
    /// xmm, xmm/m128 (aligned memory unless `unaligned`).
    case full(unaligned: Bool)
    /// xmm, xmm/m128, imm8.
    case fullImmediate
    /// xmm, xmm/m64 or m32 (`bytes`).
    case narrow(bytes: Int)
    /// xmm, xmm/m64 or m32, imm8 (the scalar compares).
    case narrowImmediate(bytes: Int)
    /// m128 (or m64/m32), xmm: a store; `registerForm` allows xmm, xmm too.
    case store(bytes: Int, unaligned: Bool, registerForm: Bool)
    /// xmm, m64 only (MOVLPS/MOVHPS loads); `registerForm` allows xmm, xmm (MOVHLPS, MOVLHPS).
    case halfLoad(registerForm: Bool)
    /// 66 0F 71/72/73 /n ib on an XMM register.
    case shiftImmediate
    /// xmm, r/m32|64 (MOVD/MOVQ, PINSRW with imm8 when `immediate`).
    case fromGeneral(immediate: Bool)
    /// r/m32|64, xmm (MOVD/MOVQ store).
    case toGeneral
    /// r32|64, xmm/m32|m64 (`bytes`): the conversions to integers.
    case toGeneralFrom(bytes: Int)
    /// r32, xmm (PMOVMSKB, MOVMSKPS/PD, PEXTRW with imm8 when `immediate`).
    case registerResult(immediate: Bool)
  }

  /// (prefix, opcode, shape) of every form generated.
  static let sseForms: [(UInt8?, UInt8, SSEShape)] = {
    var forms: [(UInt8?, UInt8, SSEShape)] = []
    // The SSE2 integer instructions with xmm, xmm/m128.
    let integer: [UInt8] =
      Array(0x60...0x6D) + [0x74, 0x75, 0x76]
      + [0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD8, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF]
      + [0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE8, 0xE9, 0xEA, 0xEB, 0xEC, 0xED, 0xEE, 0xEF]
      + [0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE]
    for op in integer { forms.append((0x66, op, .full(unaligned: false))) }
    forms += [
      (0x66, 0x70, .fullImmediate), (0xF3, 0x70, .fullImmediate), (0xF2, 0x70, .fullImmediate),
      (nil, 0xC6, .fullImmediate), (0x66, 0xC6, .fullImmediate),
      (0x66, 0x71, .shiftImmediate), (0x66, 0x72, .shiftImmediate), (0x66, 0x73, .shiftImmediate),
      (0x66, 0x6E, .fromGeneral(immediate: false)), (0x66, 0xC4, .fromGeneral(immediate: true)),
      (0x66, 0x7E, .toGeneral), (0x66, 0xD7, .registerResult(immediate: false)),
      (nil, 0x50, .registerResult(immediate: false)), (0x66, 0x50, .registerResult(immediate: false)),
      (0x66, 0xC5, .registerResult(immediate: true)),
      // Moves.
      (nil, 0x10, .full(unaligned: true)), (0x66, 0x10, .full(unaligned: true)),
      (nil, 0x28, .full(unaligned: false)), (0x66, 0x28, .full(unaligned: false)),
      (0x66, 0x6F, .full(unaligned: false)), (0xF3, 0x6F, .full(unaligned: true)),
      (0xF3, 0x10, .narrow(bytes: 4)), (0xF2, 0x10, .narrow(bytes: 8)), (0xF3, 0x7E, .narrow(bytes: 8)),
      (nil, 0x11, .store(bytes: 16, unaligned: true, registerForm: true)),
      (0x66, 0x11, .store(bytes: 16, unaligned: true, registerForm: true)),
      (nil, 0x29, .store(bytes: 16, unaligned: false, registerForm: true)),
      (0x66, 0x7F, .store(bytes: 16, unaligned: false, registerForm: true)),
      (0xF3, 0x7F, .store(bytes: 16, unaligned: true, registerForm: true)),
      (nil, 0x2B, .store(bytes: 16, unaligned: false, registerForm: false)),
      (0x66, 0xE7, .store(bytes: 16, unaligned: false, registerForm: false)),
      (0xF3, 0x11, .store(bytes: 4, unaligned: true, registerForm: true)),
      (0xF2, 0x11, .store(bytes: 8, unaligned: true, registerForm: true)),
      (0x66, 0xD6, .store(bytes: 8, unaligned: true, registerForm: true)),
      (nil, 0x13, .store(bytes: 8, unaligned: true, registerForm: false)),
      (nil, 0x17, .store(bytes: 8, unaligned: true, registerForm: false)),
      (0x66, 0x13, .store(bytes: 8, unaligned: true, registerForm: false)),
      (0x66, 0x17, .store(bytes: 8, unaligned: true, registerForm: false)),
      (nil, 0x12, .halfLoad(registerForm: true)), (nil, 0x16, .halfLoad(registerForm: true)),
      (0x66, 0x12, .halfLoad(registerForm: false)), (0x66, 0x16, .halfLoad(registerForm: false)),
      // The floating-point types' bitwise and shuffling instructions.
      (nil, 0x14, .full(unaligned: false)), (nil, 0x15, .full(unaligned: false)),
      (0x66, 0x14, .full(unaligned: false)), (0x66, 0x15, .full(unaligned: false)),
    ]
    for op: UInt8 in [0x54, 0x55, 0x56, 0x57] {
      forms.append((nil, op, .full(unaligned: false)))
      forms.append((0x66, op, .full(unaligned: false)))
    }
    // Conversions.
    forms += [
      (0xF3, 0x2A, .fromGeneral(immediate: false)), (0xF2, 0x2A, .fromGeneral(immediate: false)),
      (0xF3, 0x2C, .toGeneralFrom(bytes: 4)), (0xF3, 0x2D, .toGeneralFrom(bytes: 4)),
      (0xF2, 0x2C, .toGeneralFrom(bytes: 8)), (0xF2, 0x2D, .toGeneralFrom(bytes: 8)),
      (0xF3, 0x5A, .narrow(bytes: 4)), (0xF2, 0x5A, .narrow(bytes: 8)), (nil, 0x5A, .narrow(bytes: 8)),
      (0x66, 0x5A, .full(unaligned: false)), (nil, 0x5B, .full(unaligned: false)),
      (0x66, 0x5B, .full(unaligned: false)), (0xF3, 0x5B, .full(unaligned: false)),
      (0xF3, 0xE6, .narrow(bytes: 8)), (0x66, 0xE6, .full(unaligned: false)), (0xF2, 0xE6, .full(unaligned: false)),
    ]
    // Floating-point arithmetic, compares, minimum and maximum (twice as often: NaNs, denormals
    // and MXCSR).
    for _ in 0..<2 {
      for op: UInt8 in [0x5D, 0x5F, 0x58, 0x59, 0x5C, 0x5E, 0x51] {
        forms += [
          (nil, op, .full(unaligned: false)), (0x66, op, .full(unaligned: false)), (0xF3, op, .narrow(bytes: 4)),
          (0xF2, op, .narrow(bytes: 8)),
        ]
      }
      forms += [
        (nil, 0xC2, .fullImmediate), (0x66, 0xC2, .fullImmediate), (0xF3, 0xC2, .narrowImmediate(bytes: 4)),
        (0xF2, 0xC2, .narrowImmediate(bytes: 8)),
        (nil, 0x2E, .narrow(bytes: 4)), (nil, 0x2F, .narrow(bytes: 4)), (0x66, 0x2E, .narrow(bytes: 8)),
        (0x66, 0x2F, .narrow(bytes: 8)),
      ]
    }
    return forms
  }()

  /// A memory operand for `bytes` bytes: one base register at a sandbox address with a small
  /// displacement, `bytes`-aligned for 16-byte operands that must be (nine times in ten).
  mutating func sseMemory(bytes: Int, aligned: Bool, _ c: InstructionClass = .sse) -> RMOperand {
    let base = destination()
    var address = sandboxAddress(margin: 0x100)
    var displacement = Int32(rng.below(64)) - 32
    if aligned && rng.chance(0.9) {
      address &= ~15
      displacement &= ~15
    }
    setRegister(base, address, c)
    return .memory(base: base, index: nil, scale: 1, displacement: displacement)
  }

  /// A 64-bit XMM half: random bits, or two singles or one double from the special values
  /// (zeros, denormals, infinities, quiet and signaling NaNs, ones, the extremes).
  mutating func sseHalf() -> UInt64 {
    let singles: [UInt32] = [
      0, 0x8000_0000, 0x0000_0001, 0x8000_0001, 0x007F_FFFF, 0x0080_0000, 0x3F80_0000, 0xBF80_0000, 0x7F7F_FFFF,
      0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFFA0_0000, 0x4049_0FDB,
    ]
    let doubles: [UInt64] = [
      0, 0x8000_0000_0000_0000, 1, 0x8000_0000_0000_0001, 0x000F_FFFF_FFFF_FFFF, 0x0010_0000_0000_0000,
      0x3FF0_0000_0000_0000, 0xBFF0_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF, 0x7FF0_0000_0000_0000,
      0xFFF0_0000_0000_0000, 0x7FF8_0000_0000_0000, 0xFFF8_0000_0000_0000, 0x7FF0_0000_0000_0001,
      0xFFF4_0000_0000_0000, 0x4009_21FB_5444_2D18,
    ]
    switch rng.below(4) {
    case 0: return UInt64(rng.pick(singles)) | UInt64(rng.pick(singles)) << 32
    case 1: return rng.pick(doubles)
    case 2: return rng.chance(0.5) ? rng.interesting(bits: 64) : rng.next()
    default:  // nearby ordinary values, so compares see equal and close operands
      return rng.chance(0.5)
        ? 0x3F80_0000_4000_0000 | UInt64(rng.below(4)) : 0x4000_0000_0000_0000 | UInt64(rng.below(4))
    }
  }

  /// MXCSR for a program with SSE: the default mostly; otherwise DAZ, FTZ, the rounding control
  /// and (one time in eight) some exceptions unmasked.
  mutating func randomMXCSR() -> UInt32 {
    guard rng.chance(0.4) else { return 0x1F80 }
    var m: UInt32 = 0x1F80
    if rng.chance(0.5) { m |= 0x40 }  // DAZ
    if rng.chance(0.3) { m |= 0x8000 }  // FTZ
    m |= UInt32(rng.below(4)) << 13  // RC
    if rng.chance(0.125) { m &= ~(UInt32(rng.below(64)) << 7) }
    return m
  }

  mutating func emitSSE() {
    let (prefix, opcode, shape) = rng.pick(Self.sseForms)
    let prefixes = prefix.map { [$0] } ?? []
    let xmm = rng.below(16)
    var e = Encoder()
    switch shape {
    case .full(let unaligned):
      let rm: RMOperand = rng.chance(0.3) ? sseMemory(bytes: 16, aligned: !unaligned) : .register(rng.below(16))
      e.emit(prefixes: prefixes, opcode: [0x0F, opcode], reg: xmm, rm: rm)
    case .fullImmediate:
      let rm: RMOperand = rng.chance(0.3) ? sseMemory(bytes: 16, aligned: true) : .register(rng.below(16))
      e.emit(prefixes: prefixes, opcode: [0x0F, opcode], reg: xmm, rm: rm, immediate: [UInt8(rng.below(256))])
    case .narrow(let bytes):
      let rm: RMOperand = rng.chance(0.4) ? sseMemory(bytes: bytes, aligned: false) : .register(rng.below(16))
      e.emit(prefixes: prefixes, opcode: [0x0F, opcode], reg: xmm, rm: rm)
    case .narrowImmediate(let bytes):
      let rm: RMOperand = rng.chance(0.4) ? sseMemory(bytes: bytes, aligned: false) : .register(rng.below(16))
      let predicate = rng.chance(0.9) ? UInt8(rng.below(8)) : UInt8(rng.below(256))
      e.emit(prefixes: prefixes, opcode: [0x0F, opcode], reg: xmm, rm: rm, immediate: [predicate])
    case .store(let bytes, let unaligned, let registerForm):
      let rm: RMOperand =
        registerForm && rng.chance(0.4)
        ? .register(rng.below(16)) : sseMemory(bytes: bytes, aligned: bytes == 16 && !unaligned)
      e.emit(prefixes: prefixes, opcode: [0x0F, opcode], reg: xmm, rm: rm)
    case .halfLoad(let registerForm):
      let rm: RMOperand =
        registerForm && rng.chance(0.4) ? .register(rng.below(16)) : sseMemory(bytes: 8, aligned: false)
      e.emit(prefixes: prefixes, opcode: [0x0F, opcode], reg: xmm, rm: rm)
    case .shiftImmediate:
      let kinds: [Int] = opcode == 0x73 ? [2, 3, 6, 7] : [2, 4, 6]
      let count =
        rng.chance(0.7) ? UInt8(rng.below(opcode == 0x71 ? 18 : opcode == 0x72 ? 34 : 66)) : UInt8(rng.below(256))
      e.emit(prefixes: prefixes, opcode: [0x0F, opcode], reg: rng.pick(kinds), rm: .register(xmm), immediate: [count])
    case .fromGeneral(let immediate):
      let source = rng.chance(0.3) ? sseMemory(bytes: 8, aligned: false) : .register(anyRegister())
      e.emit(
        size: immediate ? 32 : rng.pick([32, 64]), prefixes: prefixes, opcode: [0x0F, opcode], reg: xmm, rm: source,
        immediate: immediate ? [UInt8(rng.below(256))] : [])
    case .toGeneral:
      let target = rng.chance(0.3) ? sseMemory(bytes: 8, aligned: false) : .register(destination())
      e.emit(size: rng.pick([32, 64]), prefixes: prefixes, opcode: [0x0F, opcode], reg: xmm, rm: target)
    case .toGeneralFrom(let bytes):
      let source: RMOperand = rng.chance(0.3) ? sseMemory(bytes: bytes, aligned: false) : .register(rng.below(16))
      e.emit(size: rng.pick([32, 64]), prefixes: prefixes, opcode: [0x0F, opcode], reg: destination(), rm: source)
    case .registerResult(let immediate):
      e.emit(
        prefixes: prefixes, opcode: [0x0F, opcode], reg: destination(), rm: .register(xmm),
        immediate: immediate ? [UInt8(rng.below(256))] : [])
    }
    add(e.bytes, .sse)
  }
}

/// The `mmx` class: the MMX instructions on MM0-7 (random initial values in the x87 register
/// slots), EMMS, MOVD/MOVQ to and from MM, the SSE and SSE2 additions on MM registers, MASKMOVQ,
/// the SSSE3 forms without prefix, MOVQ2DQ/MOVDQ2Q and the conversions between MM and XMM. The
/// x87 state after them (TOP, the abridged tag, the registers' exponent bytes) is compared too.
extension ProgramGenerator {
  /// How an MMX form takes its operands.
  enum MMXShape {
    /// mm, mm/m64; `immediate`: an imm8 follows.
    case full(immediate: Bool)
    /// mm/m64, mm (a store; `registerForm` allows mm, mm).
    case store(registerForm: Bool)
    /// 0F 71/72/73 /n ib on an MM register.
    case shiftImmediate
    /// mm, r/m32|64 (MOVD/MOVQ; PINSRW with imm8 when `immediate`).
    case fromGeneral(immediate: Bool)
    /// r/m32|64, mm (MOVD/MOVQ store).
    case toGeneral
    /// r32, mm (PMOVMSKB; PEXTRW with imm8 when `immediate`).
    case registerResult(immediate: Bool)
    /// MASKMOVQ mm, mm (to DS:RDI).
    case maskMove
    /// No operands (EMMS).
    case none
    /// xmm, mm/m64 (CVTPI2PS/PD).
    case xmmFromMMX
    /// mm, xmm/m`bytes` (CVT(T)PS2PI, CVT(T)PD2PI; 16 bytes aligned).
    case mmxFromXMM(bytes: Int)
    /// xmm, mm (MOVQ2DQ) or mm, xmm (MOVDQ2Q): registers only.
    case registerPair(xmmDestination: Bool)
  }

  /// (prefix, opcode bytes after 0F, shape) of every `mmx` form generated.
  static let mmxForms: [(UInt8?, [UInt8], MMXShape)] = {
    var forms: [(UInt8?, [UInt8], MMXShape)] = []
    let binary: [UInt8] =
      Array(0x60...0x6B) + [0x74, 0x75, 0x76] + Array(0xD1...0xD5) + Array(0xD8...0xDF) + Array(0xE0...0xE5)
      + Array(0xE8...0xEF) + Array(0xF1...0xF6) + Array(0xF8...0xFE)
    for op in binary { forms.append((nil, [op], .full(immediate: false))) }
    for op in Array(0x00...0x0B) + [0x1C, 0x1D, 0x1E] as [UInt8] {
      forms.append((nil, [0x38, op], .full(immediate: false)))
    }
    forms += [
      (nil, [0x3A, 0x0F], .full(immediate: true)), (nil, [0x70], .full(immediate: true)),
      (nil, [0x6F], .full(immediate: false)),
      (nil, [0x7F], .store(registerForm: true)), (nil, [0xE7], .store(registerForm: false)),
      (nil, [0x71], .shiftImmediate), (nil, [0x72], .shiftImmediate), (nil, [0x73], .shiftImmediate),
      (nil, [0x6E], .fromGeneral(immediate: false)), (nil, [0xC4], .fromGeneral(immediate: true)),
      (nil, [0x7E], .toGeneral), (nil, [0xD7], .registerResult(immediate: false)),
      (nil, [0xC5], .registerResult(immediate: true)), (nil, [0xF7], .maskMove), (nil, [0x77], .none),
      (nil, [0x2A], .xmmFromMMX), (0x66, [0x2A], .xmmFromMMX),
      (nil, [0x2C], .mmxFromXMM(bytes: 8)), (nil, [0x2D], .mmxFromXMM(bytes: 8)),
      (0x66, [0x2C], .mmxFromXMM(bytes: 16)), (0x66, [0x2D], .mmxFromXMM(bytes: 16)),
      (0xF3, [0xD6], .registerPair(xmmDestination: true)), (0xF2, [0xD6], .registerPair(xmmDestination: false)),
    ]
    return forms
  }()

  /// An MM register or 8 bytes of sandbox memory (rarely at the guard page: a faulting read
  /// must leave the x87 state alone).
  private mutating func mmOrMemory() -> RMOperand {
    rng.chance(0.3) ? memoryOperand(.mmx) : .register(rng.below(8))
  }

  mutating func emitMMX() {
    let (prefix, opcode, shape) = rng.pick(Self.mmxForms)
    let prefixes = prefix.map { [$0] } ?? []
    let op = [0x0F] + opcode
    let mm = rng.below(8)
    var e = Encoder()
    switch shape {
    case .full(let immediate):
      let imm: [UInt8] =
        immediate ? [opcode == [0x3A, 0x0F] && rng.chance(0.8) ? UInt8(rng.below(18)) : UInt8(rng.below(256))] : []
      e.emit(prefixes: prefixes, opcode: op, reg: mm, rm: mmOrMemory(), immediate: imm)
    case .store(let registerForm):
      let rm: RMOperand =
        registerForm && rng.chance(0.4) ? .register(rng.below(8)) : memoryOperand(.mmx)
      e.emit(prefixes: prefixes, opcode: op, reg: mm, rm: rm)
    case .shiftImmediate:
      let kinds: [Int] = opcode == [0x73] ? [2, 6] : [2, 4, 6]
      let count =
        rng.chance(0.7) ? UInt8(rng.below(opcode == [0x71] ? 18 : opcode == [0x72] ? 34 : 66)) : UInt8(rng.below(256))
      e.emit(prefixes: prefixes, opcode: op, reg: rng.pick(kinds), rm: .register(mm), immediate: [count])
    case .fromGeneral(let immediate):
      let source = rng.chance(0.3) ? sseMemory(bytes: 8, aligned: false, .mmx) : .register(anyRegister())
      e.emit(
        size: immediate ? 32 : rng.pick([32, 64]), prefixes: prefixes, opcode: op, reg: mm, rm: source,
        immediate: immediate ? [UInt8(rng.below(256))] : [])
    case .toGeneral:
      let target = rng.chance(0.3) ? sseMemory(bytes: 8, aligned: false, .mmx) : .register(destination())
      e.emit(size: rng.pick([32, 64]), prefixes: prefixes, opcode: op, reg: mm, rm: target)
    case .registerResult(let immediate):
      e.emit(
        prefixes: prefixes, opcode: op, reg: destination(), rm: .register(mm),
        immediate: immediate ? [UInt8(rng.below(256))] : [])
    case .maskMove:
      setRegister(7, sandboxAddress(margin: 0x100), .mmx)
      e.emit(prefixes: prefixes, opcode: op, reg: mm, rm: .register(rng.below(8)))
    case .none:
      e.emit(prefixes: prefixes, opcode: op)
    case .xmmFromMMX:
      e.emit(prefixes: prefixes, opcode: op, reg: rng.below(16), rm: mmOrMemory())
    case .mmxFromXMM(let bytes):
      let rm: RMOperand =
        rng.chance(0.3) ? sseMemory(bytes: bytes, aligned: bytes == 16, .mmx) : .register(rng.below(16))
      e.emit(prefixes: prefixes, opcode: op, reg: mm, rm: rm)
    case .registerPair(let xmmDestination):
      e.emit(
        prefixes: prefixes, opcode: op, reg: xmmDestination ? rng.below(16) : mm,
        rm: .register(xmmDestination ? mm : rng.below(16)))
    }
    add(e.bytes, .mmx)
  }
}

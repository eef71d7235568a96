/// One emitter per instruction class. Flag effects follow the SDM's "Flags Affected" sections.
extension ProgramGenerator {
  private static let all = FlagBits.arithmetic
  private static let logicDefined = FlagBits.cf | FlagBits.of | FlagBits.sf | FlagBits.zf | FlagBits.pf

  mutating func emitALU() {
    let size = operandSize()
    let w: UInt8 = size == 8 ? 0 : 1
    let rex = size == 8 && rng.chance(0.5)
    switch rng.below(10) {
    case 0...4:
      // ADD OR ADC SBB AND SUB XOR CMP in their four forms.
      let op = rng.below(8)
      let isLogic = op == 1 || op == 4 || op == 6
      let reads = op == 2 || op == 3 ? FlagBits.cf : 0
      let defines = isLogic ? Self.logicDefined : Self.all
      let undefines = isLogic ? FlagBits.af : 0
      var e = Encoder()
      switch rng.below(4) {
      case 0:
        let rm = registerOrMemory(.alu)
        let lock: [UInt8] = rm != .register(0) && isMemory(rm) && op != 7 && rng.chance(0.3) ? [0xF0] : []
        e.emit(size: size, prefixes: lock, opcode: [UInt8(op << 3) | w], reg: anyRegister(), rm: rm, forceREX: rex)
      case 1:
        let rm = registerOrMemory(.alu, destination: false)
        e.emit(size: size, opcode: [UInt8(op << 3) | 2 | w], reg: destination(), rm: rm, forceREX: rex)
      case 2:
        e.emit(size: size, opcode: [UInt8(op << 3) | 4 | w], immediate: immediate(size: size == 64 ? 32 : size))
      default:
        let rm = registerOrMemory(.alu)
        let lock: [UInt8] = isMemory(rm) && op != 7 && rng.chance(0.3) ? [0xF0] : []
        if size != 8 && rng.chance(0.5) {
          e.emit(size: size, prefixes: lock, opcode: [0x83], reg: op, rm: rm, immediate: immediate(size: 8))
        } else {
          e.emit(
            size: size, prefixes: lock, opcode: [size == 8 ? 0x80 : 0x81], reg: op, rm: rm,
            immediate: immediate(size: size == 64 ? 32 : size), forceREX: rex)
        }
      }
      add(e.bytes, .alu, defines: defines, undefines: undefines, reads: reads)
    case 5:
      // TEST
      var e = Encoder()
      if rng.chance(0.5) {
        e.emit(size: size, opcode: [0x84 | w], reg: anyRegister(), rm: registerOrMemory(.alu), forceREX: rex)
      } else {
        e.emit(
          size: size, opcode: [0xF6 | w], reg: 0, rm: registerOrMemory(.alu),
          immediate: immediate(size: size == 64 ? 32 : size), forceREX: rex)
      }
      add(e.bytes, .alu, defines: Self.logicDefined, undefines: FlagBits.af)
    case 6:
      // INC DEC
      var e = Encoder()
      let rm = registerOrMemory(.alu)
      let lock: [UInt8] = isMemory(rm) && rng.chance(0.3) ? [0xF0] : []
      e.emit(size: size, prefixes: lock, opcode: [0xFE | w], reg: rng.below(2), rm: rm, forceREX: rex)
      add(e.bytes, .alu, defines: Self.all & ~FlagBits.cf)
    case 7:
      // NOT NEG
      var e = Encoder()
      let neg = rng.chance(0.5)
      let rm = registerOrMemory(.alu)
      let lock: [UInt8] = isMemory(rm) && rng.chance(0.3) ? [0xF0] : []
      e.emit(size: size, prefixes: lock, opcode: [0xF6 | w], reg: neg ? 3 : 2, rm: rm, forceREX: rex)
      add(e.bytes, .alu, defines: neg ? Self.all : 0)
    default:
      // MOV in its forms.
      var e = Encoder()
      switch rng.below(4) {
      case 0: e.emit(size: size, opcode: [0x88 | w], reg: anyRegister(), rm: registerOrMemory(.alu), forceREX: rex)
      case 1:
        e.emit(
          size: size, opcode: [0x8A | w], reg: destination(), rm: registerOrMemory(.alu, destination: false),
          forceREX: rex)
      case 2:
        e.emit(
          size: size, opcode: [0xC6 | w], reg: 0, rm: registerOrMemory(.alu),
          immediate: immediate(size: size == 64 ? 32 : size), forceREX: rex)
      default:
        let r = destination()
        if size == 8 {
          e.emit(size: 8, opcode: [0xB0], opcodeRegister: r, immediate: immediate(size: 8), forceREX: rex)
        } else {
          let n = size == 16 ? 2 : size == 32 ? 4 : 8
          e.emit(
            size: size, opcode: [0xB8], opcodeRegister: r,
            immediate: littleEndian(rng.interesting(bits: n * 8), count: n))
        }
      }
      add(e.bytes, .alu)
    }
  }

  func isMemory(_ rm: RMOperand) -> Bool {
    if case .memory = rm { return true }
    return false
  }

  /// Flags defined and undefined by a shift or rotate (kind = ModRM.reg) of `width` bits by
  /// `count` (nil: unknown, from CL).
  static func shiftFlags(kind: Int, width: Int, count: Int?) -> (defines: UInt64, undefines: UInt64) {
    let isRotate = kind < 4
    let isThroughCarry = kind == 2 || kind == 3
    guard let count else {
      if isRotate { return (0, FlagBits.of) }
      return (0, FlagBits.of | FlagBits.af | (width < 32 ? FlagBits.cf : 0))
    }
    let c = count & (width == 64 ? 63 : 31)
    if c == 0 { return (0, 0) }
    let of: (UInt64, UInt64) = c == 1 ? (FlagBits.of, 0) : (0, FlagBits.of)
    if isRotate {
      // RCL/RCR leave CF unchanged when the count modulo width+1 is 0.
      return (of.0 | (isThroughCarry ? 0 : FlagBits.cf), of.1)
    }
    var defines = FlagBits.cf | FlagBits.sf | FlagBits.zf | FlagBits.pf | of.0
    var undefines = FlagBits.af | of.1
    if width < 32 && c >= width {
      defines &= ~FlagBits.cf
      undefines |= FlagBits.cf
    }
    return (defines, undefines)
  }

  mutating func emitShift() {
    let size = operandSize()
    let w: UInt8 = size == 8 ? 0 : 1
    let kind = rng.chance(0.05) ? 6 : rng.pick([0, 1, 2, 3, 4, 5, 7])
    let rm = registerOrMemory(.shift)
    let reads = kind == 2 || kind == 3 ? FlagBits.cf : 0
    var e = Encoder()
    var count: Int?
    switch rng.below(3) {
    case 0:
      count = 1
      e.emit(size: size, opcode: [0xD0 | w], reg: kind, rm: rm, forceREX: size == 8 && rng.chance(0.5))
    case 1:
      let c = rng.chance(0.5) ? rng.pick([0, 1, 2, size - 1, size, size + 1, 31, 32, 33, 63, 64]) : rng.below(256)
      count = c
      e.emit(
        size: size, opcode: [0xC0 | w], reg: kind, rm: rm, immediate: [UInt8(truncatingIfNeeded: c)],
        forceREX: size == 8 && rng.chance(0.5))
    default:
      if rng.chance(0.7) {
        let c = rng.chance(0.5) ? rng.pick([0, 1, 2, size - 1, size, size + 1, 31, 32, 63]) : rng.below(256)
        count = c
        var m = Encoder()
        m.emit(size: 8, opcode: [0xB1], immediate: [UInt8(truncatingIfNeeded: c)])
        if case .memory(let base, let index, _, _) = rm, base == 1 || index == 1 {
          // The count would clobber the address register: fall back to an unknown count.
          count = nil
        } else {
          add(m.bytes, .shift, setup: true)
        }
      }
      e.emit(size: size, opcode: [0xD2 | w], reg: kind, rm: rm, forceREX: size == 8 && rng.chance(0.5))
    }
    let f = Self.shiftFlags(kind: kind, width: size, count: count)
    add(e.bytes, .shift, defines: f.defines, undefines: f.undefines, reads: reads)
  }

  mutating func emitShiftDouble() {
    let size = operandSize(allow8: false)
    let right = rng.chance(0.5)
    let rm = registerOrMemory(.shiftDouble)
    var count: Int? = rng.below(size == 16 ? 17 : 64)
    if rng.chance(0.2) { count = rng.pick([0, 1, size - 1, size]) }
    var e = Encoder()
    if rng.chance(0.5) {
      e.emit(
        size: size, opcode: [0x0F, right ? 0xAC : 0xA4], reg: anyRegister(), rm: rm,
        immediate: [UInt8(truncatingIfNeeded: count ?? 0)])
    } else {
      var m = Encoder()
      m.emit(size: 8, opcode: [0xB1], immediate: [UInt8(truncatingIfNeeded: count ?? 0)])
      if case .memory(let base, let index, _, _) = rm, base == 1 || index == 1 {
        if size == 16 { return }  // counts above 16 would leave the result undefined
        count = nil
      } else {
        add(m.bytes, .shiftDouble, setup: true)
      }
      e.emit(size: size, opcode: [0x0F, right ? 0xAD : 0xA5], reg: anyRegister(), rm: rm)
    }
    var defines: UInt64 = 0
    var undefines: UInt64 = FlagBits.of | FlagBits.af
    if let count, count & (size == 64 ? 63 : 31) != 0 {
      let c = count & (size == 64 ? 63 : 31)
      defines = FlagBits.cf | FlagBits.sf | FlagBits.zf | FlagBits.pf | (c == 1 ? FlagBits.of : 0)
      undefines = FlagBits.af | (c == 1 ? 0 : FlagBits.of)
    } else if count != nil {
      undefines = 0
    }
    add(e.bytes, .shiftDouble, defines: defines, undefines: undefines)
  }

  mutating func emitMulDiv() {
    let size = operandSize()
    let w: UInt8 = size == 8 ? 0 : 1
    let kind = rng.below(7)
    var e = Encoder()
    switch kind {
    case 0, 1:
      // MUL / IMUL one-operand
      e.emit(
        size: size, opcode: [0xF6 | w], reg: 4 + kind, rm: operandForMulDiv(), forceREX: size == 8 && rng.chance(0.5))
      add(e.bytes, .mulDiv, defines: FlagBits.cf | FlagBits.of, undefines: Self.all & ~(FlagBits.cf | FlagBits.of))
    case 2, 3:
      // IMUL two- and three-operand
      let s = size == 8 ? 32 : size
      let rm = registerOrMemory(.mulDiv, destination: false)
      if kind == 2 {
        e.emit(size: s, opcode: [0x0F, 0xAF], reg: destination(), rm: rm)
      } else if rng.chance(0.5) {
        e.emit(size: s, opcode: [0x6B], reg: destination(), rm: rm, immediate: immediate(size: 8))
      } else {
        e.emit(size: s, opcode: [0x69], reg: destination(), rm: rm, immediate: immediate(size: s == 16 ? 16 : 32))
      }
      add(e.bytes, .mulDiv, defines: FlagBits.cf | FlagBits.of, undefines: Self.all & ~(FlagBits.cf | FlagBits.of))
    default:
      // DIV / IDIV, usually with a high half that keeps the quotient in range.
      let signed = kind == 6
      let rm = operandForMulDiv()
      if rng.chance(0.7) {
        var s = Encoder()
        if size == 8 {
          s.emit(size: 8, opcode: [0xB4], immediate: [UInt8(rng.below(4))])
        } else if signed {
          s.emit(size: size, opcode: [0x99])
        } else {
          s.emit(size: 32, opcode: [0x31], reg: 2, rm: .register(2))
        }
        let clobbersAddress: Bool = {
          if case .memory(let base, let index, _, _) = rm {
            return base == 2 || index == 2 || base == 0 || index == 0
          }
          return false
        }()
        if !clobbersAddress {
          add(
            s.bytes, .mulDiv, setup: true, defines: size == 32 && !signed ? Self.all : 0,
            undefines: size == 32 && !signed ? FlagBits.af : 0)
        }
      }
      e.emit(size: size, opcode: [0xF6 | w], reg: signed ? 7 : 6, rm: rm, forceREX: size == 8 && rng.chance(0.5))
      add(e.bytes, .mulDiv, undefines: Self.all)
    }
  }

  /// A divisor or multiplier operand: never RAX/RDX for memory bases (the setup overwrites them).
  private mutating func operandForMulDiv() -> RMOperand {
    if rng.chance(0.3) { return memoryOperand(.mulDiv, avoiding: [0, 2]) }
    return .register(anyRegister())
  }

  mutating func emitBitTest() {
    let size = operandSize(allow8: false)
    let kind = rng.below(4)  // BT BTS BTR BTC
    var e = Encoder()
    let lockable = kind != 0
    if rng.chance(0.5) {
      let rm = registerOrMemory(.bitTest)
      let lock: [UInt8] = lockable && isMemory(rm) && rng.chance(0.3) ? [0xF0] : []
      e.emit(
        size: size, prefixes: lock, opcode: [0x0F, 0xBA], reg: 4 + kind, rm: rm, immediate: [UInt8(rng.below(256))])
    } else {
      let opcodes: [UInt8] = [0xA3, 0xAB, 0xB3, 0xBB]
      let rm = registerOrMemory(.bitTest)
      var offset = anyRegister()
      if case .memory(let base, let index, _, _) = rm {
        // A register bit offset addresses memory: keep it small and positive.
        offset = destination()
        while offset == base || offset == index { offset = destination() }
        setRegister(offset, UInt32(rng.below(1024)), .bitTest)
      }
      let lock: [UInt8] = lockable && isMemory(rm) && rng.chance(0.3) ? [0xF0] : []
      e.emit(size: size, prefixes: lock, opcode: [0x0F, opcodes[kind]], reg: offset, rm: rm)
    }
    add(
      e.bytes, .bitTest, defines: FlagBits.cf,
      undefines: FlagBits.of | FlagBits.sf | FlagBits.af | FlagBits.pf)
  }

  mutating func emitBitScan() {
    // BSF/BSR leave the destination undefined for a zero source: a guard skips them then.
    let size = operandSize(allow8: false)
    let source: RMOperand = rng.chance(0.3) ? memoryOperand(.bitScan) : .register(anyRegister())
    var guardTest = Encoder()
    if case .register(let r) = source {
      guardTest.emit(size: size, opcode: [0x85], reg: r, rm: source)
    } else {
      guardTest.emit(size: size, opcode: [0x83], reg: 7, rm: source, immediate: [0])
    }
    var e = Encoder()
    e.emit(size: size, opcode: [0x0F, rng.chance(0.5) ? 0xBC : 0xBD], reg: destination(), rm: source)
    add(guardTest.bytes, .bitScan, setup: true, defines: Self.all, undefines: FlagBits.af)
    add([0x74, UInt8(e.bytes.count)], .bitScan, setup: true, reads: FlagBits.zf)
    add(e.bytes, .bitScan, defines: FlagBits.zf, undefines: Self.all & ~FlagBits.zf, maySkip: true)
  }

  mutating func emitTzcntLzcnt() {
    let size = operandSize(allow8: false)
    var e = Encoder()
    e.emit(
      size: size, prefixes: [0xF3], opcode: [0x0F, rng.chance(0.5) ? 0xBC : 0xBD], reg: destination(),
      rm: registerOrMemory(.tzcntLzcnt, destination: false))
    add(
      e.bytes, .tzcntLzcnt, defines: FlagBits.cf | FlagBits.zf,
      undefines: FlagBits.of | FlagBits.sf | FlagBits.af | FlagBits.pf)
  }

  mutating func emitPopcnt() {
    let size = operandSize(allow8: false)
    var e = Encoder()
    e.emit(
      size: size, prefixes: [0xF3], opcode: [0x0F, 0xB8], reg: destination(),
      rm: registerOrMemory(.popcnt, destination: false))
    add(e.bytes, .popcnt, defines: Self.all)
  }

  mutating func emitCondition() {
    let cc = rng.below(16)
    var e = Encoder()
    if rng.chance(0.5) {
      e.emit(
        size: 8, opcode: [0x0F, 0x90 + UInt8(cc)], reg: 0, rm: registerOrMemory(.condition), forceREX: rng.chance(0.5))
    } else {
      let size = operandSize(allow8: false)
      e.emit(
        size: size, opcode: [0x0F, 0x40 + UInt8(cc)], reg: destination(),
        rm: registerOrMemory(.condition, destination: false))
    }
    add(e.bytes, .condition, reads: Self.flagsRead(condition: cc))
  }

  mutating func emitExchange() {
    let size = operandSize()
    let w: UInt8 = size == 8 ? 0 : 1
    var e = Encoder()
    let rex = size == 8 && rng.chance(0.5)
    switch rng.below(6) {
    case 0:
      e.emit(size: size, opcode: [0x86 | w], reg: destination(), rm: registerOrMemory(.exchange), forceREX: rex)
      add(e.bytes, .exchange)
    case 1:
      e.emit(size: size == 8 ? 32 : size, opcode: [0x90], opcodeRegister: destination())
      add(e.bytes, .exchange)
    case 2:
      let rm = registerOrMemory(.exchange)
      let lock: [UInt8] = isMemory(rm) && rng.chance(0.5) ? [0xF0] : []
      e.emit(size: size, prefixes: lock, opcode: [0x0F, 0xC0 | w], reg: destination(), rm: rm, forceREX: rex)
      add(e.bytes, .exchange, defines: Self.all)
    case 3, 4:
      let rm = registerOrMemory(.exchange)
      let lock: [UInt8] = isMemory(rm) && rng.chance(0.5) ? [0xF0] : []
      e.emit(size: size, prefixes: lock, opcode: [0x0F, 0xB0 | w], reg: destination(), rm: rm, forceREX: rex)
      add(e.bytes, .exchange, defines: Self.all)
    default:
      let wide = features.contains(.cmpxchg16b) && rng.chance(0.5)
      let m = memoryOperand(.exchange, avoiding: [0, 1, 2, 3])
      let lock: [UInt8] = rng.chance(0.5) ? [0xF0] : []
      e.emit(size: wide ? 64 : 32, prefixes: lock, opcode: [0x0F, 0xC7], reg: 1, rm: m)
      add(e.bytes, .exchange, defines: FlagBits.zf)
    }
  }

  mutating func emitString() {
    let size = operandSize()
    let kind = rng.below(5)  // MOVS CMPS STOS LODS SCAS
    let opcodes: [UInt8] = [0xA4, 0xA6, 0xAA, 0xAC, 0xAE]
    let compares = kind == 1 || kind == 4
    setRegister(6, sandboxAddress(margin: 0x400), .string)
    setRegister(7, sandboxAddress(margin: 0x400), .string)
    var prefixes: [UInt8] = []
    var count: Int?
    if rng.chance(0.6) {
      prefixes = [compares && rng.chance(0.5) ? 0xF2 : 0xF3]
      let c = rng.below(8)
      count = c
      setRegister(1, UInt32(c), .string)
    }
    var e = Encoder()
    e.emit(size: size, prefixes: prefixes, opcode: [opcodes[kind] | (size == 8 ? 0 : 1)])
    let defines: UInt64 = compares && count != 0 ? Self.all : 0
    add(e.bytes, .string, defines: defines)
  }

  mutating func emitStack() {
    var e = Encoder()
    switch rng.below(9) {
    case 0: e.emit(opcode: [0x50], opcodeRegister: anyRegister())
    case 1: e.emit(size: 16, opcode: [0x50], opcodeRegister: anyRegister())
    case 2: e.emit(opcode: [0x6A], immediate: immediate(size: 8))
    case 3: e.emit(opcode: [0x68], immediate: immediate(size: 32))
    case 4: e.emit(opcode: [0xFF], reg: 6, rm: memoryOperand(.stack))
    case 5: e.emit(size: rng.chance(0.2) ? 16 : 32, opcode: [0x58], opcodeRegister: destination())
    case 6: e.emit(opcode: [0x8F], reg: 0, rm: memoryOperand(.stack))
    case 7: e.emit(opcode: [0xE8], immediate: [0, 0, 0, 0])
    default:
      // PUSHF; or a controlled POPF (no TF, no AC).
      if rng.chance(0.5) {
        add([0x9C], .stack, reads: Self.all)
        return
      }
      var p = Encoder()
      p.emit(opcode: [0x68], immediate: littleEndian((rng.next() & 0x0CD5) | 2, count: 4))
      add(p.bytes, .stack, setup: true)
      add([0x9D], .stack, defines: Self.all)
      return
    }
    add(e.bytes, .stack)
  }

  mutating func emitLEA() {
    let size = operandSize(allow8: false)
    let base = anyRegister()
    var index: Int? = rng.chance(0.5) ? anyRegister() : nil
    if index == 4 { index = nil }
    let displacement: Int32 = rng.chance(0.5) ? Int32(truncatingIfNeeded: rng.next()) : Int32(rng.below(256)) - 128
    var e = Encoder()
    let prefixes: [UInt8] = rng.chance(0.2) ? [0x67] : []
    e.emit(
      size: size, prefixes: prefixes, opcode: [0x8D], reg: destination(),
      rm: .memory(base: base, index: index, scale: rng.pick([1, 2, 4, 8]), displacement: displacement))
    add(e.bytes, .lea)
  }

  mutating func emitMove() {
    var e = Encoder()
    switch rng.below(6) {
    case 0, 1:
      let size = operandSize(allow8: false)
      let byte = rng.chance(0.5)
      let op: UInt8 = (rng.chance(0.5) ? 0xB6 : 0xBE) | (byte ? 0 : 1)
      e.emit(
        size: byte ? size : (size == 16 ? 32 : size), opcode: [0x0F, op], reg: destination(),
        rm: registerOrMemory(.move, destination: false), forceREX: byte && rng.chance(0.5))
    case 2:
      e.emit(
        size: rng.chance(0.8) ? 64 : 32, opcode: [0x63], reg: destination(),
        rm: registerOrMemory(.move, destination: false))
    case 3:
      setRegister(3, sandboxAddress(), .move)
      e.emit(opcode: [0xD7])
    default:
      let size = operandSize()
      e.emit(
        size: size, opcode: [size == 8 ? 0x8A : 0x8B], reg: destination(),
        rm: registerOrMemory(.move, destination: false),
        forceREX: size == 8 && rng.chance(0.5))
    }
    add(e.bytes, .move)
  }

  mutating func emitBswap() {
    var e = Encoder()
    e.emit(size: rng.chance(0.5) ? 64 : 32, opcode: [0x0F, 0xC8], opcodeRegister: destination())
    add(e.bytes, .bswap)
  }

  mutating func emitConvert() {
    var e = Encoder()
    e.emit(size: operandSize(allow8: false), opcode: [rng.chance(0.5) ? 0x98 : 0x99])
    add(e.bytes, .convert)
  }

  mutating func emitFlags() {
    switch rng.below(8) {
    case 0 where features.contains(.lahfSahf):
      add([0x9F], .flags, reads: FlagBits.sf | FlagBits.zf | FlagBits.af | FlagBits.pf | FlagBits.cf)
    case 1 where features.contains(.lahfSahf): add([0x9E], .flags, defines: Self.all & ~FlagBits.of)
    case 2: add([0xF8], .flags, defines: FlagBits.cf)
    case 3: add([0xF9], .flags, defines: FlagBits.cf)
    case 4: add([0xF5], .flags, reads: FlagBits.cf)
    case 5: add([0xFC], .flags)
    case 6: add([0xFD], .flags)
    default:
      var p = Encoder()
      p.emit(opcode: [0x68], immediate: littleEndian((rng.next() & 0x0CD5) | 2, count: 4))
      add(p.bytes, .flags, setup: true)
      add([0x9D], .flags, defines: Self.all)
    }
  }

  /// Builds the next instruction into a scratch list so a branch can jump over it.
  private mutating func scratchInstruction() -> [GeneratedInstruction] {
    let saved = items
    let savedUndefined = undefined
    items = []
    // The skipped instruction: any class but those that branch themselves (ALU when only those are enabled).
    let bodies = classes.filter { $0 != .branch && $0 != .loop && $0 != .bitScan }
    emitRandom(bodies.isEmpty ? .alu : rng.pick(bodies))
    let built = items
    items = saved
    undefined = savedUndefined
    return built
  }

  /// Appends instructions that a branch may skip.
  private mutating func addSkippable(_ list: [GeneratedInstruction]) {
    for i in list {
      add(
        i.bytes, i.instructionClass, setup: i.isSetup, defines: i.definedFlags, undefines: i.undefinedFlags,
        maySkip: true)
    }
  }

  mutating func emitBranch() {
    let cc = rng.below(16)
    switch rng.below(6) {
    case 0, 1, 2:
      let body = scratchInstruction()
      let length = body.reduce(0) { $0 + $1.bytes.count }
      if length < 128 && rng.chance(0.7) {
        add([0x70 + UInt8(cc), UInt8(length)], .branch, reads: Self.flagsRead(condition: cc))
      } else {
        add(
          [0x0F, 0x80 + UInt8(cc)] + littleEndian(UInt64(length), count: 4), .branch,
          reads: Self.flagsRead(condition: cc))
      }
      addSkippable(body)
    case 3:
      let body = scratchInstruction()
      let length = body.reduce(0) { $0 + $1.bytes.count }
      if length < 128 {
        add([0xEB, UInt8(length)], .branch)
      } else {
        add([0xE9] + littleEndian(UInt64(length), count: 4), .branch)
      }
      addSkippable(body)
    case 4:
      let body = scratchInstruction()
      let length = body.reduce(0) { $0 + $1.bytes.count }
      if length >= 128 { return }
      if rng.chance(0.5) { setRegister(1, UInt32(rng.below(2)), .branch) }
      add([0xE3, UInt8(length)], .branch)
      addSkippable(body)
    default:
      add([0xE8, 0, 0, 0, 0], .branch)
    }
  }

  mutating func emitLoop() {
    setRegister(1, UInt32(1 + rng.below(4)), .loop)
    let kind = rng.below(3)  // LOOPNE LOOPE LOOP
    add([0xE0 + UInt8(kind), 0xFE], .loop, reads: kind < 2 ? FlagBits.zf : 0)
  }

  mutating func emitEnterLeave() {
    setRegister(5, sandboxAddress(margin: 0x600), .enterLeave)
    let size = UInt64(rng.below(64))
    let level = UInt8(rng.chance(0.5) ? 0 : rng.below(4))
    add([0xC8] + littleEndian(size, count: 2) + [level], .enterLeave)
    add([0xC9], .enterLeave)
  }

  mutating func emitInvalid() {
    let forms: [[UInt8]] = [
      [0x06], [0x07], [0x0E], [0x16], [0x17], [0x1E], [0x1F], [0x27], [0x2F], [0x37], [0x3F], [0x60], [0x61],
      [0xCE], [0xD4, 0x0A], [0xD5, 0x0A], [0xD6], [0x0F, 0x0B], [0xF0, 0x01, 0xC8], [0x9A, 0, 0, 0, 0, 0, 0],
    ]
    add(rng.pick(forms), .invalid)
  }

  mutating func emitMovbe() {
    let size = operandSize(allow8: false)
    var e = Encoder()
    e.emit(
      size: size, opcode: [0x0F, 0x38, rng.chance(0.5) ? 0xF0 : 0xF1], reg: destination(), rm: memoryOperand(.movbe))
    add(e.bytes, .movbe)
  }

  /// BMI1/BMI2 (VEX-encoded): ANDN BEXTR BLSI BLSMSK BLSR BZHI MULX PDEP PEXT RORX SARX SHLX SHRX.
  mutating func emitBMI() {
    let wide = rng.chance(0.5)
    let source = registerOrMemory(.bmi, destination: false)
    var e = Encoder()
    // BMI1 flags: SF ZF CF defined (OF cleared); AF PF undefined (BEXTR: SF too).
    let bmiDefined = FlagBits.cf | FlagBits.of | FlagBits.sf | FlagBits.zf
    let bmiUndefined = FlagBits.af | FlagBits.pf
    switch rng.below(13) {
    case 0:  // ANDN
      e.emitVEX(map: 2, pp: 0, wide: wide, vvvv: anyRegister(), opcode: 0xF2, reg: destination(), rm: source)
      add(e.bytes, .bmi, defines: bmiDefined, undefines: bmiUndefined)
    case 1:  // BEXTR
      e.emitVEX(map: 2, pp: 0, wide: wide, vvvv: anyRegister(), opcode: 0xF7, reg: destination(), rm: source)
      add(
        e.bytes, .bmi, defines: FlagBits.zf | FlagBits.cf | FlagBits.of,
        undefines: FlagBits.af | FlagBits.pf | FlagBits.sf)
    case 2, 3, 4:  // BLSR /1, BLSMSK /2, BLSI /3
      let kind = rng.below(3) + 1
      e.emitVEX(map: 2, pp: 0, wide: wide, vvvv: destination(), opcode: 0xF3, reg: kind, rm: source)
      add(e.bytes, .bmi, defines: bmiDefined, undefines: bmiUndefined)
    case 5:  // BZHI
      e.emitVEX(map: 2, pp: 0, wide: wide, vvvv: anyRegister(), opcode: 0xF5, reg: destination(), rm: source)
      add(e.bytes, .bmi, defines: bmiDefined, undefines: bmiUndefined)
    case 6:  // MULX
      e.emitVEX(map: 2, pp: 3, wide: wide, vvvv: destination(), opcode: 0xF6, reg: destination(), rm: source)
      add(e.bytes, .bmi)
    case 7, 8:  // PDEP (F2), PEXT (F3)
      e.emitVEX(
        map: 2, pp: rng.chance(0.5) ? 3 : 2, wide: wide, vvvv: anyRegister(), opcode: 0xF5, reg: destination(),
        rm: source)
      add(e.bytes, .bmi)
    case 9:  // RORX
      e.emitVEX(
        map: 3, pp: 3, wide: wide, vvvv: 0, opcode: 0xF0, reg: destination(), rm: source,
        immediate: [UInt8(rng.below(256))])
      add(e.bytes, .bmi)
    default:  // SARX (F3), SHLX (66), SHRX (F2)
      e.emitVEX(
        map: 2, pp: rng.pick([1, 2, 3]), wide: wide, vvvv: anyRegister(), opcode: 0xF7, reg: destination(), rm: source)
      add(e.bytes, .bmi)
    }
  }
}

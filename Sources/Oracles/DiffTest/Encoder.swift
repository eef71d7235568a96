/// A register or memory operand for a ModRM-encoded instruction.
public enum RMOperand: Sendable, Equatable {
  case register(Int)
  /// base + index * scale + displacement. `index` must not be 4 (RSP cannot be an index).
  case memory(base: Int, index: Int?, scale: Int, displacement: Int32)
}

/// A minimal x86-64 machine-code encoder: legacy prefixes, REX, opcode, ModRM/SIB, displacement,
/// immediate. Independent of the model's decoder so generated tests do not share its mistakes.
public struct Encoder: Sendable {
  /// The bytes encoded so far.
  public var bytes: [UInt8] = []

  public init() {}

  /// Emits one instruction.
  /// - Parameters:
  ///   - size: operand size in bits (8, 16, 32, 64): adds 0x66 for 16 and REX.W for 64.
  ///   - prefixes: legacy prefixes placed first (LOCK, REP ...).
  ///   - opcode: opcode bytes (escape bytes included).
  ///   - reg: the ModRM.reg field (a register number or an opcode extension), nil if no ModRM.
  ///   - rm: the ModRM.rm operand.
  ///   - opcodeRegister: a register added to the last opcode byte (B8+r), with REX.B.
  ///   - immediate: little-endian immediate bytes.
  ///   - forceREX: emit a REX prefix even when no bit is set (selects SPL/BPL/SIL/DIL for 8-bit).
  public mutating func emit(
    size: Int = 32, prefixes: [UInt8] = [], opcode: [UInt8], reg: Int? = nil, rm: RMOperand? = nil,
    opcodeRegister: Int? = nil, immediate: [UInt8] = [], forceREX: Bool = false
  ) {
    bytes += prefixes
    if size == 16 { bytes.append(0x66) }
    var rex: UInt8 = 0
    if size == 64 { rex |= 8 }
    if let reg, reg >= 8 { rex |= 4 }
    // For 8-bit operands a REX prefix turns registers 4...7 from AH/CH/DH/BH into SPL/BPL/SIL/DIL.
    let needsREX = forceREX
    switch rm {
    case .register(let r)?: if r >= 8 { rex |= 1 }
    case .memory(let base, let index, _, _)?:
      if base >= 8 { rex |= 1 }
      if let index, index >= 8 { rex |= 2 }
    case nil: break
    }
    if let opcodeRegister, opcodeRegister >= 8 { rex |= 1 }
    if rex != 0 || needsREX { bytes.append(0x40 | rex) }
    var op = opcode
    if let opcodeRegister, let last = op.popLast() { op.append(last + UInt8(opcodeRegister & 7)) }
    bytes += op
    if let rm { encodeModRM(reg: reg ?? 0, rm: rm) }
    bytes += immediate
  }

  /// Emits a VEX-encoded (three-byte C4 form) instruction with L=0, as BMI1/BMI2 use.
  /// - Parameters:
  ///   - map: 2 for 0F38, 3 for 0F3A.
  ///   - pp: implied prefix: 0 none, 1 66, 2 F3, 3 F2.
  ///   - wide: VEX.W (64-bit operand size for the BMI instructions).
  ///   - vvvv: the register in VEX.vvvv (stored inverted).
  public mutating func emitVEX(
    map: UInt8, pp: UInt8, wide: Bool, vvvv: Int, opcode: UInt8, reg: Int, rm: RMOperand, immediate: [UInt8] = []
  ) {
    var r = reg >= 8
    var x = false
    var b = false
    switch rm {
    case .register(let n): b = n >= 8
    case .memory(let base, let index, _, _):
      b = base >= 8
      x = (index ?? 0) >= 8
    }
    r = !r
    x = !x
    b = !b
    bytes.append(0xC4)
    bytes.append((r ? 0x80 : 0) | (x ? 0x40 : 0) | (b ? 0x20 : 0) | (map & 0x1F))
    bytes.append((wide ? 0x80 : 0) | UInt8((~vvvv) & 15) << 3 | (pp & 3))
    bytes.append(opcode)
    encodeModRM(reg: reg, rm: rm)
    bytes += immediate
  }

  /// Appends raw bytes.
  public mutating func raw(_ b: [UInt8]) { bytes += b }

  private mutating func encodeModRM(reg: Int, rm: RMOperand) {
    let r = UInt8(reg & 7) << 3
    switch rm {
    case .register(let x):
      bytes.append(0xC0 | r | UInt8(x & 7))
    case .memory(let base, let index, let scale, let displacement):
      var mod: UInt8
      if displacement == 0 && base & 7 != 5 {
        mod = 0
      } else if Int32(Int8(truncatingIfNeeded: displacement)) == displacement {
        mod = 1
      } else {
        mod = 2
      }
      if index != nil || base & 7 == 4 {
        bytes.append(mod << 6 | r | 4)
        let ss: UInt8 = scale == 8 ? 3 : scale == 4 ? 2 : scale == 2 ? 1 : 0
        bytes.append(ss << 6 | UInt8((index ?? 4) & 7) << 3 | UInt8(base & 7))
      } else {
        bytes.append(mod << 6 | r | UInt8(base & 7))
      }
      if mod == 1 {
        bytes.append(UInt8(truncatingIfNeeded: displacement))
      } else if mod == 2 {
        bytes += littleEndian(UInt64(UInt32(bitPattern: displacement)), count: 4)
      }
    }
  }
}

/// The low `count` bytes of `value`, little-endian.
public func littleEndian(_ value: UInt64, count: Int) -> [UInt8] {
  (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
}

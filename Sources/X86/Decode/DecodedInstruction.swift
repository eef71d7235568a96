/// Legacy and REX prefix bits seen on an instruction.
public struct Prefixes: OptionSet, Sendable, Equatable {
  /// The prefix bits.
  public let rawValue: UInt16
  /// Prefixes from raw bits.
  public init(rawValue: UInt16) { self.rawValue = rawValue }
  /// F0 LOCK.
  public static let lock = Prefixes(rawValue: 1 << 0)
  /// F3 (REP/REPE), the last of F2/F3 seen.
  public static let rep = Prefixes(rawValue: 1 << 1)
  /// F2 (REPNE), the last of F2/F3 seen.
  public static let repne = Prefixes(rawValue: 1 << 2)
  /// 66 operand-size override.
  public static let operandSize = Prefixes(rawValue: 1 << 3)
  /// 67 address-size override.
  public static let addressSize = Prefixes(rawValue: 1 << 4)
  /// A segment-override prefix (the segment is in `DecodedInstruction.segment`).
  public static let segment = Prefixes(rawValue: 1 << 5)
  /// Any REX prefix.
  public static let rex = Prefixes(rawValue: 1 << 6)
  /// REX.W: 64-bit operand size.
  public static let rexW = Prefixes(rawValue: 1 << 7)
  /// REX.R: ModRM.reg extension.
  public static let rexR = Prefixes(rawValue: 1 << 8)
  /// REX.X: SIB.index extension.
  public static let rexX = Prefixes(rawValue: 1 << 9)
  /// REX.B: ModRM.rm, SIB.base or opcode register extension.
  public static let rexB = Prefixes(rawValue: 1 << 10)
  /// Undocumented alias encodings that real chips execute but llvm-objdump rejects (e.g. F6 /1).
  public static let undocumented = Prefixes(rawValue: 1 << 11)
}

/// The kind of an operand.
public enum OperandKind: UInt8, Sendable {
  case none
  /// A general register (`reg` 0-15) of `size` bytes; for size 1 without REX, 4-7 are SPL..DIL only
  /// with REX — see `gprHigh8`.
  case gpr
  /// AH, CH, DH, BH (`reg` 0-3 names the low register whose bits 8-15 it is).
  case gprHigh8
  /// The memory operand described by base/index/scale/displacement/segment.
  case memory
  /// `DecodedInstruction.immediate` (or `immediate2` when `reg` == 1).
  case immediate
  /// A branch target: next RIP + `immediate` (sign-extended).
  case relative
  /// A segment register (`reg` = `SegmentRegister.rawValue`).
  case segment
  case control
  case debug
  case xmm
  case mmx
  /// x87 stack register st(`reg`).
  case x87
  /// A direct far pointer `immediate2:immediate` (selector:offset).
  case farPointer
}

/// One operand descriptor: what it is, its size in bytes and its register number.
public struct Operand: Sendable, Equatable {
  /// What the operand is.
  public var kind: OperandKind
  /// Its size in bytes.
  public var size: UInt8
  /// The register number (meaning depends on `kind`).
  public var reg: UInt8
  /// An operand of `kind`, `size` bytes, register `reg`.
  public init(_ kind: OperandKind, size: UInt8, reg: UInt8 = 0) {
    self.kind = kind
    self.size = size
    self.reg = reg
  }
  /// No operand.
  public static let none = Operand(.none, size: 0)
}

/// A decoded instruction: compact, allocation-free, shared by the interpreter, the disassembler and
/// a translator.
public struct DecodedInstruction: Sendable {
  /// What the instruction does.
  public var operation: Operation = .invalid
  /// Total length in bytes including prefixes (1-15).
  public var length: UInt8 = 0
  /// Operand size in bytes (1, 2, 4 or 8) of the main operation.
  public var operandSize: UInt8 = 0
  /// Address size in bytes (2, 4 or 8).
  public var addressSize: UInt8 = 0
  /// The prefixes present.
  public var prefixes: Prefixes = []
  /// Opcode map: 0 one-byte, 1 = 0F, 2 = 0F38, 3 = 0F3A.
  public var map: UInt8 = 0
  /// The opcode byte within its map.
  public var opcode: UInt8 = 0
  /// The ModRM byte (0 when there is none).
  public var modrm: UInt8 = 0
  /// Condition code (0-15) for jcc/setcc/cmovcc; the ModRM reg field for group opcodes.
  public var condition: UInt8 = 0
  /// Effective segment of the memory operand (explicit override, or the default DS/SS).
  public var segment: UInt8 = 3
  /// Memory base register (0-15), `DecodedInstruction.ripBase` for RIP-relative, `noRegister` if none.
  public var base: UInt8 = DecodedInstruction.noRegister
  /// Memory index register (0-15) or `noRegister`.
  public var index: UInt8 = DecodedInstruction.noRegister
  /// Scale factor: 1, 2, 4 or 8.
  public var scale: UInt8 = 1
  /// How many of `operands` are used.
  public var operandCount: UInt8 = 0
  /// Memory displacement, sign-extended (for moffs forms, the full address).
  public var displacement: Int64 = 0
  /// First immediate (sign- or zero-extended as the operation requires); branch displacement for
  /// relative operands.
  public var immediate: UInt64 = 0
  /// Second immediate (ENTER's level, a far pointer's selector).
  public var immediate2: UInt64 = 0
  /// Up to three operands, Intel order.
  public var operands: (Operand, Operand, Operand) = (.none, .none, .none)

  /// `base`/`index` value for "none".
  public static let noRegister: UInt8 = 0xFF
  /// `base` value for RIP-relative addressing.
  public static let ripBase: UInt8 = 16

  /// An empty instruction (`.invalid`, no operands).
  public init() {}

  /// Operand `i` (0-2).
  @inlinable public func operand(_ i: Int) -> Operand {
    switch i {
    case 0: return operands.0
    case 1: return operands.1
    default: return operands.2
    }
  }

  /// True if one of the operands is in memory (set by the decoder).
  public var hasMemoryOperand: Bool = false

  /// The VEX prefix of a `.avx` instruction.
  public var vex = VEXFields()

  /// True if ModRM selects a register (mod == 3).
  @inlinable public var modrmIsRegister: Bool { modrm >= 0xC0 }
}

/// The fields of a VEX prefix that are not ModRM extensions: the extra source register, the vector
/// length, VEX.W and the implied mandatory prefix.
public struct VEXFields: Sendable, Equatable {
  /// VEX.vvvv, un-inverted: the extra register operand (0-15).
  public var vvvv: UInt8 = 0
  /// VEX.L: 256-bit (YMM) when set.
  public var l = false
  /// VEX.W/EVEX.W.
  public var w = false
  /// VEX.pp: 0 none, 1 66, 2 F3, 3 F2.
  public var pp: UInt8 = 0
  /// EVEX only: the vector length in bytes (16, 32 or 64), the opmask register (EVEX.aaa, 0: none)
  /// and zeroing-masking (EVEX.z).
  public var vectorBytes: UInt8 = 16
  /// EVEX.aaa: the opmask register (0: none).
  public var mask: UInt8 = 0
  /// EVEX.z: zeroing-masking.
  public var zeroing = false
  /// No VEX prefix: every field zero, 16-byte vectors.
  public init() {}
}

/// The result of decoding one instruction.
public enum DecodeResult: Sendable {
  case success(DecodedInstruction)
  /// An invalid encoding: the CPU raises #UD. `length` is how far decoding got.
  case undefined(length: Int)
  /// More than 15 bytes: #GP(0).
  case tooLong
  /// The instruction continues past the bytes given.
  case truncated
}

/// A host general-purpose register, numbered as in its encoding.
package enum HostRegister: UInt8, CaseIterable, Sendable {
  case rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15

  var low3: UInt8 { rawValue & 7 }
  var high: UInt8 { rawValue >> 3 }
}

/// A host memory operand: `[base + index * scale + displacement]`.
package struct HostMemory: Sendable {
  package var base: HostRegister
  package var index: HostRegister?
  package var scale: UInt8
  package var displacement: Int32

  package init(_ base: HostRegister, _ displacement: Int32 = 0, index: HostRegister? = nil, scale: UInt8 = 1) {
    self.base = base
    self.index = index
    self.scale = scale
    self.displacement = displacement
  }
}

/// The r/m side of an instruction: a register or memory.
package enum HostOperand: Sendable {
  case register(HostRegister)
  case memory(HostMemory)
}

/// The eight classic ALU operations, numbered as their opcode row and ModRM /digit.
package enum HostALU: UInt8, Sendable {
  case add, or, adc, sbb, and, sub, xor, cmp
}

/// Shift and rotate operations, numbered as their ModRM /digit.
package enum HostShift: UInt8, Sendable {
  case rol, ror, rcl, rcr, shl, shr, sal, sar
}

/// Our own x86-64 encoder for the translator's back end (no LLVM at run time): the instructions
/// generated code uses, in every operand size (1, 2, 4, 8 bytes), with labels for forward and
/// backward branches. Encodings follow the Intel SDM vol. 2; `X64AssemblerTests` checks them
/// against llvm-objdump.
package struct X64Assembler {
  /// The code so far.
  package private(set) var bytes: [UInt8] = []
  /// A position to branch to, bound once.
  package struct Label: Hashable, Sendable { let id: Int }
  private var labelOffsets: [Int?] = []
  /// rel32 fields waiting for their label: (field offset, label).
  private var fixups: [(at: Int, label: Label)] = []

  package init() { bytes.reserveCapacity(1024) }

  package var count: Int { bytes.count }

  // MARK: Labels

  package mutating func newLabel() -> Label {
    labelOffsets.append(nil)
    return Label(id: labelOffsets.count - 1)
  }

  package mutating func bind(_ label: Label) {
    precondition(labelOffsets[label.id] == nil, "label bound twice")
    labelOffsets[label.id] = bytes.count
  }

  /// The code with every label reference resolved (all referenced labels must be bound).
  package func finished() -> [UInt8] {
    var out = bytes
    for f in fixups {
      guard let target = labelOffsets[f.label.id] else { preconditionFailure("unbound label") }
      let rel = Int32(target - (f.at + 4))
      withUnsafeBytes(of: rel.littleEndian) { for (i, b) in $0.enumerated() { out[f.at + i] = b } }
    }
    return out
  }

  // MARK: Raw bytes

  package mutating func byte(_ b: UInt8) { bytes.append(b) }

  mutating func imm(_ value: Int64, size: Int) {
    var v = UInt64(bitPattern: value)
    for _ in 0..<size {
      bytes.append(UInt8(truncatingIfNeeded: v))
      v >>= 8
    }
  }

  /// Prefixes, REX and opcode for an instruction with a ModRM whose reg field is `reg` (a register
  /// number or an opcode extension) and whose r/m is `rm`, then the ModRM, SIB and displacement.
  /// `size` 2 adds 0x66, 8 sets REX.W; `byteRegisters` forces a REX when a byte register
  /// numbered 4-7 is involved, so it means SPL/BPL/SIL/DIL and not AH-BH.
  /// `opcode` is one or two bytes: `(0x0F << 8) | second` for two-byte opcodes (no array per
  /// instruction: the translator emits thousands).
  private mutating func encode(
    _ opcode: UInt16, size: Int, reg: UInt8, rm: HostOperand, byteRegisters: Bool = false, regIsRegister: Bool = false
  ) {
    if size == 2 { bytes.append(0x66) }
    var rex: UInt8 = size == 8 ? 0x08 : 0
    if reg >= 8 { rex |= 0x04 }
    var force = false
    switch rm {
    case .register(let r):
      if r.high != 0 { rex |= 0x01 }
      if byteRegisters && r.rawValue >= 4 { force = true }
    case .memory(let m):
      if m.base.high != 0 { rex |= 0x01 }
      if let i = m.index, i.high != 0 { rex |= 0x02 }
    }
    if byteRegisters && regIsRegister && reg >= 4 { force = true }
    if rex != 0 || force { bytes.append(0x40 | rex) }
    if opcode > 0xFF { bytes.append(UInt8(opcode >> 8)) }
    bytes.append(UInt8(truncatingIfNeeded: opcode))
    modRM(reg: reg & 7, rm: rm)
  }

  private mutating func modRM(reg: UInt8, rm: HostOperand) {
    switch rm {
    case .register(let r):
      bytes.append(0xC0 | reg << 3 | r.low3)
    case .memory(let m):
      let d = m.displacement
      // RBP/R13 as a base need a displacement; RSP/R12 as a base need a SIB.
      let mod: UInt8 = d == 0 && m.base.low3 != 5 ? 0 : (Int32(Int8(truncatingIfNeeded: d)) == d ? 1 : 2)
      if m.index != nil || m.base.low3 == 4 {
        let index = m.index ?? .rsp  // 100: no index
        precondition(m.index != .rsp, "RSP cannot be an index")
        let ss: UInt8 = m.scale == 8 ? 3 : m.scale == 4 ? 2 : m.scale == 2 ? 1 : 0
        bytes.append(mod << 6 | reg << 3 | 4)
        bytes.append(ss << 6 | index.low3 << 3 | m.base.low3)
      } else {
        bytes.append(mod << 6 | reg << 3 | m.base.low3)
      }
      if mod == 1 { bytes.append(UInt8(bitPattern: Int8(truncatingIfNeeded: d))) }
      if mod == 2 { imm(Int64(d), size: 4) }
    }
  }

  // MARK: Moves

  /// MOV r/m, r.
  package mutating func mov(_ dst: HostOperand, _ src: HostRegister, size: Int = 8) {
    encode(
      UInt16(size == 1 ? 0x88 : 0x89), size: size, reg: src.rawValue, rm: dst, byteRegisters: size == 1,
      regIsRegister: true)
  }

  /// MOV r, r/m.
  package mutating func mov(_ dst: HostRegister, _ src: HostOperand, size: Int = 8) {
    encode(
      UInt16(size == 1 ? 0x8A : 0x8B), size: size, reg: dst.rawValue, rm: src, byteRegisters: size == 1,
      regIsRegister: true)
  }

  /// MOV r/m, imm (imm8/16/32; at size 8 the imm32 is sign-extended).
  package mutating func mov(_ dst: HostOperand, immediate: Int64, size: Int = 8) {
    encode(UInt16(size == 1 ? 0xC6 : 0xC7), size: size, reg: 0, rm: dst, byteRegisters: size == 1)
    imm(immediate, size: min(size, 4))
  }

  /// Loads a 64-bit constant into `dst` in the shortest form.
  package mutating func load(_ dst: HostRegister, constant: UInt64) {
    if constant <= UInt64(UInt32.max) {
      if dst.high != 0 { bytes.append(0x41) }
      bytes.append(0xB8 + dst.low3)
      imm(Int64(constant), size: 4)
    } else if Int64(bitPattern: constant) >= Int64(Int32.min) && Int64(bitPattern: constant) < 0 {
      mov(.register(dst), immediate: Int64(bitPattern: constant), size: 8)
    } else {
      bytes.append(0x48 | dst.high)
      bytes.append(0xB8 + dst.low3)
      imm(Int64(bitPattern: constant), size: 8)
    }
  }

  /// MOVZX r, r/m8 or r/m16 (`sourceSize` 1 or 2) into a `size`-byte register.
  package mutating func movzx(_ dst: HostRegister, _ src: HostOperand, sourceSize: Int, size: Int = 4) {
    encode(
      0x0F00 | UInt16(sourceSize == 1 ? 0xB6 : 0xB7), size: size, reg: dst.rawValue, rm: src,
      byteRegisters: sourceSize == 1)
  }

  /// MOVSX r, r/m8 or r/m16, or MOVSXD r64, r/m32.
  package mutating func movsx(_ dst: HostRegister, _ src: HostOperand, sourceSize: Int, size: Int = 8) {
    if sourceSize == 4 {
      encode(UInt16(0x63), size: size, reg: dst.rawValue, rm: src)
    } else {
      encode(
        0x0F00 | UInt16(sourceSize == 1 ? 0xBE : 0xBF), size: size, reg: dst.rawValue, rm: src,
        byteRegisters: sourceSize == 1)
    }
  }

  /// LEA r, m.
  package mutating func lea(_ dst: HostRegister, _ src: HostMemory, size: Int = 8) {
    encode(UInt16(0x8D), size: size, reg: dst.rawValue, rm: .memory(src))
  }

  // MARK: Arithmetic

  /// op r/m, r.
  package mutating func alu(_ op: HostALU, _ dst: HostOperand, _ src: HostRegister, size: Int = 8) {
    encode(
      UInt16(op.rawValue << 3 | (size == 1 ? 0 : 1)), size: size, reg: src.rawValue, rm: dst, byteRegisters: size == 1,
      regIsRegister: true)
  }

  /// op r, r/m.
  package mutating func alu(_ op: HostALU, _ dst: HostRegister, _ src: HostOperand, size: Int = 8) {
    encode(
      UInt16(op.rawValue << 3 | (size == 1 ? 2 : 3)), size: size, reg: dst.rawValue, rm: src, byteRegisters: size == 1,
      regIsRegister: true)
  }

  /// op r/m, imm: imm8 for byte operations or values that fit a signed byte (0x83), else imm16/32
  /// (sign-extended to 64 bits at size 8).
  package mutating func alu(_ op: HostALU, _ dst: HostOperand, immediate: Int64, size: Int = 8) {
    if size == 1 {
      encode(UInt16(0x80), size: 1, reg: op.rawValue, rm: dst, byteRegisters: true)
      imm(immediate, size: 1)
    } else if Int64(Int8(truncatingIfNeeded: immediate)) == immediate {
      encode(UInt16(0x83), size: size, reg: op.rawValue, rm: dst)
      imm(immediate, size: 1)
    } else {
      encode(UInt16(0x81), size: size, reg: op.rawValue, rm: dst)
      imm(immediate, size: min(size, 4))
    }
  }

  /// TEST r/m, r.
  package mutating func test(_ dst: HostOperand, _ src: HostRegister, size: Int = 8) {
    encode(
      UInt16(size == 1 ? 0x84 : 0x85), size: size, reg: src.rawValue, rm: dst, byteRegisters: size == 1,
      regIsRegister: true)
  }

  /// TEST r/m, imm.
  package mutating func test(_ dst: HostOperand, immediate: Int64, size: Int = 8) {
    encode(UInt16(size == 1 ? 0xF6 : 0xF7), size: size, reg: 0, rm: dst, byteRegisters: size == 1)
    imm(immediate, size: min(size, 4))
  }

  /// INC r/m (`increment`) or DEC r/m.
  package mutating func incDec(_ dst: HostOperand, increment: Bool, size: Int = 8) {
    encode(UInt16(size == 1 ? 0xFE : 0xFF), size: size, reg: increment ? 0 : 1, rm: dst, byteRegisters: size == 1)
  }

  /// Shift or rotate r/m by an immediate count.
  package mutating func shift(_ op: HostShift, _ dst: HostOperand, count: UInt8, size: Int = 8) {
    encode(UInt16(size == 1 ? 0xC0 : 0xC1), size: size, reg: op.rawValue, rm: dst, byteRegisters: size == 1)
    bytes.append(count)
  }

  /// BT r/m, imm8: CF = bit `bit` of the operand.
  package mutating func bt(_ dst: HostOperand, bit: UInt8, size: Int = 4) {
    encode(0x0FBA, size: size, reg: 4, rm: dst)
    bytes.append(bit)
  }

  /// Shift or rotate r/m by CL.
  package mutating func shiftByCL(_ op: HostShift, _ dst: HostOperand, size: Int = 8) {
    encode(UInt16(size == 1 ? 0xD2 : 0xD3), size: size, reg: op.rawValue, rm: dst, byteRegisters: size == 1)
  }

  /// IMUL r, r/m.
  package mutating func imul(_ dst: HostRegister, _ src: HostOperand, size: Int = 8) {
    encode(0x0F00 | UInt16(0xAF), size: size, reg: dst.rawValue, rm: src)
  }

  /// IMUL r, r/m, imm (imm8 when it fits a signed byte, else imm16/32).
  package mutating func imul(_ dst: HostRegister, _ src: HostOperand, immediate: Int64, size: Int = 8) {
    if Int64(Int8(truncatingIfNeeded: immediate)) == immediate {
      encode(UInt16(0x6B), size: size, reg: dst.rawValue, rm: src)
      imm(immediate, size: 1)
    } else {
      encode(UInt16(0x69), size: size, reg: dst.rawValue, rm: src)
      imm(immediate, size: min(size, 4))
    }
  }

  // MARK: Conditions and flags

  /// SETcc r/m8 (`condition` is the 4-bit x86 condition code).
  package mutating func setcc(_ condition: UInt8, _ dst: HostOperand) {
    encode(0x0F00 | UInt16(0x90 | condition & 15), size: 1, reg: 0, rm: dst, byteRegisters: true)
  }

  /// CMOVcc r, r/m.
  package mutating func cmov(_ condition: UInt8, _ dst: HostRegister, _ src: HostOperand, size: Int = 8) {
    encode(0x0F00 | UInt16(0x40 | condition & 15), size: size, reg: dst.rawValue, rm: src)
  }

  /// The LOCK prefix, for the instruction emitted next.
  package mutating func lock() { bytes.append(0xF0) }

  /// XADD r/m, r.
  package mutating func xadd(_ dst: HostOperand, _ src: HostRegister, size: Int = 8) {
    encode(
      0x0F00 | UInt16(size == 1 ? 0xC0 : 0xC1), size: size, reg: src.rawValue, rm: dst, byteRegisters: size == 1,
      regIsRegister: true)
  }

  /// CMPXCHG r/m, r (the accumulator is RAX).
  package mutating func cmpxchg(_ dst: HostOperand, _ src: HostRegister, size: Int = 8) {
    encode(
      0x0F00 | UInt16(size == 1 ? 0xB0 : 0xB1), size: size, reg: src.rawValue, rm: dst, byteRegisters: size == 1,
      regIsRegister: true)
  }

  /// XCHG r/m, r.
  package mutating func xchg(_ dst: HostOperand, _ src: HostRegister, size: Int = 8) {
    encode(
      UInt16(size == 1 ? 0x86 : 0x87), size: size, reg: src.rawValue, rm: dst, byteRegisters: size == 1,
      regIsRegister: true)
  }

  /// PUSHFQ.
  package mutating func pushfq() { bytes.append(0x9C) }
  /// LAHF: AH = SF ZF - AF - PF - CF (RFLAGS bits 0-7).
  package mutating func lahf() { bytes.append(0x9F) }
  /// SAHF: SF ZF AF PF CF = AH's bits 7 6 4 2 0.
  package mutating func sahf() { bytes.append(0x9E) }
  /// MOVZX ECX, AH (AH is only encodable without a REX prefix).
  package mutating func movzxECXFromAH() { bytes.append(contentsOf: [0x0F, 0xB6, 0xCC]) }
  package mutating func popfq() { bytes.append(0x9D) }

  // MARK: Stack and control flow

  package mutating func push(_ r: HostRegister) {
    if r.high != 0 { bytes.append(0x41) }
    bytes.append(0x50 + r.low3)
  }

  package mutating func pop(_ r: HostRegister) {
    if r.high != 0 { bytes.append(0x41) }
    bytes.append(0x58 + r.low3)
  }

  package mutating func ret() { bytes.append(0xC3) }

  /// CALL r/m64.
  package mutating func call(_ target: HostOperand) { encode(UInt16(0xFF), size: 4, reg: 2, rm: target) }

  /// JMP r/m64.
  package mutating func jmp(_ target: HostOperand) { encode(UInt16(0xFF), size: 4, reg: 4, rm: target) }

  /// JMP rel32 to `label`.
  package mutating func jmp(_ label: Label) {
    bytes.append(0xE9)
    fixups.append((bytes.count, label))
    imm(0, size: 4)
  }

  /// CQO: RDX = RAX's sign in every bit (no flags changed).
  package mutating func cqo() { bytes.append(contentsOf: [0x48, 0x99]) }

  /// JRCXZ over a JMP rel32 to `label`: goes to `label` unless RCX is 0 (no flags read or changed).
  package mutating func jmpUnlessRCXZero(_ label: Label) {
    bytes.append(contentsOf: [0xE3, 0x05])
    jmp(label)
  }

  /// Jcc rel32 to `label`.
  package mutating func jcc(_ condition: UInt8, _ label: Label) {
    bytes.append(0x0F)
    bytes.append(0x80 | condition & 15)
    fixups.append((bytes.count, label))
    imm(0, size: 4)
  }
}

/// x86 condition codes (the low nibble of Jcc, SETcc and CMOVcc).
package enum HostCondition {
  package static let overflow: UInt8 = 0x0
  package static let below: UInt8 = 0x2
  package static let aboveOrEqual: UInt8 = 0x3
  package static let equal: UInt8 = 0x4
  package static let notEqual: UInt8 = 0x5
  package static let above: UInt8 = 0x7
  package static let sign: UInt8 = 0x8
}

/// One emitter per compatibility-mode instruction class.
extension CompatProgramGenerator {
  private static let all = FlagBits.arithmetic
  private static let logicDefined = FlagBits.cf | FlagBits.of | FlagBits.sf | FlagBits.zf | FlagBits.pf

  /// POP Sreg opcodes by Sreg number (nil: CS has none).
  private static let popSegment: [[UInt8]?] = [[0x07], nil, [0x17], [0x1F], [0x0F, 0xA1], [0x0F, 0xA9]]
  /// PUSH Sreg opcodes by Sreg number.
  private static let pushSegment: [[UInt8]] = [[0x06], [0x0E], [0x16], [0x1E], [0x0F, 0xA0], [0x0F, 0xA8]]

  mutating func emitSegmentLoad() {
    let c = InstructionClass.segmentLoad
    let target = rng.pick([0, 3, 4, 5, 2, 2, 0, 3])
    let selector = pickSelector(for: target)
    let size = rng.chance(0.5) ? 16 : 32
    switch rng.below(4) {
    case 0:
      // MOV Sreg, r16/r32 (the upper bits of the register are ignored). Rarely CS or Sreg 6/7: #UD.
      let r = register()
      setRegister(r, UInt32(truncatingIfNeeded: rng.next()) << 16 | UInt32(selector), c)
      let sreg = rng.chance(0.03) ? rng.pick([1, 6, 7]) : target
      add(operandSize(size) + [0x8E, 0xC0 | UInt8(sreg) << 3 | UInt8(r)], c)
      if sreg == target { loaded(selector, into: target) } else { ended = true }
    case 1:
      // MOV Sreg, m16.
      let m = memoryOperand(segment: anySegment(), size: 2, write: false, c: c)
      patch(segment: m.segment, offset: m.offset, littleEndian(UInt64(selector), count: 2))
      add(m.prefixes + operandSize(size) + [0x8E] + m.modrm(reg: target), c)
      loaded(selector, into: target)
    case 2:
      // PUSH imm (the selector, random upper half), then POP Sreg of either size.
      ensureStack(c)
      let pushSize = rng.chance(0.85) ? size : 48 - size
      let value = UInt32(truncatingIfNeeded: rng.next()) << 16 | UInt32(selector)
      add(operandSize(pushSize) + [0x68] + littleEndian(UInt64(value), count: pushSize / 8), c, setup: true)
      moveStack(-pushSize / 8)
      let pop = Self.popSegment[target] ?? [0x1F]
      add(operandSize(size) + pop, c)
      moveStack(size / 8)
      loaded(selector, into: target)
    default:
      // LES/LDS/LSS/LFS/LGS r, m16:16 or m16:32 (the far pointer placed in memory).
      let opcode: [UInt8]
      switch target {
      case 0: opcode = [0xC4]
      case 3: opcode = [0xC5]
      case 2: opcode = [0x0F, 0xB2]
      case 4: opcode = [0x0F, 0xB4]
      default: opcode = [0x0F, 0xB5]
      }
      let destination = target == 2 && rng.chance(0.7) ? 4 : register()
      var offset = UInt32(truncatingIfNeeded: rng.next())
      if target == 2, destination == 4, let view = predictLoad(selector, into: 2) {
        offset = stackPointer(in: view, below: 0x100, above: 0x40) ?? offset
      }
      if size == 16 { offset &= 0xFFFF }
      let m = memoryOperand(segment: anySegment(), size: size / 8 + 2, write: false, avoiding: [destination], c: c)
      patch(
        segment: m.segment, offset: m.offset,
        littleEndian(UInt64(offset), count: size / 8) + littleEndian(UInt64(selector), count: 2))
      add(m.prefixes + operandSize(size) + opcode + m.modrm(reg: destination), c)
      loaded(selector, into: target)
      if destination == 4 { esp = size == 16 ? nil : offset }
    }
  }

  mutating func emitSegmentMove() {
    let c = InstructionClass.segmentMove
    let size = rng.chance(0.5) ? 16 : 32
    switch rng.below(5) {
    case 0:
      // MOV r16/r32, Sreg: a 32-bit destination is zero-extended. Sreg 6/7: #UD.
      let sreg = rng.chance(0.03) ? rng.pick([6, 7]) : rng.below(6)
      add(operandSize(size) + [0x8C, 0xC0 | UInt8(sreg) << 3 | UInt8(register())], c)
      if sreg > 5 { ended = true }
    case 1:
      // MOV m16, Sreg: two bytes whatever the operand size.
      let m = memoryOperand(segment: anySegment(write: true), size: 2, write: true, c: c)
      add(m.prefixes + operandSize(size) + [0x8C] + m.modrm(reg: rng.below(6)), c)
    case 2:
      // PUSH Sreg.
      ensureStack(c)
      add(operandSize(size) + Self.pushSegment[rng.below(6)], c)
      moveStack(-size / 8)
    case 3:
      // PUSH Sreg; POP Sreg: copies a selector, loaded with all checks (PUSH CS; POP SS fails).
      ensureStack(c)
      let from = rng.below(6)
      let to = rng.pick([0, 2, 3, 4, 5])
      add(operandSize(size) + Self.pushSegment[from], c)
      moveStack(-size / 8)
      let popSize = rng.chance(0.85) ? size : 48 - size
      add(operandSize(popSize) + Self.popSegment[to]!, c)
      moveStack(popSize / 8)
      // Either pop size finds the selector in its low word.
      loaded(segments[from].selector, into: to)
    default:
      // MOV r, Sreg; MOV Sreg, r.
      let from = rng.below(6)
      let to = rng.pick([0, 2, 3, 4, 5])
      let r = register()
      add(operandSize(size) + [0x8C, 0xC0 | UInt8(from) << 3 | UInt8(r)], c)
      add([0x8E, 0xC0 | UInt8(to) << 3 | UInt8(r)], c)
      loaded(segments[from].selector, into: to)
    }
  }

  mutating func emitStackSize() {
    let c = InstructionClass.stackSize
    let size = rng.chance(0.5) ? 16 : 32
    if esp == nil || rng.chance(0.35) { setRegister(4, anyStackPointer(room: 0x40), c) }
    switch rng.below(12) {
    case 0:
      add(operandSize(size) + [0x50 + UInt8(rng.below(8))], c)
      moveStack(-size / 8)
    case 1:
      if rng.chance(0.5) {
        add(operandSize(size) + [0x6A, UInt8(truncatingIfNeeded: rng.next())], c)
      } else {
        add(operandSize(size) + [0x68] + littleEndian(rng.next(), count: size / 8), c)
      }
      moveStack(-size / 8)
    case 2:
      let m = memoryOperand(segment: anySegment(), size: size / 8, write: false, avoiding: [4], c: c)
      add(m.prefixes + operandSize(size) + [0xFF] + m.modrm(reg: 6), c)
      moveStack(-size / 8)
    case 3:
      let r = rng.chance(0.05) ? 4 : register()
      add(operandSize(size) + [0x58 + UInt8(r)], c)
      if r == 4 { esp = nil } else { moveStack(size / 8) }
    case 4:
      let m = memoryOperand(segment: anySegment(write: true), size: size / 8, write: true, avoiding: [4], c: c)
      add(m.prefixes + operandSize(size) + [0x8F] + m.modrm(reg: 0), c)
      moveStack(size / 8)
    case 5:
      // PUSHF, or POPF of a controlled image (no TF, no AC).
      if rng.chance(0.5) {
        add(operandSize(size) + [0x9C], c, reads: Self.all)
        moveStack(-size / 8)
      } else {
        add(operandSize(size) + [0x68] + littleEndian((rng.next() & 0x0CD5) | 2, count: size / 8), c, setup: true)
        add(operandSize(size) + [0x9D], c, defines: Self.all)
      }
    case 6:
      // PUSHA, or POPA (which loads every register but ESP from the stack).
      if rng.chance(0.6) {
        add(operandSize(size) + [0x60], c)
        moveStack(-size / 2)
      } else {
        add(operandSize(size) + [0x61], c)
        moveStack(size / 2)
      }
    case 7, 8:
      // CALL over a JMP to a RET (or RET imm16), which returns to the JMP: pushes and pops the
      // return address at the operand size. A 16-bit CALL from 32-bit code at 10000000h would
      // truncate EIP, so 32-bit code calls at its own size (PUSHFD instead otherwise).
      guard size == codeBits || codeBits == 16 else {
        add(operandSize(32) + [0x9C], c, reads: Self.all)
        moveStack(-4)
        return
      }
      let release = rng.chance(0.3) ? UInt16(rng.pick([0, 2, 4, 6, 0x100])) : nil
      let ret: [UInt8] = release.map { [0xC2] + littleEndian(UInt64($0), count: 2) } ?? [0xC3]
      let retBytes = operandSize(size) + ret
      add(operandSize(size) + [0xE8] + littleEndian(2, count: size / 8), c)
      add([0xEB, UInt8(retBytes.count)], c, setup: true)
      add(retBytes, c)
      moveStack(Int(release ?? 0))
    case 9:
      // PUSH ESP: the value pushed is ESP (or SP) before the push.
      add(operandSize(size) + [0x54], c)
      moveStack(-size / 8)
    case 10:
      // Loads and stores relative to ESP with 32-bit addressing: on a 16-bit stack bits 31:16 of
      // ESP take part in the address.
      let write = rng.chance(0.5)
      let displacement = UInt8(truncatingIfNeeded: rng.below(64) - 32)
      let modrm: [UInt8] = [0x44 | UInt8(register()) << 3, 0x24, displacement]
      add(addressSize(32) + operandSize(size) + [write ? 0x89 : 0x8B] + modrm, c)
    default:
      // 16-bit-address loads through BP (SS by default): only BP counts.
      let m = memoryOperand(segment: 2, size: size / 8, write: false, avoiding: [4], c: c, addressBits: 16)
      add(m.prefixes + operandSize(size) + [0x8B] + m.modrm(reg: register(avoiding: [5])), c)
    }
  }

  mutating func emitEnterLeave() {
    let c = InstructionClass.enterLeave
    let size = rng.chance(0.5) ? 16 : 32
    let level = rng.chance(0.85) ? rng.below(32) : 32 + rng.below(224)
    let frame: UInt64 =
      rng.chance(0.9) ? UInt64(rng.pick([0, 2, 4, 8, rng.below(64), rng.below(0x200)])) : rng.interesting(bits: 16)
    let room = UInt64(level & 31) * 4 + 8 + (frame & 0xFFFF)
    let stack = anyStackPointer(room: min(room + 0x20, 0x1000))
    setRegister(4, stack, c)
    // EBP: somewhere above ESP in the stack (the nesting copies read below it); on a 16-bit stack
    // its upper half is random since only BP is used.
    var bp = stack &+ (UInt32(rng.below(0x100)) & ~1)
    if !segments[2].big { bp = (bp & 0xFFFF) | UInt32(truncatingIfNeeded: rng.next()) << 16 }
    if rng.chance(0.1) { bp = UInt32(truncatingIfNeeded: rng.interesting(bits: 32)) }
    setRegister(5, bp, c)
    add(operandSize(size) + [0xC8] + littleEndian(frame, count: 2) + [UInt8(level)], c)
    esp = nil
    if rng.chance(0.6) { add(operandSize(rng.chance(0.8) ? size : 48 - size) + [0xC9], c) }
  }

  mutating func emitString16() {
    let c = InstructionClass.string16
    let size = rng.pick([8, 16, 32])
    let kind = rng.below(5)  // MOVS CMPS STOS LODS SCAS
    let opcodes: [UInt8] = [0xA4, 0xA6, 0xAA, 0xAC, 0xAE]
    let readsSource = kind == 0 || kind == 1 || kind == 3
    let writes = kind == 0 || kind == 2
    let compares = kind == 1 || kind == 4
    let addressBits = rng.chance(0.75) ? 16 : 32
    let mask: UInt64 = addressBits == 16 ? 0xFFFF : 0xFFFF_FFFF
    let down = rng.chance(0.4)
    add([down ? 0xFD : 0xFC], c, setup: true)
    var prefixes: [UInt8] = []
    var count = 1
    if rng.chance(0.65) {
      prefixes.append(compares && rng.chance(0.5) ? 0xF2 : 0xF3)
      count = rng.chance(0.1) ? 0 : 1 + rng.below(8)
      // With 16-bit addressing the count is CX: ECX's upper half is random and must survive.
      let high = addressBits == 16 ? UInt32(truncatingIfNeeded: rng.next()) << 16 : 0
      setRegister(1, high | UInt32(count), c)
    }
    let element = size / 8
    let span = max(count, 1) * element
    // Source DS:SI (or an override), destination ES:DI; either may sit at the 16-bit wrap.
    let sourceSegment = rng.chance(0.4) ? 3 : anySegment(addressBits: addressBits)
    if readsSource { ensureSegment(sourceSegment, write: false, addressBits: addressBits, c) }
    if kind != 3 { ensureSegment(0, write: writes, addressBits: addressBits, c) }
    func place(_ segment: Int, write: Bool) -> UInt32 {
      var offset: UInt64
      if addressBits == 16 && rng.chance(0.12) {
        // Start next to 0 or FFFFh so the walk wraps.
        offset = down ? UInt64(rng.below(span + 1)) : 0x10000 - UInt64(rng.below(span + 1))
      } else {
        offset = pickOffset(segments[segment], size: span, write: write, addressBits: addressBits)
        if down { offset = offset &+ UInt64(span - element) }
      }
      offset &= mask
      let high = addressBits == 16 ? UInt32(truncatingIfNeeded: rng.next()) << 16 : 0
      return high | UInt32(truncatingIfNeeded: offset)
    }
    if readsSource { setRegister(6, place(sourceSegment, write: false), c) }
    if kind != 3 { setRegister(7, place(0, write: writes), c) }
    if readsSource && sourceSegment != 3 { prefixes.append([0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65][sourceSegment]) }
    let bytes = prefixes + addressSize(addressBits) + operandSize(size) + [opcodes[kind] | (size == 8 ? 0 : 1)]
    add(bytes, c, defines: compares && count != 0 ? Self.all : 0)
  }

  mutating func emitSegmentLimit() {
    let c = InstructionClass.segmentLimit
    let size = rng.pick([8, 16, 32, 32])
    let w: UInt8 = size == 8 ? 0 : 1
    let r = register()
    let kind = rng.below(10)
    // Stores and read-modify-write destinations (kinds 1, 2, 3, 5, 7, 9 but CMP) want a writable segment.
    let segment = anySegment(write: [1, 2, 3, 5, 7, 9].contains(kind))
    switch kind {
    case 0:
      let m = memoryOperand(segment: segment, size: size / 8, write: false, c: c)
      add(m.prefixes + operandSize(size) + [0x8A | w] + m.modrm(reg: register()), c)
    case 1:
      let m = memoryOperand(segment: segment, size: size / 8, write: true, c: c)
      add(m.prefixes + operandSize(size) + [0x88 | w] + m.modrm(reg: rng.below(8)), c)
    case 2:
      let m = memoryOperand(segment: segment, size: size / 8, write: true, c: c)
      add(
        m.prefixes + operandSize(size) + [0xC6 | w] + m.modrm(reg: 0)
          + littleEndian(rng.next(), count: size == 32 ? 4 : size / 8), c)
    case 3:
      // ALU m, r (CMP only reads).
      let op = rng.below(8)
      let m = memoryOperand(segment: segment, size: size / 8, write: op != 7, c: c)
      let isLogic = op == 1 || op == 4 || op == 6
      add(
        m.prefixes + operandSize(size) + [UInt8(op << 3) | w] + m.modrm(reg: rng.below(8)), c,
        defines: isLogic ? Self.logicDefined : Self.all, undefines: isLogic ? FlagBits.af : 0,
        reads: op == 2 || op == 3 ? FlagBits.cf : 0)
    case 4:
      let op = rng.below(8)
      let m = memoryOperand(segment: segment, size: size / 8, write: false, avoiding: [r], c: c)
      let isLogic = op == 1 || op == 4 || op == 6
      add(
        m.prefixes + operandSize(size) + [UInt8(op << 3) | 2 | w] + m.modrm(reg: r), c,
        defines: isLogic ? Self.logicDefined : Self.all, undefines: isLogic ? FlagBits.af : 0,
        reads: op == 2 || op == 3 ? FlagBits.cf : 0)
    case 5:
      // INC DEC NOT NEG m.
      let kind = rng.below(4)
      let m = memoryOperand(segment: segment, size: size / 8, write: true, c: c)
      let bytes: [UInt8] = kind < 2 ? [0xFE | w] + m.modrm(reg: kind) : [0xF6 | w] + m.modrm(reg: kind)
      let defines: UInt64 = kind < 2 ? Self.all & ~FlagBits.cf : kind == 3 ? Self.all : 0
      add(m.prefixes + operandSize(size) + bytes, c, defines: defines)
    case 6:
      let m = memoryOperand(segment: segment, size: size / 8, write: false, c: c)
      add(
        m.prefixes + operandSize(size) + [0x84 | w] + m.modrm(reg: rng.below(8)), c, defines: Self.logicDefined,
        undefines: FlagBits.af)
    case 7:
      let m = memoryOperand(segment: segment, size: size / 8, write: true, avoiding: [r], c: c)
      add(m.prefixes + operandSize(size) + [0x86 | w] + m.modrm(reg: r), c)
    case 8:
      // MOVZX/MOVSX r, m8/m16.
      let wide = rng.chance(0.5)
      let m = memoryOperand(segment: segment, size: wide ? 2 : 1, write: false, c: c)
      add(
        m.prefixes + operandSize(rng.chance(0.7) ? 32 : 16) + [0x0F, (rng.chance(0.5) ? 0xB6 : 0xBE) | (wide ? 1 : 0)]
          + m.modrm(reg: register()), c)
    default:
      // ALU m, imm.
      let op = rng.below(8)
      let m = memoryOperand(segment: segment, size: size / 8, write: op != 7, c: c)
      let isLogic = op == 1 || op == 4 || op == 6
      let short = size != 8 && rng.chance(0.5)
      let immediate = littleEndian(rng.next(), count: short ? 1 : size == 32 ? 4 : size / 8)
      add(
        m.prefixes + operandSize(size) + [short ? 0x83 : (size == 8 ? 0x80 : 0x81)] + m.modrm(reg: op) + immediate, c,
        defines: isLogic ? Self.logicDefined : Self.all, undefines: isLogic ? FlagBits.af : 0,
        reads: op == 2 || op == 3 ? FlagBits.cf : 0)
    }
  }
}

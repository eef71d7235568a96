import X86

/// The forms the translator covers: ALU, moves, LEA, IMUL, shifts, PUSH/POP, atomic updates,
/// branches, loops and calls, with their memory operands.
extension SystemProgramGenerator {
  // MARK: Translated forms

  mutating func pickFree() -> Int { rng.pick(Self.free) }

  /// Emits one instruction through `Encoder` (its arguments are evaluated first).
  mutating func put(
    size: Int = 32, prefixes: [UInt8] = [], opcode: [UInt8], reg: Int? = nil, rm: RMOperand? = nil,
    opcodeRegister: Int? = nil, immediate: [UInt8] = []
  ) {
    var e = Encoder()
    e.emit(
      size: size, prefixes: prefixes, opcode: opcode, reg: reg, rm: rm, opcodeRegister: opcodeRegister,
      immediate: immediate)
    asm.raw(e.bytes)
  }

  /// A memory operand of `size` bytes in ordinary memory (data pages mostly, the alias pages, the
  /// stack for reads), its base register loaded just before; sometimes across a page boundary.
  mutating func memoryOperand(size: Int, write: Bool, avoid: Int? = nil) -> RMOperand {
    var base = pickFree()
    while base == avoid { base = pickFree() }
    if !write && rng.chance(0.08) {
      return .memory(base: 4, index: nil, scale: 1, displacement: Int32(rng.below(8) * 8))
    }
    let page: UInt64
    switch rng.below(10) {
    case 0: page = SystemLayout.alias + UInt64(rng.below(SystemLayout.aliasPageCount)) << 12
    case 1: page = SystemLayout.faultPages + UInt64(rng.below(SystemLayout.faultPageCount)) << 12
    default: page = SystemLayout.data + UInt64(rng.below(SystemLayout.dataPages - 1)) << 12
    }
    let offset: UInt64 = rng.chance(0.1) ? 0x1000 - UInt64(rng.below(size) + 1) : UInt64(rng.below(0x1000 - 64))
    let displacement = Int32(rng.below(32)) - 8
    asm.movImm32(base, UInt32(page + offset) &- UInt32(bitPattern: displacement))
    if rng.chance(0.2) {
      var index = pickFree()
      while index == base || index == avoid { index = pickFree() }
      let scale = rng.pick([1, 2, 4, 8])
      let count = rng.below(4)
      asm.movImm32(index, UInt32(count))
      asm.movImm32(base, UInt32(page + offset) &- UInt32(bitPattern: displacement) &- UInt32(count * scale))
      return .memory(base: base, index: index, scale: scale, displacement: displacement)
    }
    return .memory(base: base, index: nil, scale: 1, displacement: displacement)
  }

  mutating func burst(_ count: Int) {
    for _ in 0..<count { translatedForm() }
  }

  /// One instruction of the forms the translator covers (and now and then one it leaves to the
  /// interpreter: XCHG of registers, MUL, BSWAP, BT).
  mutating func translatedForm() {
    let size = rng.pick([8, 16, 32, 32, 64, 64])
    let op = rng.below(8)
    let dst = pickFree()
    let src = pickFree()
    let immediate = littleEndian(rng.interesting(bits: 32), count: size == 8 ? 1 : size == 16 ? 2 : 4)
    let w: UInt8 = size == 8 ? 0 : 1
    switch rng.below(22) {
    case 0, 1:
      put(size: size, opcode: [UInt8(op) << 3 | w], reg: src, rm: .register(dst))
    case 2, 3:
      if size != 8 && rng.chance(0.5) {
        put(size: size, opcode: [0x83], reg: op, rm: .register(dst), immediate: [UInt8(rng.below(256))])
      } else {
        put(size: size, opcode: [size == 8 ? 0x80 : 0x81], reg: op, rm: .register(dst), immediate: immediate)
      }
    case 4:
      let m = memoryOperand(size: size / 8, write: false, avoid: dst)
      put(size: size, opcode: [UInt8(op) << 3 | 2 | w], reg: dst, rm: m)
    case 5:
      let m = memoryOperand(size: size / 8, write: op != 7, avoid: src)
      put(size: size, opcode: [UInt8(op) << 3 | w], reg: src, rm: m)
    case 6:
      let m = memoryOperand(size: size / 8, write: op != 7)
      put(size: size, opcode: [size == 8 ? 0x80 : 0x81], reg: op, rm: m, immediate: immediate)
    case 7:
      put(size: size, opcode: [0x88 | w], reg: src, rm: .register(dst))
    case 8:
      if size >= 32 && rng.chance(0.5) {
        asm.movImm32(dst, UInt32(truncatingIfNeeded: rng.interesting(bits: 32)))
      } else {
        put(size: size, opcode: [0xC6 | w], reg: 0, rm: .register(dst), immediate: immediate)
      }
    case 9:
      let m = memoryOperand(size: size / 8, write: false, avoid: dst)
      put(size: size, opcode: [0x8A | w], reg: dst, rm: m)
    case 10:
      let m = memoryOperand(size: size / 8, write: true, avoid: src)
      put(size: size, opcode: [0x88 | w], reg: src, rm: m)
    case 11:
      let index = rng.chance(0.5) ? pickFree() : nil
      let base = rng.chance(0.1) ? 4 : pickFree()
      let s = max(size, 16)
      put(
        size: s, opcode: [0x8D], reg: dst,
        rm: .memory(
          base: base, index: index, scale: 1 << rng.below(4), displacement: Int32(truncatingIfNeeded: rng.next())))
    case 12:
      let s = rng.pick([16, 32, 64])
      let from = rng.pick([[0x0F, 0xB6], [0x0F, 0xB7], [0x0F, 0xBE], [0x0F, 0xBF], [0x63]] as [[UInt8]])
      let rm: RMOperand =
        rng.chance(0.5)
        ? .register(src) : memoryOperand(size: from == [0x63] ? 4 : from[1] & 1 == 0 ? 1 : 2, write: false, avoid: dst)
      put(size: from == [0x63] ? 64 : s, opcode: from, reg: dst, rm: rm)
    case 13:
      let s = rng.pick([16, 32, 64])
      switch rng.below(3) {
      case 0: put(size: s, opcode: [0x0F, 0xAF], reg: dst, rm: .register(src))
      case 1: put(size: s, opcode: [0x6B], reg: dst, rm: .register(src), immediate: [UInt8(rng.below(256))])
      default:
        let m = memoryOperand(size: s / 8, write: false, avoid: dst)
        put(size: s, opcode: [0x0F, 0xAF], reg: dst, rm: m)
      }
    case 14:
      let kind = rng.pick([0, 1, 2, 3, 4, 5, 7])
      switch rng.below(3) {
      case 0:
        put(size: size, opcode: [0xC0 | w], reg: kind, rm: .register(dst), immediate: [UInt8(rng.below(70))])
      case 1: put(size: size, opcode: [0xD0 | w], reg: kind, rm: .register(dst))
      default:
        put(size: size, opcode: [0xD2 | w], reg: kind, rm: .register(dst))
      }
    case 15:
      let rm: RMOperand = rng.chance(0.7) ? .register(dst) : memoryOperand(size: size / 8, write: true)
      put(size: size, opcode: [0xFE | w], reg: rng.below(2), rm: rm)
      if rng.chance(0.3) { put(size: size, opcode: [0xF6 | w], reg: 2 + rng.below(2), rm: .register(dst)) }
    case 16:
      let cc = UInt8(rng.below(16))
      if rng.chance(0.5) {
        let s = rng.pick([16, 32, 64])
        let rm: RMOperand = rng.chance(0.7) ? .register(src) : memoryOperand(size: s / 8, write: false, avoid: dst)
        put(size: s, opcode: [0x0F, 0x40 | cc], reg: dst, rm: rm)
      } else {
        put(size: 8, opcode: [0x0F, 0x90 | cc], reg: 0, rm: .register(dst))
      }
    case 17:
      put(size: size, opcode: [0x84 | w], reg: src, rm: .register(dst))
    case 18:
      // PUSH reg/imm/mem ... POP reg.
      let n = rng.below(3) + 1
      for _ in 0..<n {
        switch rng.below(3) {
        case 0: asm.push(pickFree())
        case 1: asm.raw([0x68] + littleEndian(rng.next(), count: 4))
        default:
          let m = memoryOperand(size: 8, write: false)
          put(opcode: [0xFF], reg: 6, rm: m)
        }
      }
      for _ in 0..<n { asm.pop(pickFree()) }
    case 19, 20:
      // Atomic read-modify-writes of memory (LOCK ADD..XOR, INC/DEC, XADD, XCHG, CMPXCHG).
      let m = memoryOperand(size: size / 8, write: true, avoid: src)
      switch rng.below(6) {
      case 0: put(size: size, prefixes: [0xF0], opcode: [0x0F, 0xC0 | w], reg: src, rm: m)
      case 1:
        // CMPXCHG against RAX: often loaded from the same place first, so that it also succeeds.
        if case .memory(let base, let index, _, _) = m, base != 0, index != 0, rng.chance(0.5) {
          put(size: size, opcode: [0x8A | w], reg: 0, rm: m)
        }
        put(size: size, prefixes: rng.chance(0.7) ? [0xF0] : [], opcode: [0x0F, 0xB0 | w], reg: src, rm: m)
      case 2: put(size: size, opcode: [0x86 | w], reg: src, rm: m)
      case 3:
        put(size: size, prefixes: [0xF0], opcode: [UInt8(op == 7 ? 0 : op) << 3 | w], reg: src, rm: m)
      case 4:
        put(
          size: size, prefixes: [0xF0], opcode: [size == 8 ? 0x80 : 0x81], reg: op == 7 ? 5 : op, rm: m,
          immediate: immediate)
      default: put(size: size, prefixes: [0xF0], opcode: [0xFE | w], reg: rng.below(2), rm: m)
      }
    default:
      switch rng.below(4) {
      case 0: put(size: size, opcode: [0x86 | w], reg: src, rm: .register(dst))
      case 1: put(size: max(size, 32), opcode: [0xF7], reg: 4, rm: .register(dst))
      case 2: put(size: max(size, 32), opcode: [0x0F, 0xC8], opcodeRegister: dst)
      default: put(size: max(size, 16), opcode: [0x0F, 0xA3], reg: src, rm: .register(dst))
      }
    }
  }

  mutating func forwardBranch() {
    let over = asm.newLabel()
    put(size: 64, opcode: [0x39], reg: pickFree(), rm: .register(pickFree()))
    if rng.chance(0.5) {
      // A short Jcc over register-only instructions (at most 4 bytes each).
      asm.jccShort(rng.below(16), over)
      for _ in 0..<(rng.below(4) + 1) {
        let size = rng.pick([32, 64])
        if rng.chance(0.5) {
          put(size: size, opcode: [UInt8(rng.below(8)) << 3 | 1], reg: pickFree(), rm: .register(pickFree()))
        } else {
          put(
            size: size, opcode: [0x83], reg: rng.below(8), rm: .register(pickFree()), immediate: [UInt8(rng.below(256))]
          )
        }
      }
    } else {
      asm.jcc(rng.below(16), over)
      burst(rng.below(4) + 1)
    }
    asm.bind(over)
  }

  /// A counted loop (R15): a body of translated forms and loop-safe system items, DEC R15D / JNZ.
  mutating func loop() {
    guard !inLoop else { return burst(3) }
    inLoop = true
    defer { inLoop = false }
    let top = asm.newLabel()
    asm.movImm32(15, UInt32(rng.below(40) + 2))
    asm.bind(top)
    for _ in 0..<(rng.below(4) + 1) {
      switch rng.below(12) {
      case 0: faultAccess()
      case 1: reprotect()
      case 2, 3: selfModify()
      case 4: callFunction()
      case 5: forwardBranch()
      case 6: aliasRemap()
      case 7: if rng.chance(0.5) { softwareInterrupt() } else { portIO() }
      case 8: if rng.chance(0.5) { flags() } else { interruptFlag() }
      default: burst(rng.below(6) + 1)
      }
    }
    asm.raw([0x41, 0xFF, 0xCF])  // dec r15d
    let distance = Int(asm.here) + 2 - Int(asm.labels[top] ?? 0)
    if distance <= 128 && rng.chance(0.7) { asm.jccShort(5, top) } else { asm.jcc(5, top) }
  }

  /// A function on the functions pages, called once or twice (and so reached through a
  /// cross-page link and returned from through RET's table).
  mutating func callFunction() {
    guard let f = function(room: 300, { g in g.burst(g.rng.below(5) + 1) }) else { return burst(2) }
    for _ in 0..<(rng.below(2) + 1) { asm.call(f) }
  }

  /// Emits a function on the functions pages (`body`, then RET) and returns its label, back in
  /// the main code; nil, emitting nothing, when those pages have `room` bytes or less left.
  mutating func function(room: Int, _ body: (inout Self) -> Void) -> Int? {
    let f = asm.newLabel()
    asm.current = 1
    defer { asm.current = 0 }
    guard asm.room > room else { return nil }
    asm.bind(f)
    body(&self)
    asm.ret()
    return f
  }
}

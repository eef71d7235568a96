/// The interpreter's fast path: pre-resolved handlers (`FastForm`) for the common shapes of
/// instructions, specialized for 64-bit mode (`FastLong`) and for 16- and 32-bit code in real,
/// protected, virtual-8086 and compatibility mode (`FastLegacy`). A handler either completes the
/// instruction (state updated) and returns the next RIP, which the caller commits, or changes
/// nothing and returns `CPU.fastDeclined`, and `execute` then runs the instruction in full, raising
/// whatever fault it meets. Handlers never fault: any memory access that misses the TLB, crosses a
/// page or might need a check they do not make (outside 64-bit mode: a segment whose type needs a
/// check, an offset beyond the limit, a branch target beyond CS's limit) sends the instruction to
/// the general path. Semantics come from the same `ALU` functions `execute` uses.
extension CPU {
  typealias CacheEntry = UnsafeMutablePointer<DecodeCache.Entry>

  /// What a fast handler returns when it leaves the instruction to `execute`: a non-canonical
  /// address, so it can never be a RIP a handler commits.
  static let fastDeclined: UInt64 = 1 << 63

  /// Runs the cached instruction `e` (classified in the current code mode, which `M` says is 64-bit
  /// or not) through its fast handler. Each handler is a generic function specialized per form and
  /// mode (operation, operand shapes and mode are types), so the compiler emits one small
  /// branch-free-of-dispatch function per form.
  @_transparent
  func executeFast<M: FastMode>(_ e: CacheEntry, _: M.Type, nextRIP: UInt64) -> UInt64 {
    switch e.pointee.form {
    case .generic: return CPU.fastDeclined
    case .addRR: return fastALU(e, M.self, ALUAdd.self, GPROperand.self, GPROperand.self, nextRIP)
    case .orRR: return fastALU(e, M.self, ALUOr.self, GPROperand.self, GPROperand.self, nextRIP)
    case .adcRR: return fastALU(e, M.self, ALUAdc.self, GPROperand.self, GPROperand.self, nextRIP)
    case .sbbRR: return fastALU(e, M.self, ALUSbb.self, GPROperand.self, GPROperand.self, nextRIP)
    case .andRR: return fastALU(e, M.self, ALUAnd.self, GPROperand.self, GPROperand.self, nextRIP)
    case .subRR: return fastALU(e, M.self, ALUSub.self, GPROperand.self, GPROperand.self, nextRIP)
    case .xorRR: return fastALU(e, M.self, ALUXor.self, GPROperand.self, GPROperand.self, nextRIP)
    case .cmpRR: return fastALU(e, M.self, ALUCmp.self, GPROperand.self, GPROperand.self, nextRIP)
    case .testRR: return fastALU(e, M.self, ALUTest.self, GPROperand.self, GPROperand.self, nextRIP)
    case .addRI: return fastALU(e, M.self, ALUAdd.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .orRI: return fastALU(e, M.self, ALUOr.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .adcRI: return fastALU(e, M.self, ALUAdc.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .sbbRI: return fastALU(e, M.self, ALUSbb.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .andRI: return fastALU(e, M.self, ALUAnd.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .subRI: return fastALU(e, M.self, ALUSub.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .xorRI: return fastALU(e, M.self, ALUXor.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .cmpRI: return fastALU(e, M.self, ALUCmp.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .testRI: return fastALU(e, M.self, ALUTest.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .addRM: return fastALU(e, M.self, ALUAdd.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .orRM: return fastALU(e, M.self, ALUOr.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .adcRM: return fastALU(e, M.self, ALUAdc.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .sbbRM: return fastALU(e, M.self, ALUSbb.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .andRM: return fastALU(e, M.self, ALUAnd.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .subRM: return fastALU(e, M.self, ALUSub.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .xorRM: return fastALU(e, M.self, ALUXor.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .cmpRM: return fastALU(e, M.self, ALUCmp.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .testRM: return fastALU(e, M.self, ALUTest.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .addMR: return fastALU(e, M.self, ALUAdd.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .orMR: return fastALU(e, M.self, ALUOr.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .adcMR: return fastALU(e, M.self, ALUAdc.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .sbbMR: return fastALU(e, M.self, ALUSbb.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .andMR: return fastALU(e, M.self, ALUAnd.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .subMR: return fastALU(e, M.self, ALUSub.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .xorMR: return fastALU(e, M.self, ALUXor.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .cmpMR: return fastALU(e, M.self, ALUCmp.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .testMR: return fastALU(e, M.self, ALUTest.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .addMI: return fastALU(e, M.self, ALUAdd.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .orMI: return fastALU(e, M.self, ALUOr.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .adcMI: return fastALU(e, M.self, ALUAdc.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .sbbMI: return fastALU(e, M.self, ALUSbb.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .andMI: return fastALU(e, M.self, ALUAnd.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .subMI: return fastALU(e, M.self, ALUSub.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .xorMI: return fastALU(e, M.self, ALUXor.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .cmpMI: return fastALU(e, M.self, ALUCmp.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .testMI: return fastALU(e, M.self, ALUTest.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .incDecR: return fastIncDec(e, M.self, GPROperand.self, nextRIP)
    case .incDecM: return fastIncDec(e, M.self, MemoryOperand.self, nextRIP)
    case .movRR: return fastMove(e, M.self, GPROperand.self, GPROperand.self, signExtend: false, nextRIP)
    case .movRI: return fastMove(e, M.self, GPROperand.self, ImmediateOperand.self, signExtend: false, nextRIP)
    case .movRM: return fastMove(e, M.self, GPROperand.self, MemoryOperand.self, signExtend: false, nextRIP)
    case .movMR: return fastMove(e, M.self, MemoryOperand.self, GPROperand.self, signExtend: false, nextRIP)
    case .movMI: return fastMove(e, M.self, MemoryOperand.self, ImmediateOperand.self, signExtend: false, nextRIP)
    case .movsxRR: return fastMove(e, M.self, GPROperand.self, GPROperand.self, signExtend: true, nextRIP)
    case .movsxRM: return fastMove(e, M.self, GPROperand.self, MemoryOperand.self, signExtend: true, nextRIP)
    case .lea:
      let o0 = e.pointee.instruction.operands.0
      setReg(Int(o0.reg), Int(o0.size), effectiveAddress(e.pointee.instruction, nextRIP: nextRIP))
      return nextRIP
    case .jcc:
      guard lazyCondition(e.pointee.instruction.condition) else { return nextRIP }
      return fastBranchTarget(e, M.self, nextRIP &+ e.pointee.instruction.immediate)
    case .jmpRel:
      return fastBranchTarget(e, M.self, nextRIP &+ e.pointee.instruction.immediate)
    case .callRel:
      let target = fastBranchTarget(e, M.self, nextRIP &+ e.pointee.instruction.immediate)
      guard target != CPU.fastDeclined, fastPush(M.self, nextRIP, size: Int(e.pointee.instruction.operandSize))
      else { return CPU.fastDeclined }
      return target
    case .ret:
      if !M.long { return fastReturnLegacy(e) }
      let sp = state.gpr(4)
      guard let p = fastHostAddress64(seg: 2, offset: sp, size: 8, write: false) else { return CPU.fastDeclined }
      let target = p.loadUnaligned(as: UInt64.self)
      guard isCanonical(target) else { return CPU.fastDeclined }
      state.setGPR(4, sp &+ 8)
      return target
    case .pushR:
      let o0 = e.pointee.instruction.operands.0
      guard fastPush(M.self, reg(Int(o0.reg), Int(o0.size)), size: Int(e.pointee.instruction.operandSize)) else {
        return CPU.fastDeclined
      }
      return nextRIP
    case .pushI:
      let o0 = e.pointee.instruction.operands.0
      let v = e.pointee.instruction.immediate & ALU.mask(Int(o0.size))
      guard fastPush(M.self, v, size: Int(e.pointee.instruction.operandSize)) else { return CPU.fastDeclined }
      return nextRIP
    case .popR:
      if !M.long { return fastPopLegacy(e, nextRIP) }
      let sp = state.gpr(4)
      guard let p = fastHostAddress64(seg: 2, offset: sp, size: 8, write: false) else { return CPU.fastDeclined }
      state.setGPR(4, sp &+ 8)
      state.setGPR(Int(e.pointee.instruction.operands.0.reg), p.loadUnaligned(as: UInt64.self))
      return nextRIP
    case .imulR: return fastMultiply(e, M.self, GPROperand.self, nextRIP)
    case .imulM: return fastMultiply(e, M.self, MemoryOperand.self, nextRIP)
    case .shiftR: return fastShift(e, nextRIP)
    case .cmovR: return fastConditionalMove(e, M.self, GPROperand.self, nextRIP)
    case .cmovM: return fastConditionalMove(e, M.self, MemoryOperand.self, nextRIP)
    case .setccR:
      let o0 = e.pointee.instruction.operands.0
      setReg(Int(o0.reg), 1, lazyCondition(e.pointee.instruction.condition) ? 1 : 0)
      return nextRIP
    case .nop:
      return nextRIP
    }
  }

  // MARK: Handlers

  /// ADD OR ADC SBB AND SUB XOR CMP TEST for one operand shape; specialized per operand size
  /// (`FastForm.classify` gives these forms operands of the instruction's operand size only).
  @inline(never)
  private func fastALU<M: FastMode, Op: FastALUOperation, Dest: FastOperand, Source: FastOperand>(
    _ e: CacheEntry, _: M.Type, _: Op.Type, _: Dest.Type, _: Source.Type, _ nextRIP: UInt64
  ) -> UInt64 {
    switch e.pointee.instruction.operandSize {
    case 4: return fastALU(e, M.self, Op.self, Dest.self, Source.self, size: 4, nextRIP)
    case 8: return fastALU(e, M.self, Op.self, Dest.self, Source.self, size: 8, nextRIP)
    case 2: return fastALU(e, M.self, Op.self, Dest.self, Source.self, size: 2, nextRIP)
    default: return fastALU(e, M.self, Op.self, Dest.self, Source.self, size: 1, nextRIP)
    }
  }

  @inline(__always)
  private func fastALU<M: FastMode, Op: FastALUOperation, Dest: FastOperand, Source: FastOperand>(
    _ e: CacheEntry, _: M.Type, _: Op.Type, _: Dest.Type, _: Source.Type, size: Int, _ nextRIP: UInt64
  ) -> UInt64 {
    let op = Op.operation
    let writes = op != .cmp && op != .test
    let memory = Dest.kind == .memory ? fastMemoryOperand(e, M.self, size: size, write: writes, nextRIP) : nil
    if Dest.kind == .memory && memory == nil { return CPU.fastDeclined }
    let a = destinationValue(e, memory, size: size)
    guard let b = fastSource(e, M.self, e.pointee.instruction.operands.1, Source.kind, size: size, nextRIP) else {
      return CPU.fastDeclined
    }
    switch op {
    case .add:
      let r = (a &+ b) & ALU.mask(size)
      writeDestination(e, memory, r, size: size)
      setLazyFlags(LazyFlagsKind.add, size: size, result: r, a: a, b: b)
    case .sub, .cmp:
      let r = (a &- b) & ALU.mask(size)
      if writes { writeDestination(e, memory, r, size: size) }
      setLazyFlags(LazyFlagsKind.sub, size: size, result: r, a: a, b: b)
    case .and, .or, .xor, .test:
      let r = op == .or ? a | b : op == .xor ? a ^ b : a & b
      if writes { writeDestination(e, memory, r, size: size) }
      setLazyFlags(LazyFlagsKind.logic, size: size, result: r, a: a, b: b)
    default:  // ADC, SBB: they read CF, so they compute their flags eagerly
      let (r, f) = ALU.binary(op, a, b, carry: lazyCarry, size)
      writeDestination(e, memory, r, size: size)
      setStatusFlagsDroppingLazy(f)
    }
    return nextRIP
  }

  /// INC and DEC; specialized per operand size like `fastALU`.
  @inline(never)
  private func fastIncDec<M: FastMode, Dest: FastOperand>(
    _ e: CacheEntry, _: M.Type, _: Dest.Type, _ nextRIP: UInt64
  ) -> UInt64 {
    switch e.pointee.instruction.operandSize {
    case 4: return fastIncDec(e, M.self, Dest.self, size: 4, nextRIP)
    case 8: return fastIncDec(e, M.self, Dest.self, size: 8, nextRIP)
    case 2: return fastIncDec(e, M.self, Dest.self, size: 2, nextRIP)
    default: return fastIncDec(e, M.self, Dest.self, size: 1, nextRIP)
    }
  }

  @inline(__always)
  private func fastIncDec<M: FastMode, Dest: FastOperand>(
    _ e: CacheEntry, _: M.Type, _: Dest.Type, size: Int, _ nextRIP: UInt64
  ) -> UInt64 {
    let memory = Dest.kind == .memory ? fastMemoryOperand(e, M.self, size: size, write: true, nextRIP) : nil
    if Dest.kind == .memory && memory == nil { return CPU.fastDeclined }
    let a = destinationValue(e, memory, size: size)
    let carry = lazyCarry
    if e.pointee.instruction.operation == .inc {
      let r = (a &+ 1) & ALU.mask(size)
      writeDestination(e, memory, r, size: size)
      setLazyFlags(LazyFlagsKind.inc, size: size, result: r, a: a, b: carry)
    } else {
      let r = (a &- 1) & ALU.mask(size)
      writeDestination(e, memory, r, size: size)
      setLazyFlags(LazyFlagsKind.dec, size: size, result: r, a: a, b: carry)
    }
    return nextRIP
  }

  /// MOV, MOVZX, MOVSX, MOVSXD.
  @inline(never)
  private func fastMove<M: FastMode, Dest: FastOperand, Source: FastOperand>(
    _ e: CacheEntry, _: M.Type, _: Dest.Type, _: Source.Type, signExtend: Bool, _ nextRIP: UInt64
  ) -> UInt64 {
    let dest = Dest.kind
    let o0 = e.pointee.instruction.operands.0
    let o1 = e.pointee.instruction.operands.1
    guard var v = fastSource(e, M.self, o1, Source.kind, size: Int(o1.size), nextRIP) else { return CPU.fastDeclined }
    if signExtend { v = UInt64(bitPattern: ALU.signExtend(v, Int(o1.size))) }
    if dest == .gpr {
      setReg(Int(o0.reg), Int(o0.size), v)
    } else {
      let size = Int(o0.size)
      guard let p = fastMemoryOperand(e, M.self, size: size, write: true, nextRIP) else { return CPU.fastDeclined }
      store(p, size: size, v)
    }
    return nextRIP
  }

  /// IMUL r, r/m and IMUL r, r/m, imm.
  @inline(never)
  private func fastMultiply<M: FastMode, Source: FastOperand>(
    _ e: CacheEntry, _: M.Type, _: Source.Type, _ nextRIP: UInt64
  ) -> UInt64 {
    let size = Int(e.pointee.instruction.operandSize)
    let o0 = e.pointee.instruction.operands.0
    guard
      let a = fastSource(
        e, M.self, e.pointee.instruction.operands.1, Source.kind, size: Int(e.pointee.instruction.operands.1.size),
        nextRIP)
    else {
      return CPU.fastDeclined
    }
    let b =
      e.pointee.instruction.operandCount == 3
      ? e.pointee.instruction.immediate & ALU.mask(Int(e.pointee.instruction.operands.2.size))
      : reg(Int(o0.reg), Int(o0.size))
    let (r, f) = ALU.imul(a, b, size)
    setReg(Int(o0.reg), Int(o0.size), r)
    setStatusFlagsDroppingLazy(f)
    return nextRIP
  }

  /// Shifts and rotates of a register, by an immediate, 1 or CL; specialized per operand size.
  @inline(never)
  private func fastShift(_ e: CacheEntry, _ nextRIP: UInt64) -> UInt64 {
    switch e.pointee.instruction.operandSize {
    case 4: return fastShift(e, UInt32.self, nextRIP)
    case 8: return fastShift(e, UInt64.self, nextRIP)
    case 2: return fastShift(e, UInt16.self, nextRIP)
    default: return fastShift(e, UInt8.self, nextRIP)
    }
  }

  @inline(__always)
  private func fastShift<T: FixedWidthInteger & UnsignedInteger>(
    _ e: CacheEntry, _: T.Type, _ nextRIP: UInt64
  ) -> UInt64 {
    let size = T.bitWidth / 8
    let o0 = e.pointee.instruction.operands.0
    let o1 = e.pointee.instruction.operands.1
    let rawCount = o1.kind == .gpr ? reg(Int(o1.reg), 1) : e.pointee.instruction.immediate & 0xFF
    let count = rawCount & (size == 8 ? 0x3F : 0x1F)
    let destination = Int(o0.reg)
    let a = T(truncatingIfNeeded: reg(destination, size))
    func write(_ r: T) { setReg(destination, size, UInt64(r)) }
    if count == 0 {
      write(a)  // no flags change; a 32-bit destination is still zero-extended
      return nextRIP
    }
    switch e.pointee.instruction.operation {
    case .rol:  // CF and OF only
      // Masking shifts: for n = 0 both halves are `a`, the rotate of a multiple of the width.
      let n = T(truncatingIfNeeded: count) & T(T.bitWidth - 1)
      let r = (a &<< n) | (a &>> (T(T.bitWidth) &- n))
      write(r)
      setCarryAndOverflow(ALU.rotateFlags(UInt64(r), size, left: true))
    case .ror:
      let n = T(truncatingIfNeeded: count) & T(T.bitWidth - 1)
      let r = (a &>> n) | (a &<< (T(T.bitWidth) &- n))
      write(r)
      setCarryAndOverflow(ALU.rotateFlags(UInt64(r), size, left: false))
    case .shl, .sal, .shr, .sar:  // all six status flags
      let (r, f) = ALU.shiftRotate(e.pointee.instruction.operation, UInt64(a), count: count, size, flags: 0)
      write(T(truncatingIfNeeded: r))
      setStatusFlagsDroppingLazy(f & Flags.arithmetic)
    default:  // RCL, RCR read CF and keep SF, ZF, AF and PF
      materializeFlags()
      let (r, f) = ALU.shiftRotate(e.pointee.instruction.operation, UInt64(a), count: count, size, flags: state.rflags)
      write(T(truncatingIfNeeded: r))
      state.rflags = f
    }
    return nextRIP
  }

  @inline(never)
  private func fastConditionalMove<M: FastMode, Source: FastOperand>(
    _ e: CacheEntry, _: M.Type, _: Source.Type, _ nextRIP: UInt64
  ) -> UInt64 {
    let o0 = e.pointee.instruction.operands.0
    guard
      let v = fastSource(
        e, M.self, e.pointee.instruction.operands.1, Source.kind, size: Int(e.pointee.instruction.operands.1.size),
        nextRIP)
    else {
      return CPU.fastDeclined
    }
    // The source is read (and may fault) whatever the condition; a 32-bit destination is always
    // written, so its upper half clears even when the move does not happen.
    let taken = lazyCondition(e.pointee.instruction.condition)
    setReg(Int(o0.reg), Int(o0.size), taken ? v : reg(Int(o0.reg), Int(o0.size)))
    return nextRIP
  }

  // MARK: Helpers

  /// The host address of the instruction's memory operand (`size` bytes, checked for writing when
  /// `write`), or nil when the access misses the fast path.
  @inline(__always)
  private func fastMemoryOperand<M: FastMode>(_ e: CacheEntry, _: M.Type, size: Int, write: Bool, _ nextRIP: UInt64)
    -> UnsafeMutableRawPointer?
  {
    let ea = effectiveAddress(e.pointee.instruction, nextRIP: nextRIP)
    let seg = Int(e.pointee.instruction.segment)
    return M.long
      ? fastHostAddress64(seg: seg, offset: ea, size: size, write: write)
      : fastHostAddressLegacy(seg: seg, offset: ea, size: size, write: write)
  }

  /// The value of a destination operand: the register, or the memory `fastMemoryOperand` found.
  @inline(__always)
  private func destinationValue(_ e: CacheEntry, _ memory: UnsafeMutableRawPointer?, size: Int) -> UInt64 {
    if let memory { return load(memory, size: size) }
    return reg(Int(e.pointee.instruction.operands.0.reg), size)
  }

  /// Writes a result to the destination: the register, or the memory `fastMemoryOperand` found.
  @inline(__always)
  private func writeDestination(_ e: CacheEntry, _ memory: UnsafeMutableRawPointer?, _ value: UInt64, size: Int) {
    if let memory {
      store(memory, size: size, value)
    } else {
      setReg(Int(e.pointee.instruction.operands.0.reg), size, value)
    }
  }

  /// A source operand's value (a register or memory operand read at `size` bytes, an immediate
  /// masked to its own size), or nil if a memory source misses the fast path.
  @inline(__always)
  private func fastSource<M: FastMode>(
    _ e: CacheEntry, _: M.Type, _ o: Operand, _ kind: OperandKind, size: Int, _ nextRIP: UInt64
  ) -> UInt64? {
    switch kind {
    case .gpr: return reg(Int(o.reg), size)
    case .immediate: return e.pointee.instruction.immediate & ALU.mask(Int(o.size))
    default:
      guard let p = fastMemoryOperand(e, M.self, size: size, write: false, nextRIP) else { return nil }
      return load(p, size: size)
    }
  }

  @inline(__always) private func load(_ p: UnsafeMutableRawPointer, size: Int) -> UInt64 {
    switch size {
    case 8: return p.loadUnaligned(as: UInt64.self)
    case 4: return UInt64(p.loadUnaligned(as: UInt32.self))
    case 2: return UInt64(p.loadUnaligned(as: UInt16.self))
    default: return UInt64(p.load(as: UInt8.self))
    }
  }

  @inline(__always) private func store(_ p: UnsafeMutableRawPointer, size: Int, _ v: UInt64) {
    switch size {
    case 8: p.storeBytes(of: v, as: UInt64.self)
    case 4: p.storeBytes(of: UInt32(truncatingIfNeeded: v), as: UInt32.self)
    case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: v), as: UInt16.self)
    default: p.storeBytes(of: UInt8(truncatingIfNeeded: v), as: UInt8.self)
    }
  }

  /// Pushes `size` bytes of `v` (a quadword in 64-bit mode) if the stack slot needs no check and
  /// hits the write host-page cache; commits the stack pointer.
  @inline(__always) private func fastPush<M: FastMode>(_: M.Type, _ v: UInt64, size: Int) -> Bool {
    if M.long {
      let sp = state.gpr(4) &- 8
      guard let p = fastHostAddress64(seg: 2, offset: sp, size: 8, write: true) else { return false }
      p.storeBytes(of: v, as: UInt64.self)
      state.setGPR(4, sp)
      return true
    }
    let stack = legacyStackAddressSize
    let m = ALU.mask(stack)
    let sp = (state.gpr(4) &- UInt64(size)) & m
    guard let p = fastHostAddressLegacy(seg: 2, offset: sp, size: size, write: true) else { return false }
    store(p, size: size, v)
    setReg(4, stack, sp)
    return true
  }

  /// POP r outside 64-bit mode: the stack pointer moves at SS's address size, then the register
  /// is written (so POP SP/ESP leaves the popped value).
  @inline(never)
  private func fastPopLegacy(_ e: CacheEntry, _ nextRIP: UInt64) -> UInt64 {
    let size = Int(e.pointee.instruction.operandSize)
    let stack = legacyStackAddressSize
    let m = ALU.mask(stack)
    let sp = state.gpr(4) & m
    guard let p = fastHostAddressLegacy(seg: 2, offset: sp, size: size, write: false) else { return CPU.fastDeclined }
    let v = load(p, size: size)
    setReg(4, stack, (sp &+ UInt64(size)) & m)
    setReg(Int(e.pointee.instruction.operands.0.reg), size, v)
    return nextRIP
  }

  /// RET (no immediate) outside 64-bit mode.
  @inline(never)
  private func fastReturnLegacy(_ e: CacheEntry) -> UInt64 {
    let size = Int(e.pointee.instruction.operandSize)
    let stack = legacyStackAddressSize
    let m = ALU.mask(stack)
    let sp = state.gpr(4) & m
    guard let p = fastHostAddressLegacy(seg: 2, offset: sp, size: size, write: false) else { return CPU.fastDeclined }
    let target = load(p, size: size)
    guard target <= state.segmentLimit(1) else { return CPU.fastDeclined }
    setReg(4, stack, (sp &+ UInt64(size)) & m)
    return target
  }

  /// The stack address size outside 64-bit mode (`stackAddressSize`): SS's B bit, except in the
  /// real mode of the 16-bit-only chips.
  @inline(__always) private var legacyStackAddressSize: Int {
    if model.is16BitOnly && stateRaw.load(fromByteOffset: CPUStateLayout.cr0, as: UInt64.self) & 1 == 0 { return 2 }
    return state.segmentAttributes(2) & SegmentAttributes.defaultBig != 0 ? 4 : 2
  }

  /// A taken near branch's target, or `fastDeclined` for one the general path must raise #GP for:
  /// non-canonical in 64-bit mode; elsewhere, truncated to the operand size, beyond CS's limit.
  @inline(__always) private func fastBranchTarget<M: FastMode>(_ e: CacheEntry, _: M.Type, _ target: UInt64) -> UInt64 {
    if M.long { return isCanonical(target) ? target : CPU.fastDeclined }
    let t = target & ALU.mask(Int(e.pointee.instruction.operandSize))
    return t <= state.segmentLimit(1) ? t : CPU.fastDeclined
  }

}

// MARK: Forms as types

/// An operand shape of a fast form, as a type so handlers specialize on it.
protocol FastOperand { static var kind: OperandKind { get } }
enum GPROperand: FastOperand { static var kind: OperandKind { .gpr } }
enum ImmediateOperand: FastOperand { static var kind: OperandKind { .immediate } }
enum MemoryOperand: FastOperand { static var kind: OperandKind { .memory } }

/// An operation of the ALU group, as a type so `fastALU` specializes on it.
protocol FastALUOperation { static var operation: Operation { get } }
enum ALUAdd: FastALUOperation { static var operation: Operation { .add } }
enum ALUOr: FastALUOperation { static var operation: Operation { .or } }
enum ALUAdc: FastALUOperation { static var operation: Operation { .adc } }
enum ALUSbb: FastALUOperation { static var operation: Operation { .sbb } }
enum ALUAnd: FastALUOperation { static var operation: Operation { .and } }
enum ALUSub: FastALUOperation { static var operation: Operation { .sub } }
enum ALUXor: FastALUOperation { static var operation: Operation { .xor } }
enum ALUCmp: FastALUOperation { static var operation: Operation { .cmp } }
enum ALUTest: FastALUOperation { static var operation: Operation { .test } }

/// The code mode a handler is specialized for: 64-bit mode, or any other (16- and 32-bit code).
protocol FastMode { static var long: Bool { get } }
enum FastLong: FastMode { static var long: Bool { true } }
enum FastLegacy: FastMode { static var long: Bool { false } }

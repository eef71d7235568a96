/// The interpreter's fast path: pre-resolved handlers (`FastForm`) for the common shapes of
/// 64-bit-mode instructions. A handler either completes the instruction (state updated) and
/// returns the next RIP, which the caller commits, or changes nothing and returns
/// `CPU.fastDeclined`, and `execute` then runs the instruction in full, raising whatever fault it
/// meets. Handlers never fault: any memory access
/// that misses the TLB, crosses a page or might need a check they do not make sends the
/// instruction to the general path. Semantics come from the same `ALU` functions `execute` uses.
extension CPU {
  typealias CacheEntry = UnsafeMutablePointer<DecodeCache.Entry>

  /// What a fast handler returns when it leaves the instruction to `execute`: a non-canonical
  /// address, so it can never be a RIP a handler commits.
  static let fastDeclined: UInt64 = 1 << 63

  /// Runs the cached instruction `e` (classified 64-bit code) through its fast handler. Each
  /// handler is a generic function specialized per form (operation and operand shapes are types),
  /// so the compiler emits one small branch-free-of-dispatch function per form.
  @inline(__always)
  func executeFast(_ e: CacheEntry, nextRIP: UInt64) -> UInt64 {
    switch e.pointee.form {
    case .generic: return CPU.fastDeclined
    case .addRR: return fastALU(e, ALUAdd.self, GPROperand.self, GPROperand.self, nextRIP)
    case .orRR: return fastALU(e, ALUOr.self, GPROperand.self, GPROperand.self, nextRIP)
    case .adcRR: return fastALU(e, ALUAdc.self, GPROperand.self, GPROperand.self, nextRIP)
    case .sbbRR: return fastALU(e, ALUSbb.self, GPROperand.self, GPROperand.self, nextRIP)
    case .andRR: return fastALU(e, ALUAnd.self, GPROperand.self, GPROperand.self, nextRIP)
    case .subRR: return fastALU(e, ALUSub.self, GPROperand.self, GPROperand.self, nextRIP)
    case .xorRR: return fastALU(e, ALUXor.self, GPROperand.self, GPROperand.self, nextRIP)
    case .cmpRR: return fastALU(e, ALUCmp.self, GPROperand.self, GPROperand.self, nextRIP)
    case .testRR: return fastALU(e, ALUTest.self, GPROperand.self, GPROperand.self, nextRIP)
    case .addRI: return fastALU(e, ALUAdd.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .orRI: return fastALU(e, ALUOr.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .adcRI: return fastALU(e, ALUAdc.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .sbbRI: return fastALU(e, ALUSbb.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .andRI: return fastALU(e, ALUAnd.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .subRI: return fastALU(e, ALUSub.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .xorRI: return fastALU(e, ALUXor.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .cmpRI: return fastALU(e, ALUCmp.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .testRI: return fastALU(e, ALUTest.self, GPROperand.self, ImmediateOperand.self, nextRIP)
    case .addRM: return fastALU(e, ALUAdd.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .orRM: return fastALU(e, ALUOr.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .adcRM: return fastALU(e, ALUAdc.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .sbbRM: return fastALU(e, ALUSbb.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .andRM: return fastALU(e, ALUAnd.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .subRM: return fastALU(e, ALUSub.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .xorRM: return fastALU(e, ALUXor.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .cmpRM: return fastALU(e, ALUCmp.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .testRM: return fastALU(e, ALUTest.self, GPROperand.self, MemoryOperand.self, nextRIP)
    case .addMR: return fastALU(e, ALUAdd.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .orMR: return fastALU(e, ALUOr.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .adcMR: return fastALU(e, ALUAdc.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .sbbMR: return fastALU(e, ALUSbb.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .andMR: return fastALU(e, ALUAnd.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .subMR: return fastALU(e, ALUSub.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .xorMR: return fastALU(e, ALUXor.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .cmpMR: return fastALU(e, ALUCmp.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .testMR: return fastALU(e, ALUTest.self, MemoryOperand.self, GPROperand.self, nextRIP)
    case .addMI: return fastALU(e, ALUAdd.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .orMI: return fastALU(e, ALUOr.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .adcMI: return fastALU(e, ALUAdc.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .sbbMI: return fastALU(e, ALUSbb.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .andMI: return fastALU(e, ALUAnd.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .subMI: return fastALU(e, ALUSub.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .xorMI: return fastALU(e, ALUXor.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .cmpMI: return fastALU(e, ALUCmp.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .testMI: return fastALU(e, ALUTest.self, MemoryOperand.self, ImmediateOperand.self, nextRIP)
    case .incDecR: return fastIncDec(e, GPROperand.self, nextRIP)
    case .incDecM: return fastIncDec(e, MemoryOperand.self, nextRIP)
    case .movRR: return fastMove(e, GPROperand.self, GPROperand.self, signExtend: false, nextRIP)
    case .movRI: return fastMove(e, GPROperand.self, ImmediateOperand.self, signExtend: false, nextRIP)
    case .movRM: return fastMove(e, GPROperand.self, MemoryOperand.self, signExtend: false, nextRIP)
    case .movMR: return fastMove(e, MemoryOperand.self, GPROperand.self, signExtend: false, nextRIP)
    case .movMI: return fastMove(e, MemoryOperand.self, ImmediateOperand.self, signExtend: false, nextRIP)
    case .movsxRR: return fastMove(e, GPROperand.self, GPROperand.self, signExtend: true, nextRIP)
    case .movsxRM: return fastMove(e, GPROperand.self, MemoryOperand.self, signExtend: true, nextRIP)
    case .lea:
      let o0 = e.pointee.instruction.operands.0
      setReg(Int(o0.reg), Int(o0.size), effectiveAddress(e.pointee.instruction, nextRIP: nextRIP))
      return nextRIP
    case .jcc:
      guard condition(e.pointee.instruction.condition) else { return nextRIP }
      return canonicalOrDeclined(nextRIP &+ e.pointee.instruction.immediate)
    case .jmpRel:
      return canonicalOrDeclined(nextRIP &+ e.pointee.instruction.immediate)
    case .callRel:
      let target = nextRIP &+ e.pointee.instruction.immediate
      guard isCanonical(target), fastPush(nextRIP) else { return CPU.fastDeclined }
      return target
    case .ret:
      let sp = state.gpr(4)
      guard let p = fastHostAddress64(seg: 2, offset: sp, size: 8, write: false) else { return CPU.fastDeclined }
      let target = p.loadUnaligned(as: UInt64.self)
      guard isCanonical(target) else { return CPU.fastDeclined }
      state.setGPR(4, sp &+ 8)
      return target
    case .pushR:
      guard fastPush(state.gpr(Int(e.pointee.instruction.operands.0.reg))) else { return CPU.fastDeclined }
      return nextRIP
    case .pushI:
      let o0 = e.pointee.instruction.operands.0
      guard fastPush(e.pointee.instruction.immediate & ALU.mask(Int(o0.size))) else { return CPU.fastDeclined }
      return nextRIP
    case .popR:
      let sp = state.gpr(4)
      guard let p = fastHostAddress64(seg: 2, offset: sp, size: 8, write: false) else { return CPU.fastDeclined }
      state.setGPR(4, sp &+ 8)
      state.setGPR(Int(e.pointee.instruction.operands.0.reg), p.loadUnaligned(as: UInt64.self))
      return nextRIP
    case .imulR: return fastMultiply(e, GPROperand.self, nextRIP)
    case .imulM: return fastMultiply(e, MemoryOperand.self, nextRIP)
    case .shiftR: return fastShift(e, nextRIP)
    case .cmovR: return fastConditionalMove(e, GPROperand.self, nextRIP)
    case .cmovM: return fastConditionalMove(e, MemoryOperand.self, nextRIP)
    case .setccR:
      let o0 = e.pointee.instruction.operands.0
      setReg(Int(o0.reg), 1, condition(e.pointee.instruction.condition) ? 1 : 0)
      return nextRIP
    case .nop:
      return nextRIP
    }
  }

  // MARK: Handlers

  /// ADD OR ADC SBB AND SUB XOR CMP TEST for one operand shape.
  @inline(never)
  private func fastALU<Op: FastALUOperation, Dest: FastOperand, Source: FastOperand>(
    _ e: CacheEntry, _: Op.Type, _: Dest.Type, _: Source.Type, _ nextRIP: UInt64
  ) -> UInt64 {
    let op = Op.operation
    let writes = op != .cmp && op != .test
    let size = Int(e.pointee.instruction.operandSize)
    let memory = Dest.kind == .memory ? fastMemoryOperand(e, size: size, write: writes, nextRIP) : nil
    if Dest.kind == .memory && memory == nil { return CPU.fastDeclined }
    let a = destinationValue(e, memory)
    guard let b = fastSource(e, e.pointee.instruction.operands.1, Source.kind, nextRIP) else {
      return CPU.fastDeclined
    }
    let (r, f) = ALU.binary(op, a, b, carry: state.rflags & Flags.cf, size)
    if writes { writeDestination(e, memory, r) }
    setArithmeticFlags(f)
    return nextRIP
  }

  @inline(never)
  private func fastIncDec<Dest: FastOperand>(_ e: CacheEntry, _: Dest.Type, _ nextRIP: UInt64) -> UInt64 {
    let size = Int(e.pointee.instruction.operandSize)
    let memory = Dest.kind == .memory ? fastMemoryOperand(e, size: size, write: true, nextRIP) : nil
    if Dest.kind == .memory && memory == nil { return CPU.fastDeclined }
    let a = destinationValue(e, memory)
    let (r, f) =
      e.pointee.instruction.operation == .inc ? ALU.add(a, 1, carry: 0, size) : ALU.sub(a, 1, borrow: 0, size)
    writeDestination(e, memory, r)
    setArithmeticFlags((f & ~Flags.cf) | (state.rflags & Flags.cf))
    return nextRIP
  }

  /// MOV, MOVZX, MOVSX, MOVSXD.
  @inline(never)
  private func fastMove<Dest: FastOperand, Source: FastOperand>(
    _ e: CacheEntry, _: Dest.Type, _: Source.Type, signExtend: Bool, _ nextRIP: UInt64
  ) -> UInt64 {
    let dest = Dest.kind
    let o0 = e.pointee.instruction.operands.0
    let o1 = e.pointee.instruction.operands.1
    guard var v = fastSource(e, o1, Source.kind, nextRIP) else { return CPU.fastDeclined }
    if signExtend { v = UInt64(bitPattern: ALU.signExtend(v, Int(o1.size))) }
    if dest == .gpr {
      setReg(Int(o0.reg), Int(o0.size), v)
    } else {
      let size = Int(o0.size)
      guard let p = fastMemoryOperand(e, size: size, write: true, nextRIP) else { return CPU.fastDeclined }
      store(p, size: size, v)
    }
    return nextRIP
  }

  /// IMUL r, r/m and IMUL r, r/m, imm.
  @inline(never)
  private func fastMultiply<Source: FastOperand>(_ e: CacheEntry, _: Source.Type, _ nextRIP: UInt64) -> UInt64 {
    let size = Int(e.pointee.instruction.operandSize)
    let o0 = e.pointee.instruction.operands.0
    guard let a = fastSource(e, e.pointee.instruction.operands.1, Source.kind, nextRIP) else { return CPU.fastDeclined }
    let b =
      e.pointee.instruction.operandCount == 3
      ? e.pointee.instruction.immediate & ALU.mask(Int(e.pointee.instruction.operands.2.size))
      : reg(Int(o0.reg), Int(o0.size))
    let (r, f) = ALU.imul(a, b, size)
    setReg(Int(o0.reg), Int(o0.size), r)
    setArithmeticFlags(f)
    return nextRIP
  }

  @inline(never)
  private func fastShift(_ e: CacheEntry, _ nextRIP: UInt64) -> UInt64 {
    let size = Int(e.pointee.instruction.operandSize)
    let o0 = e.pointee.instruction.operands.0
    let o1 = e.pointee.instruction.operands.1
    let rawCount = o1.kind == .gpr ? reg(Int(o1.reg), 1) : e.pointee.instruction.immediate & 0xFF
    let count = rawCount & (size == 8 ? 0x3F : 0x1F)
    let a = reg(Int(o0.reg), Int(o0.size))
    if count == 0 {
      setReg(Int(o0.reg), Int(o0.size), a)  // a 32-bit destination is still zero-extended
      return nextRIP
    }
    let (r, f) = ALU.shiftRotate(e.pointee.instruction.operation, a, count: count, size, flags: state.rflags)
    setReg(Int(o0.reg), Int(o0.size), r)
    state.rflags = f
    return nextRIP
  }

  @inline(never)
  private func fastConditionalMove<Source: FastOperand>(_ e: CacheEntry, _: Source.Type, _ nextRIP: UInt64) -> UInt64 {
    let o0 = e.pointee.instruction.operands.0
    guard let v = fastSource(e, e.pointee.instruction.operands.1, Source.kind, nextRIP) else { return CPU.fastDeclined }
    // The source is read (and may fault) whatever the condition; a 32-bit destination is always
    // written, so its upper half clears even when the move does not happen.
    let taken = condition(e.pointee.instruction.condition)
    setReg(Int(o0.reg), Int(o0.size), taken ? v : reg(Int(o0.reg), Int(o0.size)))
    return nextRIP
  }

  // MARK: Helpers

  /// The host address of the instruction's memory operand (`size` bytes, checked for writing when
  /// `write`), or nil when the access misses the fast path.
  @inline(__always)
  private func fastMemoryOperand(_ e: CacheEntry, size: Int, write: Bool, _ nextRIP: UInt64)
    -> UnsafeMutableRawPointer?
  {
    let ea = effectiveAddress(e.pointee.instruction, nextRIP: nextRIP)
    return fastHostAddress64(seg: Int(e.pointee.instruction.segment), offset: ea, size: size, write: write)
  }

  /// The value of a destination operand: the register, or the memory `fastMemoryOperand` found.
  @inline(__always)
  private func destinationValue(_ e: CacheEntry, _ memory: UnsafeMutableRawPointer?) -> UInt64 {
    if let memory { return load(memory, size: Int(e.pointee.instruction.operandSize)) }
    let o0 = e.pointee.instruction.operands.0
    return reg(Int(o0.reg), Int(o0.size))
  }

  /// Writes a result to the destination: the register, or the memory `fastMemoryOperand` found.
  @inline(__always)
  private func writeDestination(_ e: CacheEntry, _ memory: UnsafeMutableRawPointer?, _ value: UInt64) {
    if let memory {
      store(memory, size: Int(e.pointee.instruction.operandSize), value)
    } else {
      let o0 = e.pointee.instruction.operands.0
      setReg(Int(o0.reg), Int(o0.size), value)
    }
  }

  /// A source operand's value (masked to its size), or nil if a memory source misses the fast path.
  @inline(__always)
  private func fastSource(_ e: CacheEntry, _ o: Operand, _ kind: OperandKind, _ nextRIP: UInt64) -> UInt64? {
    switch kind {
    case .gpr: return reg(Int(o.reg), Int(o.size))
    case .immediate: return e.pointee.instruction.immediate & ALU.mask(Int(o.size))
    default:
      let size = Int(o.size)
      guard let p = fastMemoryOperand(e, size: size, write: false, nextRIP) else { return nil }
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

  /// Pushes a quadword if the stack slot hits the write host-page cache; commits RSP.
  @inline(__always) private func fastPush(_ v: UInt64) -> Bool {
    let sp = state.gpr(4) &- 8
    guard let p = fastHostAddress64(seg: 2, offset: sp, size: 8, write: true) else { return false }
    p.storeBytes(of: v, as: UInt64.self)
    state.setGPR(4, sp)
    return true
  }

  /// A taken near branch's target; non-canonical targets take the general path (which raises #GP).
  @inline(__always) private func canonicalOrDeclined(_ target: UInt64) -> UInt64 {
    isCanonical(target) ? target : CPU.fastDeclined
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

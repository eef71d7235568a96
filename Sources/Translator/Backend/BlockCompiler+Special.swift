import X86

/// The instructions translated outside the interpreter's fast forms (`SpecialForm`): indirect
/// branches through the inline table, PUSH m64, CLD/STD, SWAPGS and atomic read-modify-writes.
extension BlockCompiler {
  /// The block's end through the inline indirect-branch table: RIP (in the state page and RDX)
  /// is the target, registers are written back; a hit jumps to the target's cross-page entry,
  /// a miss returns to the dispatcher.
  mutating func jumpThroughIndirectTable(base: HostRegister? = nil) {
    // The block found (or the dispatcher) takes R10 as an RFLAGS image; RDX is kept.
    settleFlags()
    let miss = a.newLabel()
    if let base { a.mov(.rcx, .register(base)) } else { a.load(.rcx, constant: indirectTable) }
    a.mov(.rax, .register(.rdx), size: 4)
    a.shift(.shr, .register(.rax), count: UInt8(IndirectBranchTable.shift))
    a.alu(.xor, .register(.rax), .rdx, size: 4)
    a.alu(.and, .register(.rax), immediate: Int64(IndirectBranchTable.slots - 1), size: 4)
    a.shift(.shl, .register(.rax), count: 4)
    a.alu(.add, .register(.rcx), .rax)
    a.alu(.cmp, .rdx, .memory(HostMemory(.rcx)))
    a.jcc(HostCondition.notEqual, miss)
    a.incDec(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorIndirectHits))), increment: true, size: 8)
    a.jmp(.memory(HostMemory(.rcx, 8)))
    a.bind(miss)
    a.incDec(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorIndirectMisses))), increment: true, size: 8)
    a.jmp(epilogue)
  }

  /// Side-exits to `exit` unless RDX is canonical (clobbers RCX and flags).
  mutating func requireCanonicalRDX(else exit: X64Assembler.Label) {
    a.mov(.rcx, .register(.rdx))
    a.shift(.shl, .register(.rcx), count: 16)
    a.shift(.sar, .register(.rcx), count: 16)
    a.alu(.cmp, .register(.rcx), .rdx)
    a.jcc(HostCondition.notEqual, exit)
  }

  mutating func emitSpecial(_ g: GuestInstruction, k: Int) {
    let ins = g.instruction
    switch g.special {
    case .jumpIndirect, .callIndirect:
      // The target first (a CALL through [RSP] reads the old RSP); a non-canonical one faults at
      // the branch, in the interpreter.
      let side: X64Assembler.Label
      if ins.operands.0.kind == .memory {
        memoryOperand(g, size: 8, write: false, k: k)
        side = sideExit(k)
        a.mov(.rdx, .memory(HostMemory(.rax)))
      } else {
        clobberFlags()
        side = sideExit(k)
        a.mov(.rdx, gpr(ins.operands.0.reg))
      }
      requireCanonicalRDX(else: side)
      if g.special == .callIndirect {
        // RIP holds the target while the return address is pushed (a side exit rewrites it).
        a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rdx)
        push(constant: g.nextRIP, k: k)
        a.mov(.rdx, .memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))))
      }
      writeBackRegisters()
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rdx)
      jumpThroughIndirectTable()

    case .pushMemory:
      memoryOperand(g, size: 8, write: false, k: k)
      a.mov(.r8, .memory(HostMemory(.rax)))
      pushR8(k: k)

    case .setDirection(let set):
      clobberFlags()
      let rflags = HostOperand.memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags)))
      if set {
        a.alu(.or, rflags, immediate: Int64(Flags.df))
      } else {
        a.alu(.and, rflags, immediate: ~Int64(Flags.df))
      }

    case .swapGS:
      // Only CPL 0 may (a block of the supervisor class may also run at CPL 1 or 2).
      clobberFlags()
      a.alu(.cmp, .memory(HostMemory(.rbx, Int32(CPUStateLayout.cpl))), immediate: 0)
      a.jcc(HostCondition.notEqual, sideExit(k))
      let gsBase = HostOperand.memory(
        HostMemory(.rbx, Int32(CPUStateLayout.segments + 5 * CPUStateLayout.segmentStride + 8)))
      let kernelGSBase = HostOperand.memory(HostMemory(.rbx, Int32(CPUStateLayout.kernelGSBase)))
      a.mov(.rax, gsBase)
      a.mov(.rcx, kernelGSBase)
      a.mov(gsBase, .rcx)
      a.mov(kernelGSBase, .rax)

    case .atomicUpdate:
      emitAtomicUpdate(g, k: k)

    case .portIO:
      emitPortIO(g, k: k)

    case .privilegeTransfer(let kind):
      emitPrivilegeTransfer(g, kind: kind, k: k)

    case nil:
      preconditionFailure("a callout is not a special form")
    }
  }

  /// IN or OUT through the port helper (`Helpers.portIO`): the VMM answers the access as a
  /// lightweight exit and the block goes on (IN's value into AL, AX or EAX, which zero-extends);
  /// when it does not (a device that needs the run loop, CPL above IOPL), the instruction
  /// side-exits, nothing done, for the interpreter to run it as a full exit. The helper sees the
  /// budget left, to bring the instruction count up to date; R9, R10 and R11 live across the call.
  mutating func emitPortIO(_ g: GuestInstruction, k: Int) {
    let ins = g.instruction
    let isOut = ins.operation == .out
    let port = isOut ? ins.operands.0 : ins.operands.1
    let size = Int(isOut ? ins.operands.1.size : ins.operands.0.size)
    clobberFlags()
    let side = sideExit(k)
    let packed = UInt64(size) << 16 | (isOut ? 1 << 24 : 0) | UInt64(block.instructions.count - k) << 32
    if port.kind == .immediate {
      a.load(.rsi, constant: packed | (ins.immediate & 0xFF))
    } else {
      a.movzx(.rsi, gpr(2), sourceSize: 2)
      a.load(.rax, constant: packed)
      a.alu(.or, .register(.rsi), .rax)
    }
    if isOut { a.mov(.rdx, gpr(0)) }
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorBudgetLeft))), .r9)
    callHelper(callout.portIO, saving: [.r9, .r10, .r11])
    a.test(.register(.rax), .rax)
    a.jcc(HostCondition.sign, side)
    if !isOut { storeGPR(0, .rax, size: size) }
  }

  /// SYSCALL, SYSRET or IRETQ (the block's last instruction) through its helper
  /// (`Helpers.privilegeTransfer`), which works on the state page: registers and flags go there
  /// first, the budget left too (R9 does not survive the call). Retired, the block goes on through the indirect-branch table of
  /// the new privilege level (or leaves, when the code mode changed); faulted, nothing changed,
  /// it leaves with RIP at the instruction for the interpreter to raise the fault.
  mutating func emitPrivilegeTransfer(_ g: GuestInstruction, kind: PrivilegeTransfer, k: Int) {
    clobberFlags()
    settleFlags()
    writeBackRegisters()
    storeFlagsRegister()
    let budgetLeft = HostOperand.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorBudgetLeft)))
    a.mov(budgetLeft, .r9)
    a.load(.rsi, constant: g.nextRIP)
    a.load(.rdx, constant: kind.rawValue)
    callHelper(callout.privilegeTransfer, saving: [])
    a.mov(.r9, budgetLeft)
    let faulted = a.newLabel()
    let leave = a.newLabel()
    a.test(.register(.rax), .rax)
    a.jcc(HostCondition.equal, faulted)
    a.alu(.cmp, .register(.rax), immediate: 1)
    a.jcc(HostCondition.equal, leave)
    loadFlagsRegister()
    a.mov(.rdx, .memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))))
    jumpThroughIndirectTable(base: .rax)
    a.bind(faulted)
    // A side exit whose registers and flags are in the state page already (R11, a cache
    // register, did not survive the call).
    a.load(.rax, constant: g.rip)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorExit))), immediate: 1)
    refundBudget(block.instructions.count - k)
    a.jmp(epilogueFlagsStored)
    a.bind(leave)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorExit))), immediate: 2)
    a.jmp(epilogueFlagsStored)
  }

  /// A read-modify-write of memory as one host LOCK-prefixed instruction on the guest page (the
  /// interpreter's atomic updates work on the same host memory, so vCPUs on other threads see
  /// either the whole update or none of it). The checks are a store's; a side exit leaves it to
  /// the interpreter.
  mutating func emitAtomicUpdate(_ g: GuestInstruction, k: Int) {
    let ins = g.instruction
    let size = Int(ins.operandSize)
    let o1 = ins.operands.1
    memoryOperand(g, size: size, write: true, k: k)
    a.mov(.rdi, .register(.rax))
    let memory = HostOperand.memory(HostMemory(.rdi))
    switch ins.operation {
    case .inc, .dec:
      loadCarry()  // CF is kept
      a.lock()
      a.incDec(memory, increment: ins.operation == .inc, size: size)
      flagsWritten(by: k)
    case .xadd, .xchg:
      // The register takes the old memory value: in place in a cache register when the result
      // fills it (a 32-bit write zero-extends), else through RDX and back at its size.
      let reg = o1.reg
      let direct = size >= 4 ? cached[Int(reg)] : nil
      let value = direct ?? .rdx
      if direct == nil { a.mov(.rdx, gpr(reg), size: size == 8 ? 8 : size) }
      if ins.operation == .xadd {
        a.lock()
        a.xadd(memory, value, size: size)
        if direct == nil { storeGPR(reg, .rdx, size: size) }
        flagsWritten(by: k)
      } else {
        a.xchg(memory, value, size: size)  // implicitly locked
        if direct == nil { storeGPR(reg, .rdx, size: size) }
      }
    case .cmpxchg:
      // The accumulator is host RAX: the guest's whole RAX goes in and comes back (a failed 32-bit
      // compare zero-extends it, a successful one leaves it alone, as the guest's does).
      let source = gprRegister(o1.reg, scratch: .rdx)
      a.mov(.rax, gpr(0))
      a.lock()
      a.cmpxchg(memory, source, size: size)
      a.mov(gpr(0), .rax)
      flagsWritten(by: k)
    default:  // LOCK ADD OR ADC SBB AND SUB XOR
      let op = Self.hostALU(ins.operation)!
      if ins.operation == .adc || ins.operation == .sbb { loadCarry() }
      if o1.kind == .immediate {
        a.lock()
        a.alu(op, memory, immediate: Self.signed(ins.immediate, size: size), size: size)
      } else {
        let source = gprRegister(o1.reg, scratch: .rdx)
        a.lock()
        a.alu(op, memory, source, size: size)
      }
      flagsWritten(by: k)
    }
  }
}

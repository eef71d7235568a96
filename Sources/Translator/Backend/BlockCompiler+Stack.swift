import X86

/// PUSH and POP: single ones, and runs of them checked as one stack access.
extension BlockCompiler {
  /// Whether `g` is a PUSH (`push` true) or POP of a register other than RSP, or a PUSH of an
  /// immediate: what a stack run is made of.
  static func isStackRunMember(_ g: GuestInstruction, push: Bool) -> Bool {
    switch g.form {
    case .pushR: return push && g.instruction.operands.0.reg != 4
    case .pushI: return push
    case .popR: return !push && g.instruction.operands.0.reg != 4
    default: return false
    }
  }

  /// The consecutive PUSHes (or POPs) starting at instruction `k` (empty if `k` is neither).
  func stackRun(from k: Int) -> Range<Int> {
    let first = block.instructions[k]
    let push = first.form == .pushR || first.form == .pushI
    guard Self.isStackRunMember(first, push: push) else { return k..<k }
    var end = k + 1
    while end < block.instructions.count && Self.isStackRunMember(block.instructions[end], push: push) { end += 1 }
    return k..<end
  }

  /// A run of PUSHes or POPs as one access: the whole stack range is checked at once (in one page,
  /// RAM, and for PUSH writable without code), then each value moves with a plain load or store.
  /// The check failing side-exits at the run's first instruction, before any of it ran; with it
  /// passed, none of them can fault, and nothing can observe the steps between them.
  mutating func emitStackRun(_ run: Range<Int>) {
    let instructions = block.instructions[run]
    let push = instructions.first!.form != .popR
    let slotSize = stackSlot
    let bytes = slotSize * run.count
    clobberFlags()
    stackAddress(minus: push ? bytes : 0)
    hostPointer(size: bytes, write: push, exit: sideExit(run.lowerBound))
    for (i, g) in instructions.enumerated() {
      let ins = g.instruction
      // PUSH i writes the slot `count - 1 - i` above the final RSP; POP i reads slot i above the
      // first.
      let slot = HostMemory(.rax, Int32(slotSize * (push ? run.count - 1 - i : i)))
      switch g.form {
      case .pushR:
        if let host = cached[Int(ins.operands.0.reg)] {
          a.mov(.memory(slot), host, size: slotSize)
        } else {
          a.mov(.r8, gpr(ins.operands.0.reg))
          a.mov(.memory(slot), .r8, size: slotSize)
        }
      case .pushI:
        let size = ins.operands.0.size
        let constant = ins.immediate & (size == 8 ? ~0 : (1 << UInt64(8 * size)) - 1)
        // A 4-byte slot takes the low half as the immediate of a 4-byte store.
        let value = slotSize == 8 ? Int64(bitPattern: constant) : Int64(Int32(truncatingIfNeeded: constant))
        if Self.fitsInt32(value) {
          a.mov(.memory(slot), immediate: value, size: slotSize)
        } else {
          a.load(.r8, constant: constant)
          a.mov(.memory(slot), .r8)
        }
      default:  // POP (a 4-byte load zero-extends: the 32-bit register write)
        if let host = cached[Int(ins.operands.0.reg)] {
          a.mov(host, .memory(slot), size: slotSize)
        } else {
          a.mov(.r8, .memory(slot), size: slotSize)
          a.mov(gpr(ins.operands.0.reg), .r8)
        }
      }
    }
    adjustStackPointer(by: push ? -bytes : bytes)
  }

  /// RSI = the stack pointer less `bytes`: RSP in 64-bit code, ESP wrapping at 4 GiB (zero-extended)
  /// in 32-bit code, whose stack segment is flat. Clobbers the host flags.
  mutating func stackAddress(minus bytes: Int = 0) {
    if mode == .long64 {
      a.mov(.rsi, gpr(4))
      if bytes > 0 { a.alu(.sub, .register(.rsi), immediate: Int64(bytes)) }
    } else {
      a.mov(.rsi, gpr(4), size: 4)
      if bytes > 0 { a.alu(.sub, .register(.rsi), immediate: Int64(bytes), size: 4) }
    }
  }

  /// Moves the stack pointer by `delta` bytes: RSP, or ESP wrapping at 4 GiB with the upper half
  /// cleared, as the interpreter's 32-bit stack-pointer write does. Clobbers RCX and the host flags.
  mutating func adjustStackPointer(by delta: Int) {
    let op: HostALU = delta < 0 ? .sub : .add
    let amount = Int64(delta.magnitude)
    if mode == .long64 {
      a.alu(op, gpr(4), immediate: amount)
    } else if let host = cached[4] {
      a.alu(op, .register(host), immediate: amount, size: 4)
    } else {
      a.mov(.rcx, gpr(4), size: 4)
      a.alu(op, .register(.rcx), immediate: amount, size: 4)
      a.mov(gpr(4), .rcx)
    }
  }

  /// PUSH of a constant (`CALL`'s return address, `PUSH imm`).
  mutating func push(constant: UInt64, k: Int) {
    clobberFlags()
    a.load(.r8, constant: constant)
    pushR8(k: k)
  }

  /// Pushes R8 (a stack slot: 8 bytes, or 4 in 32-bit code) or side-exits. (`hostPointer`
  /// clobbers RAX, RCX, RDX, RDI and keeps RSI: values that must survive it live in R8.)
  mutating func pushR8(k: Int) {
    stackAddress(minus: stackSlot)
    hostPointer(size: stackSlot, write: true, exit: sideExit(k))
    a.mov(.memory(HostMemory(.rax)), .r8, size: stackSlot)
    adjustStackPointer(by: -stackSlot)
  }
}

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
    let bytes = 8 * run.count
    clobberFlags()
    a.mov(.rsi, gpr(4))
    if push { a.alu(.sub, .register(.rsi), immediate: Int64(bytes)) }
    hostPointer(size: bytes, write: push, exit: sideExit(run.lowerBound))
    for (i, g) in instructions.enumerated() {
      let ins = g.instruction
      // PUSH i writes the slot `count - 1 - i` above the final RSP; POP i reads slot i above the
      // first.
      let slot = HostMemory(.rax, Int32(8 * (push ? run.count - 1 - i : i)))
      switch g.form {
      case .pushR:
        if let host = cached[Int(ins.operands.0.reg)] {
          a.mov(.memory(slot), host)
        } else {
          a.mov(.r8, gpr(ins.operands.0.reg))
          a.mov(.memory(slot), .r8)
        }
      case .pushI:
        let size = ins.operands.0.size
        let constant = ins.immediate & (size == 8 ? ~0 : (1 << UInt64(8 * size)) - 1)
        let value = Int64(bitPattern: constant)
        if Self.fitsInt32(value) {
          a.mov(.memory(slot), immediate: value, size: 8)
        } else {
          a.load(.r8, constant: constant)
          a.mov(.memory(slot), .r8)
        }
      default:  // POP
        if let host = cached[Int(ins.operands.0.reg)] {
          a.mov(host, .memory(slot))
        } else {
          a.mov(.r8, .memory(slot))
          a.mov(gpr(ins.operands.0.reg), .r8)
        }
      }
    }
    a.alu(push ? .sub : .add, gpr(4), immediate: Int64(bytes))
  }

  /// PUSH of a constant (`CALL`'s return address, `PUSH imm`).
  mutating func push(constant: UInt64, k: Int) {
    clobberFlags()
    a.load(.r8, constant: constant)
    pushR8(k: k)
  }

  /// Pushes R8 (8 bytes) or side-exits. (`hostPointer` clobbers RAX, RCX, RDX, RSI, RDI: values
  /// that must survive it live in R8.)
  mutating func pushR8(k: Int) {
    a.mov(.rsi, gpr(4))
    a.alu(.sub, .register(.rsi), immediate: 8)
    hostPointer(size: 8, write: true, exit: sideExit(k))
    a.mov(.memory(HostMemory(.rax)), .r8)
    a.alu(.sub, gpr(4), immediate: 8)
  }
}

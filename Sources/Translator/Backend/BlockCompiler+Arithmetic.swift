import X86

/// The integer forms: ALU operations, moves, IMUL, shifts and rotates.
extension BlockCompiler {
  /// R10 = the model's flags after an IMUL of `size` bytes whose CF (= OF) is in R10's low byte
  /// and whose result is in the scratch word (clobbers R8, RAX and the host's flags).
  mutating func emitMultiplyFlagsFix(size: Int) {
    // ADD of 0 to the result: SF ZF PF from it, AF (and CF OF) clear.
    a.mov(.r8, .memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorScratch))))
    a.alu(.add, .register(.r8), immediate: 0, size: size)
    a.pushfq()
    a.pop(.rax)
    a.alu(.and, .register(.rax), immediate: Int64(Flags.sf | Flags.zf | Flags.pf), size: 4)
    // CF in bit 0 -> CF | OF.
    a.alu(.and, .register(.r10), immediate: 1, size: 4)
    a.imul(.r10, .register(.r10), immediate: Int64(Flags.cf | Flags.of), size: 4)
    a.alu(.or, .register(.r10), .rax)
  }

  static func hostALU(_ op: Operation) -> HostALU? {
    switch op {
    case .add: return .add
    case .or: return .or
    case .adc: return .adc
    case .sbb: return .sbb
    case .and: return .and
    case .sub: return .sub
    case .xor: return .xor
    case .cmp: return .cmp
    default: return nil  // TEST
    }
  }

  mutating func emitALU(_ g: GuestInstruction, k: Int) {
    let ins = g.instruction
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    let size = Int(ins.operandSize)
    let op = Self.hostALU(ins.operation)
    let writes = ins.operation != .cmp && ins.operation != .test
    let readsCarry = ins.operation == .adc || ins.operation == .sbb
    // Destination: a cache register (a 32-bit operation on it zero-extends, as the guest's does),
    // a guest register slot, or memory through RDI.
    var destination: HostOperand = gpr(o0.reg)
    if o0.kind == .memory {
      memoryOperand(g, size: size, write: writes, k: k)
      a.mov(.rdi, .register(.rax))
      destination = .memory(HostMemory(.rdi))
    }
    // Source: an immediate, a cache register, or RDX.
    var immediate: Int64?
    var source = HostRegister.rdx
    switch o1.kind {
    case .immediate: immediate = Self.signed(ins.immediate, size: size)
    case .memory:
      memoryOperand(g, size: size, write: false, k: k)
      a.mov(.rdx, .memory(HostMemory(.rax)), size: size == 8 ? 8 : size)
    default:
      if let host = cached[Int(o1.reg)] { source = host } else { a.mov(.rdx, gpr(o1.reg), size: size) }
    }
    // A 32-bit destination in the state page is computed in ECX and written back zero-extended.
    let widen = o0.kind == .gpr && size == 4 && cached[Int(o0.reg)] == nil
    if widen {
      a.mov(.rcx, gpr(o0.reg), size: 4)
      destination = .register(.rcx)
    }
    if readsCarry { loadCarry() }
    if let op {
      if let immediate {
        a.alu(op, destination, immediate: immediate, size: size)
      } else {
        a.alu(op, destination, source, size: size)
      }
    } else if let immediate {
      a.test(destination, immediate: immediate, size: size)
    } else {
      a.test(destination, source, size: size)
    }
    if widen && writes { a.mov(gpr(o0.reg), .rcx, size: 8) }
    flagsWritten(by: k)
  }

  mutating func emitMove(_ g: GuestInstruction, k: Int) {
    let ins = g.instruction
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    let destinationSize = Int(o0.size)
    let sourceSize = Int(o1.size)
    let signExtend = g.form == .movsxRR || g.form == .movsxRM
    if o1.kind == .immediate {
      let value = ins.immediate & (sourceSize == 8 ? ~0 : (1 << UInt64(8 * sourceSize)) - 1)
      if o0.kind == .gpr {
        if let host = cached[Int(o0.reg)], destinationSize >= 4 {
          a.load(host, constant: value)
        } else if destinationSize >= 4 {
          a.load(.r8, constant: value)
          a.mov(gpr(o0.reg), .r8, size: 8)
        } else {
          a.mov(gpr(o0.reg), immediate: Self.signed(value, size: destinationSize), size: destinationSize)
        }
        return
      }
      memoryOperand(g, size: destinationSize, write: true, k: k)
      if destinationSize == 8 && !Self.fitsInt32(Int64(bitPattern: value)) {
        a.load(.r8, constant: value)
        a.mov(.memory(HostMemory(.rax)), .r8, size: 8)
      } else {
        a.mov(.memory(HostMemory(.rax)), immediate: Self.signed(value, size: destinationSize), size: destinationSize)
      }
      return
    }
    var source: HostOperand
    if o1.kind == .memory {
      memoryOperand(g, size: sourceSize, write: false, k: k)
      source = .memory(HostMemory(.rax))
    } else {
      source = gpr(o1.reg)
    }
    // Straight into a cache register when the result fills it (4 or 8 bytes: zero-extended).
    if o0.kind == .gpr, destinationSize >= 4, let host = cached[Int(o0.reg)] {
      loadExtended(host, source, sourceSize: sourceSize, destinationSize: destinationSize, signExtend)
      return
    }
    // The source into R8, extended to the destination's size.
    loadExtended(.r8, source, sourceSize: sourceSize, destinationSize: destinationSize, signExtend)
    if o0.kind == .memory {
      memoryOperand(g, size: destinationSize, write: true, k: k)
      a.mov(.memory(HostMemory(.rax)), .r8, size: destinationSize)
    } else {
      storeGPR(o0.reg, .r8, size: destinationSize, zeroExtended: true)
    }
  }

  /// `dst` = the `sourceSize` value at `src` extended to `destinationSize` (4 or 8: the whole host
  /// register, a 4-byte result zero-extended; 1 or 2: a plain load of that size, so the register's
  /// other bytes are kept when it is stored back at that size).
  mutating func loadExtended(
    _ dst: HostRegister, _ src: HostOperand, sourceSize: Int, destinationSize: Int, _ signExtend: Bool
  ) {
    if sourceSize == destinationSize {
      a.mov(dst, src, size: sourceSize)
    } else if signExtend && sourceSize == 4 && destinationSize == 4 {
      a.mov(dst, src, size: 4)
    } else if signExtend {
      a.movsx(dst, src, sourceSize: sourceSize, size: destinationSize == 8 ? 8 : 4)
    } else if sourceSize == 4 {
      a.mov(dst, src, size: 4)
    } else {
      a.movzx(dst, src, sourceSize: sourceSize, size: 4)
    }
  }

  mutating func emitShift(_ g: GuestInstruction, k: Int) {
    let ins = g.instruction
    let o0 = ins.operands.0
    let size = Int(ins.operandSize)
    let op: HostShift
    switch ins.operation {
    case .rol: op = .rol
    case .ror: op = .ror
    case .rcl: op = .rcl
    case .rcr: op = .rcr
    case .shl, .sal: op = .shl
    case .shr: op = .shr
    default: op = .sar
    }
    let byCL = ins.operands.1.kind != .immediate
    if byCL { a.mov(.rcx, gpr(1), size: 1) }
    if byCL && Self.shiftCountMayExceedWidth(ins) {
      // A count above the width: the interpreter's (see `translates`).
      clobberFlags()
      a.mov(.r8, .register(.rcx), size: 4)
      a.alu(.and, .register(.r8), immediate: 31, size: 4)
      a.alu(.cmp, .register(.r8), immediate: Int64(8 * size), size: 4)
      a.jcc(HostCondition.above, sideExit(k))
    }
    let rotate = [.rol, .ror, .rcl, .rcr].contains(ins.operation)
    let undefinedOnHost = rotate ? Flags.of : Flags.af | Flags.of
    let modelFlagsNeeded = liveFlagsAfter[k] & undefinedOnHost != 0
    if !modelFlagsNeeded && !byCL && size >= 4, let host = cached[Int(o0.reg)] {
      // In place on the cache register (a 32-bit shift zero-extends, as the model's write does;
      // by CL the RDX path below, which zero-extends even for a count of 0).
      if Self.needsGuestFlagsInHost(g) { loadFlags() } else { clobberFlags() }
      a.shift(op, .register(host), count: UInt8(truncatingIfNeeded: ins.immediate), size: size)
      flagsWritten(by: k)
      return
    }
    a.mov(.rdx, gpr(o0.reg), size: size)
    if Self.needsGuestFlagsInHost(g) { loadFlags() } else { clobberFlags() }
    if byCL {
      a.shiftByCL(op, .register(.rdx), size: size)
    } else {
      a.shift(op, .register(.rdx), count: UInt8(truncatingIfNeeded: ins.immediate), size: size)
    }
    // MOV keeps the flags: write the result back after the shift.
    if size == 4 { a.mov(gpr(o0.reg), .rdx, size: 8) } else { a.mov(gpr(o0.reg), .rdx, size: size) }
    // The host's flags are the model's but for OF after a rotate, and AF and OF after a shift,
    // which the SDM leaves undefined for some counts: worked out only when one of them is live.
    if modelFlagsNeeded {
      a.pushfq()
      a.pop(.r10)
      flagsInHost = false
      flagsPending = false
      r10Format = .image
      modelShiftFlags(ins.operation, size: size, byCL: byCL, count: ins.immediate)
    } else {
      flagsWritten(by: k)
    }
  }

  // MARK: Constant folding

  /// The guest registers `g` may write (a partial write makes a value unknown too).
  mutating func forgetConstants(writtenBy g: GuestInstruction) {
    let written = Self.writtenRegisters(g)
    for r in 0..<16 where written & (1 << UInt32(r)) != 0 { knownValues[r] = nil }
  }

  /// What `g` (just emitted) makes known: MOV of an immediate into a whole register, and XOR or
  /// SUB of a register from itself (0).
  mutating func learnConstants(from g: GuestInstruction) {
    let ins = g.instruction
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    guard o0.kind == .gpr, ins.operandSize >= 4 else { return }
    let mask: UInt64 = ins.operandSize == 8 ? ~0 : 0xFFFF_FFFF
    switch g.form {
    case .movRI:
      let sourceSize = Int(o1.size)
      knownValues[Int(o0.reg)] = ins.immediate & (sourceSize == 8 ? ~0 : (1 << UInt64(8 * sourceSize)) - 1) & mask
    case .xorRR, .subRR:
      if o1.reg == o0.reg { knownValues[Int(o0.reg)] = 0 }
    default: break
    }
  }

  /// Emits `g` as a constant when its result is known at translation time and nothing reads the
  /// flags it would set: an ADD OR AND SUB XOR of a known register with an immediate or another
  /// known register, or a LEA of known registers. Returns false (nothing emitted) otherwise.
  mutating func foldConstant(_ g: GuestInstruction, k: Int) -> Bool {
    let ins = g.instruction
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    let size = Int(ins.operandSize)
    guard o0.kind == .gpr, size >= 4 else { return false }
    let mask: UInt64 = size == 8 ? ~0 : 0xFFFF_FFFF
    let result: UInt64
    switch g.form {
    case .addRI, .orRI, .andRI, .subRI, .xorRI, .addRR, .orRR, .andRR, .subRR, .xorRR:
      guard !flagsLiveAfter(k), let a = knownValues[Int(o0.reg)] else { return false }
      let b: UInt64
      if o1.kind == .immediate {
        b = UInt64(bitPattern: Self.signed(ins.immediate, size: size))
      } else {
        guard let v = knownValues[Int(o1.reg)] else { return false }
        b = v
      }
      switch ins.operation {
      case .add: result = (a &+ b) & mask
      case .or: result = (a | b) & mask
      case .and: result = (a & b) & mask
      case .sub: result = (a &- b) & mask
      default: result = (a ^ b) & mask
      }
      // The flags it would have set are dead (overwritten before anything reads them), and so
      // are the ones before it.
      flagsInHost = false
      flagsPending = false
      r10Format = .image
    case .lea:
      guard ins.base != DecodedInstruction.ripBase else { return false }
      var ea = UInt64(bitPattern: ins.displacement)
      if ins.base != DecodedInstruction.noRegister {
        guard let v = knownValues[Int(ins.base)] else { return false }
        ea &+= v
      }
      if ins.index != DecodedInstruction.noRegister {
        guard let v = knownValues[Int(ins.index)] else { return false }
        ea &+= v &* UInt64(ins.scale)
      }
      if ins.addressSize == 4 { ea &= 0xFFFF_FFFF }
      result = ea & mask
    default:
      return false
    }
    if let host = cached[Int(o0.reg)] {
      a.load(host, constant: result)
    } else {
      a.load(.r8, constant: result)
      a.mov(gpr(o0.reg), .r8)
    }
    knownValues[Int(o0.reg)] = result
    foldedInstructions += 1
    return true
  }
}

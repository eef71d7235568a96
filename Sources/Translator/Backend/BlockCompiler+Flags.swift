import X86

/// The guest's arithmetic flags in generated code: liveness, where they are (host RFLAGS, R10,
/// the state page), and the model's values where the SDM leaves them undefined.
extension BlockCompiler {
  /// What an instruction does with the arithmetic flags.
  enum FlagUse { case none, readsOrKeeps, writesAll }

  static func flagUse(_ g: GuestInstruction) -> FlagUse {
    let ins = g.instruction
    switch g.form {
    case .generic: return .readsOrKeeps  // a callout: the interpreter reads RFLAGS from the state page
    case .adcRR, .adcRI, .adcRM, .adcMR, .adcMI, .sbbRR, .sbbRI, .sbbRM, .sbbMR, .sbbMI: return .readsOrKeeps
    case .incDecR, .incDecM, .jcc, .cmovR, .cmovM, .setccR: return .readsOrKeeps
    case .shiftR:
      // A count of 0 (after masking) leaves every flag; rotates write only CF and OF (SF ZF AF PF
      // keep the guest's values, so the host's flags must be the guest's before a host rotate);
      // RCL/RCR read CF.
      switch ins.operation {
      case .rol, .ror, .rcl, .rcr: return .readsOrKeeps
      default: break
      }
      if ins.operands.1.kind != .immediate { return .readsOrKeeps }
      let mask: UInt64 = ins.operandSize == 8 ? 63 : 31
      return ins.immediate & mask == 0 ? .readsOrKeeps : .writesAll
    case .imulR, .imulM: return .writesAll
    default:
      switch g.instruction.operation {
      case .add, .or, .and, .sub, .xor, .cmp, .test: return .writesAll
      default: return .none
      }
    }
  }

  /// Whether `g` may side-exit (so the flags before it must be in the state page).
  static func maySideExit(_ g: GuestInstruction) -> Bool {
    if g.special != nil { return true }
    switch g.form {
    case .pushR, .pushI, .popR, .callRel, .ret: return true
    case .shiftR where g.instruction.operands.1.kind != .immediate && shiftCountMayExceedWidth(g.instruction):
      return true
    default: return g.instruction.hasMemoryOperand && g.form != .lea && g.form != .nop
    }
  }

  /// The arithmetic flags (as RFLAGS bits) `g` reads and the ones it always writes, for
  /// liveness: a flag an instruction may keep counts as not written.
  static func flagEffect(_ g: GuestInstruction) -> (reads: UInt64, writes: UInt64) {
    let all = UInt64(arithmeticFlags)
    let ins = g.instruction
    switch g.form {
    case .generic: return (all, 0)  // a callout or special form: all of them, conservatively
    case .adcRR, .adcRI, .adcRM, .adcMR, .adcMI, .sbbRR, .sbbRI, .sbbRM, .sbbMR, .sbbMI: return (Flags.cf, all)
    case .incDecR, .incDecM: return (0, all & ~Flags.cf)
    case .jcc, .cmovR, .cmovM, .setccR: return (conditionFlags(ins.condition), 0)
    case .shiftR:
      let rotate = [.rol, .ror, .rcl, .rcr].contains(ins.operation)
      let reads = ins.operation == .rcl || ins.operation == .rcr ? Flags.cf : 0
      // By CL the count may be 0 after masking, which writes nothing.
      guard ins.operands.1.kind == .immediate, ins.immediate & (ins.operandSize == 8 ? 63 : 31) != 0 else {
        return (reads, 0)
      }
      return (reads, rotate ? Flags.cf | Flags.of : all)
    case .imulR, .imulM: return (0, all)
    default:
      switch ins.operation {
      case .add, .or, .and, .sub, .xor, .cmp, .test: return (0, all)
      default: return (0, 0)
      }
    }
  }

  /// The flags condition `cc` (the Jcc/SETcc/CMOVcc encoding) tests.
  static func conditionFlags(_ cc: UInt8) -> UInt64 {
    switch cc >> 1 {
    case 0: return Flags.of
    case 1: return Flags.cf
    case 2: return Flags.zf
    case 3: return Flags.cf | Flags.zf
    case 4: return Flags.sf
    case 5: return Flags.pf
    case 6: return Flags.sf | Flags.of
    default: return Flags.zf | Flags.sf | Flags.of
    }
  }

  /// Which arithmetic flags are live after each instruction: read by a later instruction, a
  /// possible side exit or callout (all of them), or the block's end (all of them) before
  /// something writes them.
  mutating func computeFlagLiveness() {
    let all = UInt64(Self.arithmeticFlags)
    var live = all  // the block's end
    liveFlagsAfter = Array(repeating: all, count: block.instructions.count)
    for k in block.instructions.indices.reversed() {
      let g = block.instructions[k]
      liveFlagsAfter[k] = live
      let (reads, writes) = Self.flagEffect(g)
      live = (live & ~writes) | reads
      if Self.maySideExit(g) { live = all }
    }
    liveFlagsAtStart = live
  }

  /// Whether any arithmetic flag is live after instruction `k`.
  func flagsLiveAfter(_ k: Int) -> Bool { liveFlagsAfter[k] != 0 }

  /// R10 = the state page's arithmetic flags.
  mutating func loadFlagsRegister() {
    a.mov(.r10, .memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags))))
    a.alu(.and, .register(.r10), immediate: Self.arithmeticFlags, size: 4)
  }

  /// The state page's RFLAGS takes R10's arithmetic flags (clobbers host flags, R8, RAX).
  mutating func storeFlagsRegister() {
    a.mov(.r8, .register(.r10))
    a.alu(.and, .register(.r8), immediate: Self.arithmeticFlags, size: 4)
    a.mov(.rax, .memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags))))
    a.alu(.and, .register(.rax), immediate: ~Self.arithmeticFlags, size: 8)
    a.alu(.or, .register(.rax), .r8, size: 8)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags))), .rax)
  }

  /// Before host code that clobbers the host's flags: live guest flags there move to R10.
  mutating func clobberFlags() {
    if flagsPending {
      a.pushfq()
      a.pop(.r10)
      flagsPending = false
    }
    flagsInHost = false
  }

  /// Makes the host's arithmetic flags equal the guest's (R10's image: the host's own flags or
  /// arithmetic flags alone, either safe to load).
  mutating func loadFlags() {
    if flagsInHost { return }
    a.push(.r10)
    a.popfq()
    flagsInHost = true
  }

  /// After a host instruction that set the guest's flags (instruction `k`).
  mutating func flagsWritten(by k: Int) {
    flagsInHost = true
    flagsPending = flagsLiveAfter(k)
    multiplyFlagsOwed = nil
  }

  /// Turns R10's flags of an IMUL into the model's (clobbers R8, RAX and the host's flags).
  mutating func settleMultiplyFlags() {
    guard let size = multiplyFlagsOwed else { return }
    emitMultiplyFlagsFix(size: size)
    multiplyFlagsOwed = nil
  }

  /// Makes R10 (the host's flags after a shift or rotate of RDX, by CL or by `count`) hold the
  /// flags the model defines where the SDM leaves them undefined (`ALU.shiftRotate`): AF clear
  /// after a shift; OF by the one-bit rule for every count (SHL, ROL, RCL: MSB of the result XOR
  /// CF; ROR, RCR: the two top bits of the result differ; SHR: the operand's MSB for a count of 1,
  /// else 0; SAR: 0). A masked count of 0 leaves every flag as it was. Clobbers R8, RSI, flags.
  mutating func modelShiftFlags(_ operation: Operation, size: Int, byCL: Bool, count: UInt64) {
    let bits = UInt8(8 * size)
    let done = a.newLabel()
    let maskedCount = count & (size == 8 ? 63 : 31)
    if byCL {
      a.mov(.r8, .register(.rcx), size: 4)
      a.alu(.and, .register(.r8), immediate: size == 8 ? 63 : 31, size: 4)
      a.jcc(HostCondition.equal, done)
    } else if maskedCount == 0 {
      return
    }
    let af = Int64(Flags.af)
    let of = Int64(Flags.of)
    /// OF = bit 0 of R8 (the rest of R8 anything).
    func setOverflowFromR8(_ c: inout BlockCompiler) {
      c.a.alu(.and, .register(.r8), immediate: 1, size: 4)
      c.a.shift(.shl, .register(.r8), count: 11, size: 4)
      c.a.alu(.or, .register(.r10), .r8)
    }
    switch operation {
    case .shl, .sal:
      a.alu(.and, .register(.r10), immediate: ~(af | of))
      a.mov(.r8, .register(.r10))
      a.shift(.shr, .register(.r8), count: 7)  // SF, the result's MSB
      a.alu(.xor, .register(.r8), .r10)  // ^ CF
      setOverflowFromR8(&self)
    case .shr:
      a.alu(.and, .register(.r10), immediate: ~af)
      if byCL {
        a.alu(.cmp, .register(.r8), immediate: 1, size: 4)
        a.jcc(HostCondition.equal, done)
        a.alu(.and, .register(.r10), immediate: ~of)
      } else if maskedCount > 1 {
        a.alu(.and, .register(.r10), immediate: ~of)
      }
    case .sar:
      a.alu(.and, .register(.r10), immediate: ~(af | of))
    case .rol, .rcl:
      a.alu(.and, .register(.r10), immediate: ~of)
      a.mov(.r8, .register(.rdx))
      a.shift(.shr, .register(.r8), count: bits - 1)
      a.alu(.xor, .register(.r8), .r10)  // ^ CF
      setOverflowFromR8(&self)
    default:  // ROR, RCR
      a.alu(.and, .register(.r10), immediate: ~of)
      a.mov(.r8, .register(.rdx))
      a.shift(.shr, .register(.r8), count: bits - 2)
      a.mov(.rsi, .register(.r8))
      a.shift(.shr, .register(.rsi), count: 1)
      a.alu(.xor, .register(.r8), .rsi)
      setOverflowFromR8(&self)
    }
    a.bind(done)
  }
}

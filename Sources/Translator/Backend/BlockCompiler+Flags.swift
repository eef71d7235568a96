import X86

/// The guest's arithmetic flags in generated code: liveness, where they are (host RFLAGS, R10,
/// the state page), and the model's values where the SDM leaves them undefined.
extension BlockCompiler {
  /// The forms R10 holds the guest's arithmetic flags in.
  enum CapturedFlags: Equatable {
    /// An RFLAGS image (what block entries, links, the epilogue and callouts expect).
    case image
    /// As LAHF and SETO left them: bits 15-8 AH (SF ZF AF PF CF), bit 0 OF, bits 31-16 anything.
    case lahf
    /// After an IMUL of `size` bytes: bit 0 its CF (= OF), the rest anything; SF ZF PF come from
    /// its result in the scratch word (`emitMultiplyFlagsFix`).
    case multiply(size: Int)
  }

  /// Whether the guest's arithmetic flags must be in the host's RFLAGS before `g`'s host code: it
  /// reads some, or writes some but not surely all (rotates write CF and OF only, INC/DEC keep CF,
  /// a shift by CL may write none), so the host instruction must find the others there. A callout
  /// reads them all from the state page.
  static func needsGuestFlagsInHost(_ g: GuestInstruction) -> Bool {
    let e = flagEffect(g)
    return e.reads != 0 || (e.mayWrite != 0 && e.writes != UInt64(arithmeticFlags))
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

  /// Whether instruction `k` may side-exit: `maySideExit`, except for a read of a group that is
  /// not the group's first (its range was checked there: it cannot fail).
  func mayLeave(_ k: Int) -> Bool {
    if let member = readGroupMember[k], readGroups[member.group].leader != k { return false }
    return Self.maySideExit(block.instructions[k])
  }

  /// The arithmetic flags (as RFLAGS bits) `g` reads, the ones it always writes (liveness: a flag
  /// an instruction may keep counts as not written), and the ones it may write.
  static func flagEffect(_ g: GuestInstruction) -> (reads: UInt64, writes: UInt64, mayWrite: UInt64) {
    let all = UInt64(arithmeticFlags)
    let ins = g.instruction
    switch g.form {
    case .generic: return (all, 0, all)  // a callout or special form: all of them, conservatively
    case .adcRR, .adcRI, .adcRM, .adcMR, .adcMI, .sbbRR, .sbbRI, .sbbRM, .sbbMR, .sbbMI: return (Flags.cf, all, all)
    case .incDecR, .incDecM: return (0, all & ~Flags.cf, all & ~Flags.cf)
    case .jcc, .cmovR, .cmovM, .setccR: return (conditionFlags(ins.condition), 0, 0)
    case .shiftR:
      let rotate = [.rol, .ror, .rcl, .rcr].contains(ins.operation)
      let reads = ins.operation == .rcl || ins.operation == .rcr ? Flags.cf : 0
      let written = rotate ? Flags.cf | Flags.of : all
      // By CL the count may be 0 after masking, which writes nothing; an immediate count of 0 is
      // treated alike.
      guard ins.operands.1.kind == .immediate, ins.immediate & (ins.operandSize == 8 ? 63 : 31) != 0 else {
        return (reads, 0, written)
      }
      return (reads, written, written)
    case .imulR, .imulM: return (0, all, all)
    default:
      switch ins.operation {
      case .add, .or, .and, .sub, .xor, .cmp, .test: return (0, all, all)
      default: return (0, 0, 0)
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
      let (reads, writes, _) = Self.flagEffect(g)
      live = (live & ~writes) | reads
      // A conditional branch inside the block leaves it when taken.
      if mayLeave(k) || (g.form == .jcc && k < block.instructions.count - 1) { live = all }
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

  /// Before host code that clobbers the host's flags: live guest flags there move to R10, in the
  /// LAHF form (LAHF, SETO and a move: several times cheaper than PUSHFQ, which is microcoded).
  /// Clobbers RAX.
  mutating func clobberFlags() {
    if flagsPending {
      a.lahf()
      a.setcc(HostCondition.overflow, .register(.rax))
      a.mov(.r10, .register(.rax), size: 4)
      r10Format = .lahf
      flagsPending = false
    }
    flagsInHost = false
  }

  /// Makes R10 the RFLAGS image of the guest's flags, whatever form a capture left them in
  /// (clobbers R8, RAX and the host's flags; a no-op when R10 is an image already, as it is
  /// whenever the host's flags are the newest).
  mutating func settleFlags() {
    guard r10Format != .image else { return }
    emitFlagsImage(from: r10Format)
    r10Format = .image
    flagsInHost = false
  }

  /// The code that turns R10's flags in `format` into an RFLAGS image (clobbers R8, RAX and the
  /// host's flags).
  mutating func emitFlagsImage(from format: CapturedFlags) {
    switch format {
    case .image:
      return
    case .multiply(let size):
      emitMultiplyFlagsFix(size: size)
    case .lahf:
      // R10 bits 15-8: SF ZF 0 AF 0 PF 1 CF (LAHF's AH); bit 0: OF.
      a.mov(.rax, .register(.r10), size: 4)
      a.shift(.shr, .register(.rax), count: 8, size: 4)
      a.alu(.and, .register(.rax), immediate: Int64(Flags.sf | Flags.zf | Flags.af | Flags.pf | Flags.cf), size: 4)
      a.alu(.and, .register(.r10), immediate: 1, size: 4)
      a.shift(.shl, .register(.r10), count: 11, size: 4)
      a.alu(.or, .register(.r10), .rax, size: 4)
    }
  }

  /// Makes the host's arithmetic flags equal the guest's: from an RFLAGS image in R10 by POPFQ of
  /// its arithmetic flags alone; from the LAHF form by ADD AL, 0x7F (OF set exactly when AL is 1)
  /// and SAHF, keeping RAX. The mask matters: where the guest's flags are dead, R10 may still hold
  /// an older capture in another form (whose bit 8 would set the host's TF).
  mutating func loadFlags() {
    if flagsInHost { return }
    switch r10Format {
    case .lahf:
      a.push(.rax)
      a.mov(.rax, .register(.r10), size: 4)
      a.alu(.add, .register(.rax), immediate: 0x7F, size: 1)
      a.sahf()
      a.pop(.rax)
    case .multiply:
      preconditionFailure("an IMUL's flags read before they were settled")
    case .image:
      a.push(.r10)
      a.alu(.and, .memory(HostMemory(.rsp)), immediate: Self.arithmeticFlags, size: 8)
      a.popfq()
    }
    flagsInHost = true
  }

  /// Makes the host's CF the guest's, for an instruction that reads or keeps CF alone and writes
  /// every other arithmetic flag (INC, DEC, ADC, SBB): one BT of R10's CF bit instead of a whole
  /// POPFQ. The host's other flags stay unknown (`flagsInHost` false) until that instruction.
  mutating func loadCarry() {
    if flagsInHost { return }
    switch r10Format {
    case .lahf: a.bt(.register(.r10), bit: 8)  // LAHF's AH bit 0
    case .image, .multiply: a.bt(.register(.r10), bit: 0)  // an IMUL's CF is bit 0 too
    }
  }

  /// Makes the host's flags that condition `cc` tests the guest's: CF alone by `loadCarry`.
  mutating func loadFlags(for cc: UInt8) {
    if Self.conditionFlags(cc) == Flags.cf { loadCarry() } else { loadFlags() }
  }

  /// After a host instruction that set the guest's flags (instruction `k`).
  mutating func flagsWritten(by k: Int) {
    flagsInHost = true
    flagsPending = flagsLiveAfter(k)
    r10Format = .image
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

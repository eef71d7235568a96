/// Fetch, decode and the dispatch of one instruction.
extension CPU {
  /// Fetches and decodes at CS:RIP, then executes. Commits RIP only on success.
  func executeOne() throws(Fault) {
    // Fastest path: 64-bit code with a valid cached decode.
    let rip64 = stateRaw.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self)
    if stateRaw.load(fromByteOffset: CPUStateLayout.codeMode, as: UInt64.self) == 64 && rip64 & 0xFFF <= 0x1000 - 15
      && isCanonical(rip64)
    {
      if let physical = quickTranslate(rip64, kind: .execute) {
        let generation = DecodeCache.generation(cachePageGeneration, epoch: cacheEpoch.pointee, ofPageHolding: physical)
        if let e = DecodeCache.hit(cacheEntries, physical, .bits64, generation: generation) {
          let next = rip64 &+ UInt64(e.pointee.instruction.length)
          if completeFast(e, FastLong.self, nextRIP: next) { return }
          lastNextRIP = next
          try execute(&e.pointee.instruction, nextRIP: next)
          return
        }
      }
    }
    try executeGeneral()
  }

  /// Every other case: other modes, cache misses, page-crossing fetches.
  @inline(never)
  func executeGeneral() throws(Fault) {
    let mode = state.codeMode
    let rip = state.rip
    // Fast path: a cached decode at the physical address of CS:RIP.
    let linearRIP: UInt64 = mode == .bits64 ? rip : (state.segmentBase(1) &+ rip) & 0xFFFF_FFFF
    let cacheable =
      (linearRIP & 0xFFF) <= 0x1000 - 15
      && (mode == .bits64
        ? isCanonical(rip)
        : rip &+ 15 <= state.segmentLimit(1) && rip &+ 15 <= (mode == .bits16 ? 0xFFFF : 0xFFFF_FFFF))
    var physicalRIP: UInt64 = 0
    if cacheable {
      physicalRIP = try translateFetch(linearRIP)
      if let e = decodeCache.lookup(physicalRIP, mode) {
        let wrap: UInt64 = mode == .bits16 ? 0xFFFF : (mode == .bits32 ? 0xFFFF_FFFF : ~0)
        let next = (rip &+ UInt64(e.pointee.instruction.length)) & wrap
        if completeFast(e, mode: mode, nextRIP: next) { return }
        lastNextRIP = next
        try execute(&e.pointee.instruction, nextRIP: next)
        return
      }
    }
    var buffer: (UInt64, UInt64) = (0, 0)
    var ins: DecodedInstruction = try withUnsafeMutableBytes(of: &buffer) { raw throws(Fault) -> DecodedInstruction in
      var count = 0
      if mode == .bits64 {
        let lin = rip
        if !isCanonical(lin) { throw Fault.generalProtection() }
        let inPage = Int(0x1000 - (lin & 0xFFF))
        if inPage >= 15, let p = hostPage(try translateFetch(lin), write: false) {
          return try decodeOrFault(UnsafeRawBufferPointer(start: p, count: 15), mode: mode)
        }
      }
      let wrap: UInt64 = mode == .bits16 ? 0xFFFF : (mode == .bits32 ? 0xFFFF_FFFF : ~0)
      let base = state.segmentBase(1)
      let limit = mode == .bits64 ? ~UInt64(0) : state.segmentLimit(1)
      // A fetch fault past the first byte only matters if the instruction really extends there.
      var faultingFetch: UInt64?
      let savedCR2 = state.cr2
      while count < 15 {
        let off = (rip &+ UInt64(count)) & wrap
        if off > limit { break }
        let lin = mode == .bits64 ? off : (base &+ off) & 0xFFFF_FFFF
        let physical: UInt64
        do throws(Fault) {
          physical = try translateFetch(lin)
        } catch {
          if count == 0 { throw error }
          state.cr2 = savedCR2
          faultingFetch = lin
          break
        }
        guard let p = hostPage(physical, write: false) else { break }
        raw[count] = p.load(as: UInt8.self)
        count += 1
      }
      let bytes = UnsafeRawBufferPointer(start: raw.baseAddress, count: count)
      if let faultingFetch, case .truncated = Decoder.decode(bytes, mode: mode, model: model) {
        _ = try translateFetch(faultingFetch)
      }
      return try decodeOrFault(bytes, mode: mode)
    }
    let wrap: UInt64 = mode == .bits16 ? 0xFFFF : (mode == .bits32 ? 0xFFFF_FFFF : ~0)
    // The 80286 limits instructions to 10 bytes.
    if model == .i80286 && ins.length > 10 { throw Fault.generalProtection() }
    let next = (rip &+ UInt64(ins.length)) & wrap
    if cacheable, hostPage(physicalRIP, write: false) != nil {
      let entry = decodeCache.insert(physicalRIP, mode, ins)
      decodeCacheFills &+= 1
      protectCode(page: physicalRIP >> 12)
      // The first run of an instruction already takes its fast form, so every test that runs code
      // once (the differential tester) exercises the handlers the hot loops use.
      if completeFast(entry, mode: mode, nextRIP: next) { return }
    }
    lastNextRIP = next
    try execute(&ins, nextRIP: next)
  }

  /// Runs a cached instruction's fast handler for code in `mode` and commits its RIP; false when
  /// it declined.
  @inline(__always) func completeFast(_ e: CacheEntry, mode: CodeMode, nextRIP: UInt64) -> Bool {
    mode == .bits64
      ? completeFast(e, FastLong.self, nextRIP: nextRIP) : completeFast(e, FastLegacy.self, nextRIP: nextRIP)
  }

  /// Runs a cached instruction's fast handler (specialized for `M`) and commits its RIP; false
  /// when it declined.
  @inline(__always) func completeFast<M: FastMode>(_ e: CacheEntry, _: M.Type, nextRIP: UInt64) -> Bool {
    let rip = executeFast(e, M.self, nextRIP: nextRIP)
    materializeFlags()
    guard rip != CPU.fastDeclined else { return false }
    stateRaw.storeBytes(of: rip, toByteOffset: CPUStateLayout.rip, as: UInt64.self)
    fastPathRetired &+= 1
    return true
  }

  func decodeOrFault(_ bytes: UnsafeRawBufferPointer, mode: CodeMode) throws(Fault) -> DecodedInstruction {
    switch Decoder.decode(bytes, mode: mode, model: model) {
    case .success(let ins): return ins
    case .undefined: throw Fault.invalidOpcode
    case .tooLong: throw Fault.generalProtection()
    case .truncated:
      throw model == .host64 && mode == .bits64
        ? Fault.exception(vector: 14, errorCode: 0x10) : Fault.generalProtection()
    }
  }

  /// Condition code evaluation (0-15).
  @inline(__always) func condition(_ cc: UInt8) -> Bool { CPU.condition(cc, holdsFor: flags) }

  /// Whether condition `cc` (0-15) holds for the RFLAGS image `f`.
  @inline(__always) static func condition(_ cc: UInt8, holdsFor f: UInt64) -> Bool {
    let r: Bool
    switch cc >> 1 {
    case 0: r = f & Flags.of != 0
    case 1: r = f & Flags.cf != 0
    case 2: r = f & Flags.zf != 0
    case 3: r = f & (Flags.cf | Flags.zf) != 0
    case 4: r = f & Flags.sf != 0
    case 5: r = f & Flags.pf != 0
    case 6: r = (f & Flags.sf != 0) != (f & Flags.of != 0)
    default: r = f & Flags.zf != 0 || ((f & Flags.sf != 0) != (f & Flags.of != 0))
    }
    return cc & 1 == 0 ? r : !r
  }

  func requireCPL0() throws(Fault) {
    if !isRealMode && state.cpl != 0 { throw Fault.generalProtection() }
  }

  func requireIOPL() throws(Fault) {
    if !isRealMode && state.cpl > Int((state.rflags >> 12) & 3) { throw Fault.generalProtection() }
  }

  /// Branch target masked to the operand size (and checked against CS limit outside 64-bit mode).
  func branch(to target: UInt64, size: Int) throws(Fault) {
    state.rip = try nearBranchTarget(target, size: size)
  }

  /// CS's limit in the state page (`CPUState.segmentLimit(1)`), read directly on this hot path.
  static let codeSegmentLimitOffset = CPUStateLayout.segments + CPUStateLayout.segmentStride + 16

  /// `branch(to:size:)`'s target without committing it: masked to the operand size, checked
  /// against CS's limit outside 64-bit mode (not on the 8086) and for being canonical in it.
  @_transparent
  func nearBranchTarget(_ target: UInt64, size: Int) throws(Fault) -> UInt64 {
    var t = target
    if size == 2 { t &= 0xFFFF } else if size == 4 { t &= 0xFFFF_FFFF }
    if stateRaw.load(fromByteOffset: CPUStateLayout.codeMode, as: UInt64.self) == 64 {
      if !isCanonical(t) { throw Fault.generalProtection() }
    } else if model != .i8086 && t > stateRaw.load(fromByteOffset: CPU.codeSegmentLimitOffset, as: UInt64.self) {
      throw Fault.generalProtection()
    }
    return t
  }

  /// ADD OR ADC SBB AND SUB XOR CMP TEST on `size`-byte operands (a constant where inlined).
  @_transparent
  func binaryArithmetic(_ ins: inout DecodedInstruction, ea: UInt64, size: Int) throws(Fault) {
    let o0 = ins.operands.0
    let operation = ins.operation
    let compares = operation == .cmp || operation == .test
    let a = compares ? try readOperand(ins, o0, ea, size: size) : try readOperandForUpdate(ins, o0, ea, size: size)
    let b = try readOperand(ins, ins.operands.1, ea, size: size)
    let (r, f) = ALU.binary(operation, a, b, carry: flags & Flags.cf, size)
    if !compares { try writeOperand(ins, o0, ea, r, size: size) }
    setArithmeticFlags(f)
  }

  /// INC and DEC on a `size`-byte operand (a constant where inlined): CF is kept.
  @_transparent
  func incrementDecrement(_ ins: inout DecodedInstruction, ea: UInt64, size: Int) throws(Fault) {
    let o0 = ins.operands.0
    let a = try readOperandForUpdate(ins, o0, ea, size: size)
    let (r, f) = ins.operation == .inc ? ALU.add(a, 1, carry: 0, size) : ALU.sub(a, 1, borrow: 0, size)
    try writeOperand(ins, o0, ea, r, size: size)
    setArithmeticFlags((f & ~Flags.cf) | (flags & Flags.cf))
  }

  /// Runs one decoded instruction on the general path. `ins` is `inout` only so that a cached
  /// instruction is passed by address: Swift copies a struct read through a pointer into a
  /// temporary for a by-value or `borrowing` parameter (80 bytes per instruction here, and the
  /// loads from that fresh copy stalled the general path). `execute` never writes it.
  ///
  /// A small dispatcher: each group of operations runs in a function of its own
  /// (`executeBinary`, `executeMove`, `executeNearBranch` ...). One function holding every case
  /// grew past the size up to which the optimizer inlines into a caller, and then even the state
  /// page's loads and stores became calls; kept small, every group is compiled in full and
  /// specialized per operand size where that pays.
  func execute(_ ins: inout DecodedInstruction, nextRIP: UInt64) throws(Fault) {
    if needsLockedExecution(ins) { return try executeLocked(&ins, nextRIP: nextRIP) }
    let ea = ins.hasMemoryOperand ? effectiveAddress(ins, nextRIP: nextRIP) : 0
    var rip = nextRIP
    switch ins.operation {
    case .add, .or, .adc, .sbb, .and, .sub, .xor, .cmp, .test:
      try executeBinary(&ins, ea: ea)
    case .inc, .dec, .neg, .not:
      try executeUnary(&ins, ea: ea)
    case .mov, .movabs, .movSeg, .movzx, .movsx, .movsxd, .lea:
      try executeMove(&ins, ea: ea)
    case .xchg, .cmovcc, .setcc, .cbw, .cwd:
      try executeExchange(&ins, ea: ea)
    case .push, .pop:
      try executeStack(&ins, ea: ea, nextRIP: nextRIP)
    case .mul, .imul, .div, .idiv:
      try multiplyDivide(&ins, ea: ea)
    case .rol, .ror, .rcl, .rcr, .shl, .shr, .sal, .sar, .setmo:
      try shiftRotate(&ins, ea: ea)
    case .shld, .shrd:
      try doubleShift(&ins, ea: ea)
    case .bt, .bts, .btr, .btc:
      try bitTest(&ins, ea: ea, nextRIP: nextRIP)
    case .bsf, .bsr, .tzcnt, .lzcnt, .popcnt:
      try bitScan(&ins, ea: ea)
    case .jcc, .jmp, .call, .ret:
      rip = try executeNearBranch(&ins, ea: ea, nextRIP: nextRIP)
    case .clc, .stc, .cmc, .cld, .std:
      executeFlagOperation(ins.operation)
    case .movs, .cmps, .stos, .lods, .scas, .ins, .outs:
      if try stringIteration(&ins) { rip = state.rip }
    case .nop, .prefetch, .lfence, .mfence, .sfence, .endbr64, .endbr32:
      break
    case .pause:
      // Counted only for pause-loop exiting (then it takes this path, a callout under dbt).
      guard decodeCache.countsPauses else { break }
      pausesRetired &+= 1
      pauseLoopLength = instructionsRetired &- lastPauseAt <= CPU.pauseLoopGap ? pauseLoopLength &+ 1 : 0
      lastPauseAt = instructionsRetired
    default:
      rip = try executeRare(&ins, ea: ea, nextRIP: nextRIP)
    }
    stateRaw.storeBytes(of: rip, toByteOffset: CPUStateLayout.rip, as: UInt64.self)
  }

  /// ADD OR ADC SBB AND SUB XOR CMP TEST, one copy per operand size (its masks constants there).
  @inline(never)
  func executeBinary(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    switch ins.operandSize {
    case 4: try binaryArithmetic(&ins, ea: ea, size: 4)
    case 8: try binaryArithmetic(&ins, ea: ea, size: 8)
    case 2: try binaryArithmetic(&ins, ea: ea, size: 2)
    default: try binaryArithmetic(&ins, ea: ea, size: 1)
    }
  }

  /// INC DEC (one copy per operand size, as `executeBinary`), NEG and NOT.
  @inline(never)
  func executeUnary(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    let o0 = ins.operands.0
    switch ins.operation {
    case .inc, .dec:
      switch size {
      case 4: try incrementDecrement(&ins, ea: ea, size: 4)
      case 8: try incrementDecrement(&ins, ea: ea, size: 8)
      case 2: try incrementDecrement(&ins, ea: ea, size: 2)
      default: try incrementDecrement(&ins, ea: ea, size: 1)
      }
    case .neg:
      let a = try readOperandForUpdate(ins, o0, ea)
      let (r, f) = ALU.sub(0, a, borrow: 0, size)
      try writeOperand(ins, o0, ea, r)
      setArithmeticFlags(f)
    default:  // not
      let a = try readOperandForUpdate(ins, o0, ea)
      try writeOperand(ins, o0, ea, ~a & ALU.mask(size))
    }
  }

  /// MOV (with a segment register as the source too), MOVZX, MOVSX, MOVSXD and LEA.
  @inline(never)
  func executeMove(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    switch ins.operation {
    case .mov, .movabs, .movSeg:
      let v = try readOperand(ins, o1, ea)
      if ins.operation == .movSeg && o0.kind == .gpr {
        setReg(Int(o0.reg), Int(o0.size) == 8 ? 8 : Int(o0.size), v)
      } else if ins.operation == .movSeg && o0.kind == .memory {
        // MOV m, Sreg stores the 16-bit selector whatever the operand size (SDM vol. 2 "MOV").
        try write(seg: Int(ins.segment), offset: ea, size: 2, value: v)
      } else {
        try writeOperand(ins, o0, ea, v)
      }
    case .movzx:
      let v = try readOperand(ins, o1, ea)
      try writeOperand(ins, o0, ea, v)
    case .movsx, .movsxd:
      let v = try readOperand(ins, o1, ea)
      try writeOperand(ins, o0, ea, UInt64(bitPattern: ALU.signExtend(v, Int(o1.size))))
    default:  // lea
      if o0.kind != .gpr { throw Fault.invalidOpcode }
      setReg(Int(o0.reg), Int(o0.size), ea)
    }
  }

  /// XCHG, CMOVcc, SETcc, CBW/CWDE/CDQE and CWD/CDQ/CQO.
  @inline(never)
  func executeExchange(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    switch ins.operation {
    case .xchg:
      let a = try readOperandForUpdate(ins, o0, ea)
      let b = try readOperand(ins, o1, ea)
      try writeBothOperands(ins, ea, destination: b, source: a)
    case .cmovcc:
      let v = try readOperand(ins, o1, ea)
      if condition(ins.condition) {
        try writeOperand(ins, o0, ea, v)
      } else if o0.size == 4 {
        setReg(Int(o0.reg), 4, reg(Int(o0.reg), 4))
      }
    case .setcc:
      try writeOperand(ins, o0, ea, condition(ins.condition) ? 1 : 0)
    case .cbw:
      let half = size / 2
      setReg(0, size, UInt64(bitPattern: ALU.signExtend(reg(0, half), half)))
    default:  // cwd
      let negative = reg(0, size) & ALU.sign(size) != 0
      setReg(2, size, negative ? ALU.mask(size) : 0)
    }
  }

  /// PUSH and POP.
  @inline(never)
  func executeStack(_ ins: inout DecodedInstruction, ea: UInt64, nextRIP: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    let o0 = ins.operands.0
    if ins.operation == .push {
      let v = try readOperand(ins, o0, ea)
      if o0.kind == .gpr && o0.reg == 4 && model == .i8086 {
        try push((v &- 2) & 0xFFFF, size: size)
      } else {
        try push(v, size: o0.kind == .segment ? (size == 8 ? 8 : size) : size)
      }
      return
    }
    if o0.kind == .segment {
      if o0.reg == 1 && model != .i8086 { throw Fault.invalidOpcode }
      // The pop moves the stack pointer at the old stack's size: POP SS loading a stack of the
      // other B bit still increments ESP (or SP) as the popping stack dictates.
      let stackSize = stackAddressSize
      let (v, nsp) = try popValue(size: size, from: stackPointer())
      try loadSegment(Int(o0.reg), selector: UInt16(truncatingIfNeeded: v))
      setReg(4, stackSize, nsp)
      if o0.reg == 2 {
        pendingShadow = true
        pendingDebugShadow = true
      }
    } else if o0.kind == .memory {
      let (v, nsp) = try popValue(size: size, from: stackPointer())
      let oldSP = state.gpr(4)
      setStackPointer(nsp)
      let ea2 = effectiveAddress(ins, nextRIP: nextRIP)
      do throws(Fault) {
        try writeOperand(ins, o0, ea2, v)
      } catch {
        // Later CPUs restart POP m cleanly; the 80286 keeps the popped SP when the write faults
        // (SingleStep 80286 vectors, a word destination at offset FFFFh).
        if model != .i80286 { state.setGPR(4, oldSP) }
        throw error
      }
    } else {
      let (v, nsp) = try popValue(size: size, from: stackPointer())
      setStackPointer(nsp)
      setReg(Int(o0.reg), size, v)
    }
  }

  /// Jcc, JMP, CALL and RET (near): returns the RIP to commit.
  @inline(never)
  func executeNearBranch(_ ins: inout DecodedInstruction, ea: UInt64, nextRIP: UInt64) throws(Fault) -> UInt64 {
    let size = Int(ins.operandSize)
    let o0 = ins.operands.0
    switch ins.operation {
    case .jcc:
      return condition(ins.condition) ? try nearBranchTarget(nextRIP &+ ins.immediate, size: size) : nextRIP
    case .jmp:
      if o0.kind == .relative {
        return try nearBranchTarget(nextRIP &+ ins.immediate, size: size)
      }
      return try nearBranchTarget(try readOperand(ins, o0, ea), size: size)
    case .call:
      let target = o0.kind == .relative ? nextRIP &+ ins.immediate : try readOperand(ins, o0, ea)
      let sp = try pushValue(nextRIP, size: size, from: stackPointer())
      let rip = try nearBranchTarget(target, size: size)
      setStackPointer(sp)
      return rip
    default:  // ret
      let (v, sp) = try popValue(size: size, from: stackPointer())
      let rip = try nearBranchTarget(v, size: size)
      setStackPointer((sp &+ (ins.operandCount > 0 ? ins.immediate & 0xFFFF : 0)) & ALU.mask(stackAddressSize))
      return rip
    }
  }

  /// CLC STC CMC CLD STD.
  @inline(__always)
  func executeFlagOperation(_ operation: Operation) {
    switch operation {
    case .clc: setFlag(Flags.cf, false)
    case .stc: setFlag(Flags.cf, true)
    case .cmc: state.rflags ^= Flags.cf
    case .cld: setFlag(Flags.df, false)
    default: setFlag(Flags.df, true)
    }
  }

  /// The less frequent operations, kept out of `execute` so the hot dispatch stays small.
  /// Returns the RIP to commit.
  @inline(never)
  func executeRare(_ ins: inout DecodedInstruction, ea: UInt64, nextRIP: UInt64) throws(Fault) -> UInt64 {
    let size = Int(ins.operandSize)
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    var rip = nextRIP
    switch ins.operation {
    case .movToSeg:
      if o0.reg == 1 { throw Fault.invalidOpcode }
      let v = try readOperand(ins, o1, ea)
      try loadSegment(Int(o0.reg), selector: UInt16(truncatingIfNeeded: v))
      if o0.reg == 2 {
        pendingShadow = true
        pendingDebugShadow = true
      }
    case .bswap:
      let r = Int(o0.reg)
      if o0.size == 8 {
        state.setGPR(r, state.gpr(r).byteSwapped)
      } else if o0.size == 4 {
        setReg(r, 4, UInt64(UInt32(truncatingIfNeeded: state.gpr(r)).byteSwapped))
      } else {
        setReg(r, 2, 0)  // BSWAP r16: undefined; real CPUs give 0.
      }
    case .pusha:
      var sp = stackPointer()
      let origSP = reg(4, size)
      for r in 0..<8 {
        sp = try pushValue(r == 4 ? origSP : reg(r, size), size: size, from: sp)
      }
      setStackPointer(sp)
    case .popa:
      try popAll(size: size)
    case .enter:
      let frameSize = ins.immediate & 0xFFFF
      let level = Int(ins.immediate2 & 31)
      let ssize = stackAddressSize
      var sp = stackPointer()
      sp = try pushValue(reg(5, size), size: size, from: sp)
      // FrameTemp is the whole stack pointer register after that push: with a 32-bit operand on
      // a 16-bit stack EBP gets ESP's upper half too, not just SP.
      let frame = (state.gpr(4) & ~ALU.mask(ssize)) | sp
      var bp = reg(5, ssize)
      if level > 0 {
        for _ in 1..<level {
          bp = (bp &- UInt64(size)) & ALU.mask(ssize)
          let v = try read(seg: 2, offset: bp, size: size)
          sp = try pushValue(v, size: size, from: sp)
        }
        sp = try pushValue(frame, size: size, from: sp)
      }
      // The new top of stack is checked as an operand-sized write (segment limit and page) after
      // the pushes: a fault there leaves the pushed values in memory but the registers unchanged.
      // A 16-bit SP that wrapped is checked where it wrapped to (measured on an AMD EPYC).
      let newSP = (sp &- frameSize) & ALU.mask(ssize)
      try probeWrite(seg: 2, offset: newSP, size: size)
      setReg(5, size, frame)
      setStackPointer(newSP)
    case .leave:
      let ssize = stackAddressSize
      let bp = reg(5, ssize)
      let v = try read(seg: 2, offset: bp, size: size)
      setReg(4, ssize, (bp &+ UInt64(size)) & ALU.mask(ssize))
      setReg(5, size, v)
    case .xlat:
      let off = (state.gpr(3) &+ reg(0, 1)) & ALU.mask(Int(ins.addressSize))
      setReg(0, 1, try read(seg: Int(ins.segment), offset: off, size: 1))
    case .lahf:
      if state.codeMode == .bits64 && false { throw Fault.invalidOpcode }
      let ah = normalizeFlags(state.rflags) & 0xFF
      state.setGPR(0, (state.gpr(0) & ~0xFF00) | (ah << 8))
    case .sahf:
      let ah = (state.gpr(0) >> 8) & 0xFF
      let m = Flags.sf | Flags.zf | Flags.af | Flags.pf | Flags.cf
      state.rflags = normalizeFlags((state.rflags & ~m) | (ah & m))
    case .pushf:
      if state.rflags & Flags.vm != 0 && (state.rflags >> 12) & 3 != 3 { throw Fault.generalProtection() }
      try push(flagsImage() & ALU.mask(size), size: size)
    case .popf:
      if state.rflags & Flags.vm != 0 && (state.rflags >> 12) & 3 != 3 { throw Fault.generalProtection() }
      let v = try pop(size: size)
      loadFlags(v, size: size)
    case .xadd:
      let a = try readOperandForUpdate(ins, o0, ea)
      let b = try readOperand(ins, o1, ea)
      let (r, f) = ALU.add(a, b, carry: 0, size)
      try writeBothOperands(ins, ea, destination: r, source: a)
      setArithmeticFlags(f)
    case .cmpxchg:
      let a = try readOperandForUpdate(ins, o0, ea)
      let acc = reg(0, size)
      let (_, f) = ALU.sub(acc, a, borrow: 0, size)
      if acc == a {
        try writeOperand(ins, o0, ea, try readOperand(ins, o1, ea))
      } else {
        if o0.kind == .memory { try writeOperand(ins, o0, ea, a) }
        setReg(0, size, a)
      }
      setArithmeticFlags(f)
    case .cmpxchg8b, .cmpxchg16b:
      let wide = ins.operation == .cmpxchg16b
      let half = wide ? 8 : 4
      let seg = Int(ins.segment)
      if wide && ea & 15 != 0 { throw Fault.generalProtection() }
      try probeWrite(seg: seg, offset: ea, size: half * 2)  // always a locked write cycle
      let lo = try read(seg: seg, offset: ea, size: half)
      let hi = try read(seg: seg, offset: (ea &+ UInt64(half)) & ALU.mask(Int(ins.addressSize)), size: half)
      if lo == reg(0, half) && hi == reg(2, half) {
        try write(seg: seg, offset: ea, size: half, value: reg(3, half))
        try write(
          seg: seg, offset: (ea &+ UInt64(half)) & ALU.mask(Int(ins.addressSize)), size: half, value: reg(1, half))
        setFlag(Flags.zf, true)
      } else {
        try write(seg: seg, offset: ea, size: half, value: lo)
        setReg(0, half, lo)
        setReg(2, half, hi)
        setFlag(Flags.zf, false)
      }
    case .movbe:
      let v = try readOperand(ins, o1, ea)
      let swapped: UInt64
      switch size {
      case 2: swapped = UInt64(UInt16(truncatingIfNeeded: v).byteSwapped)
      case 4: swapped = UInt64(UInt32(truncatingIfNeeded: v).byteSwapped)
      default: swapped = v.byteSwapped
      }
      try writeOperand(ins, o0, ea, swapped)
    case .movnti:
      try writeOperand(ins, o0, ea, try readOperand(ins, o1, ea))
    case .andn, .bextr, .blsi, .blsmsk, .blsr, .bzhi, .mulx, .pdep, .pext, .rorx, .sarx, .shlx, .shrx:
      try bitManipulation(ins, ea: ea)
    case .daa, .das, .aaa, .aas, .aam, .aad, .salc:
      try decimalAdjust(ins)
    case .loop, .loope, .loopne:
      let a = Int(ins.addressSize)
      let count = (reg(1, a) &- 1) & ALU.mask(a)
      var taken = count != 0
      if ins.operation == .loope { taken = taken && flag(Flags.zf) }
      if ins.operation == .loopne { taken = taken && !flag(Flags.zf) }
      if taken { try branch(to: nextRIP &+ ins.immediate, size: size) }
      setReg(1, a, count)
      if taken { rip = state.rip }
    case .jcxz:
      if reg(1, Int(ins.addressSize)) == 0 {
        try branch(to: nextRIP &+ ins.immediate, size: size)
        rip = state.rip
      }
    case .jmpFar, .callFar, .retf, .iret:
      try farControl(ins, ea: ea, nextRIP: nextRIP)
      rip = state.rip
    case .bound:
      let half = size
      let idx = ALU.signExtend(reg(Int(o0.reg), size), size)
      let lo = ALU.signExtend(try read(seg: Int(ins.segment), offset: ea, size: half), half)
      let hi = ALU.signExtend(
        try read(seg: Int(ins.segment), offset: (ea &+ UInt64(half)) & ALU.mask(Int(ins.addressSize)), size: half), half
      )
      if idx < lo || idx > hi { throw Fault.exception(vector: 5, errorCode: nil) }
    case .les, .lds, .lss, .lfs, .lgs:
      let off = try read(seg: Int(ins.segment), offset: ea, size: size)
      let sel = try read(seg: Int(ins.segment), offset: (ea &+ UInt64(size)) & ALU.mask(Int(ins.addressSize)), size: 2)
      let s: Int
      switch ins.operation {
      case .les: s = 0
      case .lds: s = 3
      case .lss: s = 2
      case .lfs: s = 4
      default: s = 5
      }
      try loadSegment(s, selector: UInt16(sel))
      setReg(Int(o0.reg), size, off)
    case .arpl:
      if isRealMode { throw Fault.invalidOpcode }
      let d = try readOperand(ins, o0, ea)
      let s = try readOperand(ins, o1, ea)
      if d & 3 < s & 3 {
        try writeOperand(ins, o0, ea, (d & ~3) | (s & 3))
        setFlag(Flags.zf, true)
      } else {
        setFlag(Flags.zf, false)
      }
    case .wait:
      if model == .host64 { try executeWait() }
    case .int, .int3, .into, .int1, .hlt, .cli, .sti, .in, .out, .cpuid, .rdtsc, .rdtscp, .smsw, .lmsw, .clts,
      .sgdt, .sidt, .lgdt, .lidt, .movCR, .movToCR, .movDR, .movToDR, .invd, .wbinvd, .invlpg, .rdmsr, .wrmsr,
      .sldt, .str, .lldt, .ltr, .lar, .lsl, .verr, .verw, .syscall, .sysret, .sysenter, .sysexit, .swapgs,
      .rdfsbase, .rdgsbase, .wrfsbase, .wrgsbase, .clac, .stac, .vmcall:
      if try executeSystem(ins, ea: ea, nextRIP: nextRIP) { rip = state.rip }
    case .sse:
      try executeSSE(&ins, ea: ea)
    case .emms: try executeEMMS()
    case .fxsave: try fxsave(seg: Int(ins.segment), ea: ea)
    case .fxrstor: try fxrstor(seg: Int(ins.segment), ea: ea)
    case .ldmxcsr: try ldmxcsr(seg: Int(ins.segment), ea: ea)
    case .stmxcsr: try stmxcsr(seg: Int(ins.segment), ea: ea)
    case .xsave, .xsaveopt: try xsave(seg: Int(ins.segment), ea: ea)
    case .xrstor: try xrstor(seg: Int(ins.segment), ea: ea)
    case .xgetbv: try executeXGETBV()
    case .xsetbv: try executeXSETBV()
    case .ud0, .ud1, .ud2, .invalid, .x87:
      if ins.operation == .x87 && model != .host64 {
        // No coprocessor on the 8086/286 test setups: ESC instructions do nothing, but the 286 still
        // checks the memory operand against the segment limit.
        if ins.hasMemoryOperand && model != .i8086 {
          let size = x87OperandSize(opcode: ins.opcode, reg: Int((ins.modrm >> 3) & 7))
          try checkWrite(seg: Int(ins.segment), offset: ea, size: size)
        }
        break
      }
      if ins.operation == .x87, try executeX87(ins, ea: ea) { break }
      throw Fault.invalidOpcode
    default:
      throw Fault.invalidOpcode
    }
    return rip
  }

  /// XCHG and XADD write both operands. A memory destination is written first, so a fault on it
  /// leaves the register as it was; with two registers the destination is written last, so
  /// `xchg rax, rax` and `xadd rax, rax` end with the destination's value.
  func writeBothOperands(_ ins: DecodedInstruction, _ ea: UInt64, destination: UInt64, source: UInt64) throws(Fault) {
    if ins.operands.0.kind == .memory {
      try writeOperand(ins, ins.operands.0, ea, destination)
      try writeOperand(ins, ins.operands.1, ea, source)
    } else {
      try writeOperand(ins, ins.operands.1, ea, source)
      try writeOperand(ins, ins.operands.0, ea, destination)
    }
  }

  /// Memory operand size of an x87 ESC instruction (for limit checks).
  func x87OperandSize(opcode: UInt8, reg: Int) -> Int {
    let table: [[Int]] = [
      [4, 4, 4, 4, 4, 4, 4, 4], [4, 1, 4, 4, 14, 2, 14, 2], [4, 4, 4, 4, 4, 4, 4, 4], [4, 4, 4, 4, 1, 10, 1, 10],
      [8, 8, 8, 8, 8, 8, 8, 8], [8, 8, 8, 8, 94, 1, 94, 2], [2, 2, 2, 2, 2, 2, 2, 2], [2, 2, 2, 2, 10, 8, 10, 8],
    ]
    let row = Int(opcode &- 0xD8) & 7
    return table[row][reg & 7]
  }

  /// POPA/POPAD (kept out of `execute` so its stack buffer does not burden the hot path).
  @inline(never)
  func popAll(size: Int) throws(Fault) {
    var sp = stackPointer()
    if system.vendor == .amd {
      // AMD loads each register as it pops it, reading the skipped ESP slot too: a fault part-way
      // (limit or page) leaves the registers popped before it loaded and ESP unchanged. Measured
      // on a family 19h EPYC; Intel's behaviour is not measured here and stays all-or-nothing.
      for k in 0..<8 {
        let (v, n) = try popValue(size: size, from: sp)
        sp = n
        if k != 3 { setReg(7 - k, size, v) }
      }
      setStackPointer(sp)
      return
    }
    var values = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
    try withUnsafeMutableBytes(of: &values) { raw throws(Fault) in
      for k in 0..<8 {
        let (v, n) = try popValue(size: size, from: sp)
        sp = n
        raw.storeBytes(of: v, toByteOffset: (7 - k) * 8, as: UInt64.self)
      }
    }
    withUnsafeBytes(of: &values) { raw in
      for r in 0..<8 where r != 4 { setReg(r, size, raw.load(fromByteOffset: r * 8, as: UInt64.self)) }
    }
    setStackPointer(sp)
  }
}

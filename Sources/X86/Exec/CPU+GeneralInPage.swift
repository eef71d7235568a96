/// The general path inside the page-local run loop (`runFastInPage`, `runFastInPageLegacy`).
///
/// An instruction the fast handlers do not cover (or decline) used to leave the page loop: the
/// loop committed RIP and its counts and returned to `CPU.run`, which went through `stepInline`
/// and then entered the page again. For the instructions below it runs in place instead, through
/// the same `execute` with the same fault handling as `stepInline`, and the loop goes on: in the
/// same page when RIP is still there, the TLB was not flushed and the page's decode-cache
/// generation is unchanged (`pageStillMapped`), else by entering the page of the new RIP.
///
/// That is sound because none of them can change what the loop and `run` hold or test between
/// instructions: the code mode, CS, CPL, CR0/CR3/CR4/EFER and the TLB's contents as far as they
/// matter to the loop, RFLAGS.TF/RF (single-step), the debug registers, the interrupt shadow, a
/// translator's preconditions, an event reported after retirement (HLT, VMCALL). A fault is
/// delivered (or reported) exactly as `stepInline` does it, and then the loop ends, since delivery
/// changes all of those.
extension CPU {
  /// How the general path runs `ins` inside the page-local loop (see above).
  static func inPageRun(_ ins: DecodedInstruction) -> InPageRun {
    guard runsInPage(ins) else { return .leaves }
    if ins.hasMemoryOperand { return .accessesMemory }
    switch ins.operation {
    case .push, .pop, .pushf, .call, .ret, .enter, .leave, .xlat, .movs, .cmps, .stos, .lods, .scas:
      return .accessesMemory
    case .sse where ins.opcode == 0xF7:  // MASKMOVDQU stores to DS:rDI without a memory operand
      return .accessesMemory
    default:
      return .registersOnly
    }
  }

  /// Whether the general path may run `ins` inside the page-local loop (see above): the data,
  /// stack, string, SSE and near-branch instructions. Segment loads, far transfers, software
  /// interrupts, flag loads that can set TF or IF (POPF), I/O and every system instruction leave
  /// the loop as before.
  static func runsInPage(_ ins: DecodedInstruction) -> Bool {
    switch ins.operation {
    case .add, .or, .adc, .sbb, .and, .sub, .xor, .cmp, .test, .inc, .dec, .neg, .not,
      .mov, .movabs, .movSeg, .movzx, .movsx, .movsxd, .lea, .xchg, .cmovcc, .setcc, .cbw, .cwd,
      .mul, .imul, .div, .idiv, .rol, .ror, .rcl, .rcr, .shl, .shr, .sal, .sar, .setmo, .shld, .shrd,
      .bt, .bts, .btr, .btc, .bsf, .bsr, .tzcnt, .lzcnt, .popcnt, .jcc, .jmp, .call, .ret,
      .clc, .stc, .cmc, .cld, .std, .movs, .cmps, .stos, .lods, .scas,
      .nop, .pause, .prefetch, .lfence, .mfence, .sfence, .endbr64, .endbr32,
      .bswap, .enter, .leave, .xlat, .lahf, .sahf, .pushf, .xadd, .cmpxchg, .cmpxchg8b, .cmpxchg16b,
      .movbe, .movnti, .loop, .loope, .loopne, .jcxz,
      .andn, .bextr, .blsi, .blsmsk, .blsr, .bzhi, .mulx, .pdep, .pext, .rorx, .sarx, .shlx, .shrx,
      .daa, .das, .aaa, .aas, .aam, .aad, .salc, .sse:
      return true
    case .push:
      return true
    case .pop:
      // POP of a segment register loads it (and POP SS starts an interrupt shadow).
      return ins.operands.0.kind != .segment
    default:
      return false
    }
  }

  /// How a cached instruction runs on the general path inside a page loop (`inPageRun`).
  enum InPageRun: UInt8 {
    /// It leaves the loop: `run` executes it.
    case leaves
    /// It runs in place and touches registers alone (no memory operand, no stack or string
    /// access): it cannot store into the page or flush the TLB, so the loop stays in the page
    /// without checking.
    case registersOnly
    /// It runs in place and may access memory: the loop checks afterwards that the page still
    /// stands.
    case accessesMemory
  }

  /// Why a page loop stopped after running an instruction on the general path.
  enum InPageStop: Equatable {
    case none
    /// It faulted and the exception was delivered: the loop ends (the instruction counts
    /// against the budget, not as retired, as in `run`).
    case delivered
    /// `run` must return this event (RIP is the instruction's).
    case event(CPUEvent)
  }

  /// Runs the cached instruction `e` at `rip` (which its fast handler, if any, declined) on the
  /// general path inside a page loop, whose page is `physicalPage` at decode-cache `generation`.
  /// Returns the RIP to go on from and whether the loop may stay in that page (`mapped`: the TLB
  /// was not flushed, and execute translations are only filled by fetches, which `execute` does
  /// not make, while CR0/CR3/CR4, EFER and CPL stay as they are, so the page's translation
  /// stands; and the page's generation is unchanged, which a store into it or a flush would
  /// change); or `CPU.fastDeclined` when the loop must stop, with the reason in `inPageStop`.
  /// Kept out of line so the fast loops stay as tight as before.
  @inline(never)
  func runGeneralInPage(
    _ e: CacheEntry, rip: UInt64, physicalPage: UInt64, generation: UInt32
  ) -> (rip: UInt64, mapped: Bool) {
    let registersOnly = e.pointee.inPageRun == .registersOnly
    let flushes = tlbFlushCounter.pointee
    stateRaw.storeBytes(of: rip, toByteOffset: CPUStateLayout.rip, as: UInt64.self)
    do throws(Fault) {
      let next = rip &+ UInt64(e.pointee.instruction.length)
      lastNextRIP = next
      if registersOnly {
        try execute(&e.pointee.instruction, nextRIP: next)
        return (stateRaw.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self), true)
      }
      ioIndex = 0
      try execute(&e.pointee.instruction, nextRIP: next)
      if !ioLog.isEmpty { ioLog.removeAll(keepingCapacity: true) }
    } catch {
      switch error {
      case .event(let event):
        state.rip = rip
        inPageStop = .event(event)
      case .exception(let vector, let code):
        ioLog.removeAll(keepingCapacity: true)
        pendingShadow = false
        interruptShadow = false
        state.rip = rip
        if let event = raise(vector: vector, errorCode: code, nextRIP: lastNextRIP) {
          inPageStop = .event(event)
        } else {
          inPageStop = .delivered
        }
      }
      return (CPU.fastDeclined, false)
    }
    let mapped =
      tlbFlushCounter.pointee == flushes
      && DecodeCache.generation(cachePageGeneration, epoch: cacheEpoch.pointee, ofPageHolding: physicalPage)
        == generation
    return (stateRaw.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self), mapped)
  }

  /// A page loop's step for an instruction whose fast handler declined (or that has none): one
  /// `runsInPage` allows runs on the general path in place (`runGeneralInPage`), counted in
  /// `left` and `general`, RIP moved on; returns whether the loop may stay in the page, or nil
  /// when it must stop (`pending` set to an instruction for `run`, a fault delivered or an event,
  /// or the budget used up).
  @inline(__always)
  func declinedInPage(
    _ e: CacheEntry, rip: inout UInt64, left: inout UInt64, general: inout UInt64, pending: inout CacheEntry?,
    physicalPage: UInt64, generation: UInt32
  ) -> Bool? {
    guard e.pointee.inPageRun != .leaves else {
      pending = e
      return nil
    }
    materializeFlags()
    let (after, mapped) = runGeneralInPage(e, rip: rip, physicalPage: physicalPage, generation: generation)
    guard after != CPU.fastDeclined else {
      // Delivery moved RIP to the handler; an event leaves it at the instruction.
      rip = stateRaw.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self)
      if inPageStop == .delivered { left -= 1 }
      return nil
    }
    rip = after
    left -= 1
    general &+= 1
    return left == 0 ? nil : mapped
  }

  /// The page loops' common end (RIP already committed): counts what retired (`general` of the
  /// steps ran on the general path, and a fault delivered at the end took a step without
  /// retiring) and returns what `run` needs.
  @inline(__always)
  func finishInPage(
    budget: UInt64, left: UInt64, general: UInt64, pending: CacheEntry?
  ) -> (steps: UInt64, pending: CacheEntry?, event: CPUEvent?) {
    let steps = budget - left
    let delivered: UInt64 = inPageStop == .delivered ? 1 : 0
    instructionsRetired &+= steps &- delivered
    fastPathRetired &+= steps &- general &- delivered
    if case .event(let event) = inPageStop { return (steps, pending, event) }
    return (steps, pending, nil)
  }
}

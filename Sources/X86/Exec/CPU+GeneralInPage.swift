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

  /// Runs the cached instruction `first` at `rip` (which its fast handler, if any, declined) on
  /// the general path inside a page loop, and after it every following instruction the loop would
  /// also hand to the general path (a valid entry in the same window whose form is `.generic` and
  /// that `runsInPage` allows), back to back, each counted in `left` and `general`. The window
  /// is the page loop's (`windowStart`, `span`, `physicalPage` at decode-cache `generation`, code
  /// `mode`). Returns the RIP to go on from, whether the loop may stay in that page
  /// (`mapped`: the TLB was not flushed, and execute translations are only filled by fetches,
  /// which `execute` does not make, while CR0/CR3/CR4, EFER and CPL stay as they are, so the
  /// page's translation stands; and the page's generation is unchanged, which a store into it or
  /// a flush would change) and the valid entry at that RIP when it is in the window and found
  /// (`next`); or `CPU.fastDeclined` when the loop must stop, with the reason in `inPageStop`.
  /// It stops, with RIP committed, at the budget's end, when RIP leaves the window or the page
  /// may have changed, and before an instruction that is not cached (`next` nil), has a fast
  /// form or leaves the loop: the page loop then goes on exactly as it would have after the last
  /// instruction run here. Kept out of line so the fast loops stay as tight as before.
  @inline(never)
  func runGeneralInPage(
    _ first: CacheEntry, rip start: UInt64, windowStart: UInt64, span: UInt64, physicalPage: UInt64,
    generation: UInt32, mode: CodeMode, left: inout UInt64, general: inout UInt64
  ) -> (rip: UInt64, mapped: Bool, next: CacheEntry?) {
    let flushes = tlbFlushCounter.pointee
    var e = first
    var rip = start
    // The counts in registers while the run lasts, written back however it ends.
    var leftHere = left
    var generalHere = general
    defer {
      left = leftHere
      general = generalHere
    }
    while true {
      let registersOnly = e.pointee.inPageRun == .registersOnly
      stateRaw.storeBytes(of: rip, toByteOffset: CPUStateLayout.rip, as: UInt64.self)
      let next = rip &+ UInt64(e.pointee.instruction.length)
      lastNextRIP = next
      do throws(Fault) {
        if registersOnly {
          try execute(&e.pointee.instruction, nextRIP: next)
        } else {
          ioIndex = 0
          try execute(&e.pointee.instruction, nextRIP: next)
          if !ioLog.isEmpty { ioLog.removeAll(keepingCapacity: true) }
        }
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
        return (CPU.fastDeclined, false, nil)
      }
      let after = stateRaw.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self)
      leftHere -= 1
      generalHere &+= 1
      if !registersOnly {
        let mapped =
          tlbFlushCounter.pointee == flushes
          && DecodeCache.generation(cachePageGeneration, epoch: cacheEpoch.pointee, ofPageHolding: physicalPage)
            == generation
        if !mapped { return (after, false, nil) }
      }
      // On to the next instruction here while it is one the page loop would run on the general
      // path too; otherwise the page loop takes it from `after`.
      let offset = after &- windowStart
      guard leftHere != 0, offset <= span else { return (after, true, nil) }
      let physical = physicalPage | offset
      let link = after == next ? e.pointee.successor : e.pointee.branchTarget
      guard
        let found = DecodeCache.hit(link, holding: physical, mode, generation: generation)
          ?? DecodeCache.hit(cacheEntries, physical, mode, generation: generation)
      else { return (after, true, nil) }
      guard found.pointee.form == .generic, found.pointee.inPageRun != .leaves else { return (after, true, found) }
      e = found
      rip = after
    }
  }

  /// A page loop's step for an instruction whose fast handler declined (or that has none): one
  /// `runsInPage` allows runs on the general path in place (`runGeneralInPage`, with the general
  /// instructions that follow it), counted in `left` and `general`, RIP moved on; returns whether
  /// the loop may stay in the page and the valid entry at RIP if it was found in the window, or nil
  /// when it must stop (`pending` set to an instruction for `run`, a fault delivered or an event,
  /// or the budget used up).
  @inline(__always)
  func declinedInPage(
    _ e: CacheEntry, rip: inout UInt64, left: inout UInt64, general: inout UInt64, pending: inout CacheEntry?,
    windowStart: UInt64, span: UInt64, physicalPage: UInt64, generation: UInt32, mode: CodeMode
  ) -> (mapped: Bool, next: CacheEntry?)? {
    guard e.pointee.inPageRun != .leaves else {
      pending = e
      return nil
    }
    materializeFlags()
    let (after, mapped, found) = runGeneralInPage(
      e, rip: rip, windowStart: windowStart, span: span, physicalPage: physicalPage, generation: generation,
      mode: mode, left: &left, general: &general)
    guard after != CPU.fastDeclined else {
      // Delivery moved RIP to the handler; an event leaves it at the instruction.
      rip = stateRaw.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self)
      if inPageStop == .delivered { left -= 1 }
      return nil
    }
    rip = after
    return left == 0 ? nil : (mapped, found)
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

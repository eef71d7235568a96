import Synchronization

/// One x86 CPU: architectural state, memory access through a software TLB, and instruction
/// execution. Not thread-safe: drive it from one thread.
public final class CPU {
  /// Which CPU this models.
  public let model: CPUModel
  /// The architectural state.
  public let state: CPUState
  /// Guest-physical memory.
  public let memory: any PhysicalMemory
  /// Instructions retired (a REP iteration counts as one).
  @exclusivity(unchecked) public var instructionsRetired: UInt64 = 0
  /// PAUSE instructions retired while `countsPauses` was on.
  @exclusivity(unchecked) public var pausesRetired: UInt64 = 0
  /// PAUSEs in a row each retired within `pauseLoopGap` instructions of the one before: how long
  /// the guest has been spinning without a break (pause-loop exiting, as VT-x's PLE_Gap and
  /// PLE_Window define it in cycles). The VMM resets it when it acts on it.
  @exclusivity(unchecked) public var pauseLoopLength: UInt64 = 0
  /// `instructionsRetired` at the last PAUSE.
  @exclusivity(unchecked) var lastPauseAt: UInt64 = 0
  /// The most instructions between two PAUSEs of one spin loop.
  public static let pauseLoopGap: UInt64 = 64
  /// Of those, the ones a pre-resolved fast handler completed (`CPU+FastPath.swift`).
  @exclusivity(unchecked) public internal(set) var fastPathRetired: UInt64 = 0
  /// Instructions decoded into the decode cache (first executions and re-decodes after a write to
  /// their page or a flush).
  @exclusivity(unchecked) public internal(set) var decodeCacheFills: UInt64 = 0
  /// Oracle mode: exceptions are returned as `.exception` events with the state as before the
  /// instruction, instead of being delivered.
  @exclusivity(unchecked) public var reportExceptions = false
  /// The time-stamp counter source for RDTSC/RDTSCP (default: instructions retired).
  @exclusivity(unchecked) public var readTSC: (() -> UInt64)?
  /// Set by an embedder whose other CPUs run on other host threads over the same guest memory:
  /// LOCK-prefixed instructions and XCHG with memory then update memory atomically
  /// (CPU+Atomics.swift). Off for a single CPU, where a plain update is already atomic.
  @exclusivity(unchecked) public var atomicUpdates = false
  /// The IGNNE# input: with CR0.NE clear, waiting x87 instructions run despite a pending
  /// unmasked exception instead of freezing with FERR# (`CPUEvent.floatingPointError`). The
  /// embedder sets it (a PC's chipset does after a write to port 0xF0, until FERR# falls); the
  /// CPU drops it when a new error sets FSW.ES again.
  @exclusivity(unchecked) public var ignoreNumericErrors = false
  /// IA32_APIC_BASE bit 8 (BSP), kept across resets: false for application processors.
  public var isBootstrapProcessor = true {
    didSet { applyBootstrapFlag() }
  }
  /// The binary translator running this CPU's code, if any (`CPU+Translation.swift`).
  @exclusivity(unchecked) var translator: (any BlockExecutor)?
  /// `run` ends (with `.budgetExhausted`, budget left) once the CPL is 3, before any user-level
  /// instruction runs: the hybrid engine runs user code elsewhere. Off: no effect.
  @exclusivity(unchecked) package var stopsAtUserLevel = false
  /// A locked instruction is executing (CPU+Atomics.swift).
  @exclusivity(unchecked) var lockedInstructionActive = false
  /// Its destination, read atomically, waiting for the write-back.
  @exclusivity(unchecked) var lockedUpdate: LockedUpdate?
  /// Its compare-and-exchange found the destination changed: run it again.
  @exclusivity(unchecked) var lockedUpdateFailed = false
  /// This CPU holds the process-wide bus lock of the fallback path.
  @exclusivity(unchecked) var holdsBusLock = false
  /// The system layer (MMU and its TLB, MSRs, CPUID, descriptor tables, event delivery): see
  /// `CPU+System.swift`. Its `cpuid` table is the one CPUID model (GP and system features).
  public let system: SystemUnit
  /// `system.mmu.tlb.entries`, cached for the paging fast path.
  let pagingTLB: UnsafeMutablePointer<SoftTLB.Entry>
  /// The paging TLB's flush count (`SoftTLB.flushCount`).
  let tlbFlushCounter: UnsafePointer<Int>

  // The host-page cache: physical page -> host pointer, direct mapped, one table for reads and one
  // for writes. Not a TLB (no linear addresses, no permissions): it saves the guest-memory lookup
  // behind `SoftTLB` hits and in unpaged modes.
  static let hostPageSlots = 256
  let hostReadPage: UnsafeMutablePointer<UInt64>
  let hostReadPointer: UnsafeMutablePointer<UnsafeMutableRawPointer?>
  let hostWritePage: UnsafeMutablePointer<UInt64>
  let hostWritePointer: UnsafeMutablePointer<UnsafeMutableRawPointer?>

  /// Completed I/O and MMIO accesses of the current instruction (replayed on re-execution).
  @exclusivity(unchecked) var ioLog: [UInt64] = []
  @exclusivity(unchecked) var ioIndex = 0
  /// Answers an I/O or MMIO access on the spot instead of ending `run` with its event (the
  /// engine's link to the VMM's lightweight exits): the value read (anything for a write), or nil
  /// to report the event as usual. Called at most once per access; a re-executed instruction
  /// replays the answer like a completed event.
  @exclusivity(unchecked) public var accessResponder: ((CPUEvent) -> UInt64?)?
  /// Set by `complete(value:)` for the pending read.
  @exclusivity(unchecked) var pendingRead = false

  /// Decoded instructions by physical address (invalidated by writes to their page).
  let decodeCache: DecodeCache
  /// The decode cache's tables, cached for the fast path.
  let cacheEntries: UnsafeMutablePointer<DecodeCache.Entry>
  let cachePageGeneration: UnsafeMutablePointer<Atomic<UInt32>>
  /// The decode cache's own flush epoch (`DecodeCache.epoch`).
  let cacheEpoch: UnsafeMutablePointer<UInt32>
  /// `state.raw`, cached (saves a load on every register access).
  let stateRaw: UnsafeMutableRawPointer
  /// The highest offset the fast path lets a 16/32-bit access reach without the general path:
  /// 0xFFFF on the 8086 (no limit checks, offsets wrap at 64 KiB), else no bound beyond the limit.
  let legacyOffsetLimit: UInt64
  /// `model.physicalAddressMask`, with bit 20 cleared while the A20 gate is closed.
  @exclusivity(unchecked) var addressMask: UInt64

  /// The A20 gate (PC chipset, not the CPU): while closed, address line 20 is forced to 0 for every
  /// unpaged access, so real-mode addresses past 1 MiB wrap to 0 as on an 8086. The embedder drives
  /// it from the keyboard controller and port 0x92. Open at power-on, as in QEMU.
  public var a20Enabled = true {
    didSet {
      guard a20Enabled != oldValue else { return }
      addressMask = a20Enabled ? model.physicalAddressMask : model.physicalAddressMask & ~(1 << 20)
      invalidateTLB()
    }
  }

  /// Real mode: CR0.PE clear.
  @inlinable var isRealMode: Bool { state.cr0 & 1 == 0 }

  /// A CPU of `model` over `memory`, in its reset state. `codePages` is the write-stamp table to
  /// share with the embedder's other CPUs and writers (nil: the CPU keeps its own).
  public init(model: CPUModel, memory: any PhysicalMemory, codePages: CodePageTable? = nil) {
    self.decodeCache = DecodeCache(pages: codePages)
    decodeCache.model = model
    self.model = model
    self.legacyOffsetLimit = model == .i8086 ? 0xFFFF : ~0
    self.memory = memory
    self.state = CPUState()
    self.stateRaw = state.raw
    self.cacheEntries = decodeCache.entries
    self.cachePageGeneration = decodeCache.pageGeneration
    self.cacheEpoch = decodeCache.epoch
    self.addressMask = model.physicalAddressMask
    self.system = SystemUnit(
      state: state, memory: memory, features: .interpreterModel)
    self.pagingTLB = system.mmu.tlb.entries
    self.tlbFlushCounter = UnsafePointer(system.mmu.tlb.flushCounter)
    system.mmu.codeCache = decodeCache
    hostReadPage = .allocate(capacity: CPU.hostPageSlots)
    hostReadPointer = .allocate(capacity: CPU.hostPageSlots)
    hostWritePage = .allocate(capacity: CPU.hostPageSlots)
    hostWritePointer = .allocate(capacity: CPU.hostPageSlots)
    ioLog.reserveCapacity(16)
    invalidateTLB()
    resetReal(cs: 0xF000, ip: 0xFFF0)
    state[offset: CPUStateLayout.xcr0] = 1
    system.hostTSC = { [unowned self] in self.hostTimeStampCounter() }
    system.taskDebugTrapRequested = { [unowned self] in self.requestTaskDebugTrap() }
    MSRFile.reset(state)
  }

  deinit {
    hostReadPage.deallocate()
    hostReadPointer.deallocate()
    hostWritePage.deallocate()
    hostWritePointer.deallocate()
  }

  /// Forgets every cached host page pointer and decoded instruction (after the memory map changes
  /// or guest memory was modified behind the CPU's back, e.g. by a loader or DMA).
  public func invalidateTLB() {
    system.mmu.tlb.flushAll()
    decodeCache.flush()
    forgetHostPages()
  }

  /// Forgets every cached translation and host page pointer but keeps decoded instructions (keyed
  /// by physical address and code mode): for a change of paging or privilege alone.
  public func invalidateTranslationsKeepingDecodedCode() {
    system.mmu.tlb.flushAll()
    forgetHostPages()
  }

  /// Forgets every decoded instruction (and so every translation made from one: their code-page
  /// generations no longer match), keeping the TLB and the host-page cache: for code rewritten
  /// behind the CPU's back while the page tables and the memory map stayed the same.
  public func invalidateDecodedCode() {
    decodeCache.flush()
  }

  /// Empties the host-page cache.
  func forgetHostPages() {
    for i in 0..<CPU.hostPageSlots {
      hostReadPage[i] = ~0
      hostWritePage[i] = ~0
      hostReadPointer[i] = nil
      hostWritePointer[i] = nil
    }
  }

  /// Real mode at CS:IP with every other segment 0, FLAGS = 2 (the 8086 reads bits 12-15 as 1).
  public func resetReal(cs: UInt16, ip: UInt16) {
    state.cr0 = model == .host64 ? 0x6000_0010 : (model == .i80386 ? 0x10 : 0)
    state.efer = 0
    state.cpl = 0
    for s in SegmentRegister.allCases {
      state.setSegment(s, .real(0, code: s == .cs))
    }
    state.setSegment(.ldtr, SegmentCache(selector: 0, base: 0, limit: 0xFFFF, attributes: 0x82))
    state.setSegment(.tr, SegmentCache(selector: 0, base: 0, limit: 0xFFFF, attributes: 0x8B))
    state.setSegment(.cs, .real(cs, code: true))
    state.rip = UInt64(ip)
    state.rflags = normalizeFlags(Flags.reserved1)
    state.idtr = (0, 0x3FF)
    state.gdtr = (0, 0xFFFF)
    state.codeMode = .bits16
    flatUser = false
    ioLog.removeAll(keepingCapacity: true)
  }

  /// The state after RESET (a machine reset, not INIT): real mode at F000:FFF0 with CS based at
  /// 0xFFFF0000, CR0 at its reset value and CR2-CR4 zero, DR0-DR3 zero, DR6 0xFFFF0FF0, DR7 0x400,
  /// the MSRs at their reset values, no pending event, and nothing cached. The embedder then
  /// loads whatever boot state it wants on top.
  public func powerOnReset() {
    resetReal(cs: 0xF000, ip: 0xFFF0)
    var cs = state.segment(.cs)
    cs.base = 0xFFFF_0000
    state.setSegment(.cs, cs)
    state.cr2 = 0
    state.cr3 = 0
    state.cr4 = 0
    for n in 0..<8 { state[offset: CPUStateLayout.debugRegisters + n * 8] = 0 }
    state[offset: CPU.dr6Offset] = 0xFFFF_0FF0
    state[offset: CPU.dr7Offset] = 0x400
    MSRFile.reset(state)
    resetSIMDState()
    applyBootstrapFlag()
    injectedFault = nil
    retiredEvent = nil
    nmiBlocked = false
    pendingRead = false
    pendingShadow = false
    debugShadow = false
    pendingDebugShadow = false
    taskDebugTrapPending = false
    dataBreakpointHits = 0
    refreshBreakpoints()
    invalidateTLB()
  }

  private func applyBootstrapFlag() {
    let o = CPUStateLayout.apicBase
    state[offset: o] = isBootstrapProcessor ? state[offset: o] | 1 << 8 : state[offset: o] & ~(1 << 8)
  }

  /// Oracle mode: 64-bit code at CPL 3, flat segments, linear == physical, no paging;
  /// exceptions are reported, not delivered. CR0 as Linux keeps it for its processes (NE and
  /// MP set: x87 errors raise #MF).
  public func configureFlatUser64() {
    state.cr0 = CR0.pg | CR0.ne | CR0.et | CR0.mp | CR0.pe
    state.cr4 = 0x20 | 0x200 | 0x400
    state.efer = 0x500
    state.cpl = 3
    let code = SegmentCache(selector: 0x33, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA0FB)
    let data = SegmentCache(selector: 0x2B, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC0F3)
    state.setSegment(.cs, code)
    for s in [SegmentRegister.ss, .ds, .es] { state.setSegment(s, data) }
    state.setSegment(.fs, SegmentCache(selector: 0, base: 0, limit: 0xFFFF_FFFF, attributes: 0))
    state.setSegment(.gs, SegmentCache(selector: 0, base: 0, limit: 0xFFFF_FFFF, attributes: 0))
    state.rflags = Flags.reserved1 | Flags.if
    state.codeMode = .bits64
    reportExceptions = true
    flatUser = true
    ioLog.removeAll(keepingCapacity: true)
  }

  /// True after `configureFlatUser64()`: no paging, linear == physical.
  @exclusivity(unchecked) public internal(set) var flatUser = false

  /// Answers the pending `.portIn`/`.mmioRead` event; the next `step()` re-executes the instruction
  /// with this value.
  public func complete(value: UInt64) {
    ioLog.append(value)
  }

  /// Executes one instruction (or one REP iteration), delivering any exception it raises.
  /// Returns nil when it simply retired.
  @discardableResult
  public func step() -> CPUEvent? {
    if injectedFault != nil { return entryEvent() }
    refreshBreakpoints()
    return stepInline()
  }

  /// One instruction with exception handling; `cached` is the valid decode-cache entry at RIP when
  /// the caller already looked it up (and its fast handler, if any, declined), `decoded` the
  /// instruction at RIP when the caller knows it (a binary translator's callout).
  @inline(__always)
  func stepInline(cached: CacheEntry? = nil, decoded: UnsafeMutablePointer<DecodedInstruction>? = nil) -> CPUEvent? {
    let startRIP = state.rip
    ioIndex = 0
    // Debug state that needs a look at this instruction: TF, RF or armed breakpoints (rare).
    let startFlags = stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self)
    let debugAttention = startFlags & (Flags.tf | Flags.rf) != 0 || debugChecksNeeded
    if debugAttention, let event = debugFaultBeforeInstruction(flags: startFlags) { return event }
    do throws(Fault) {
      if let cached {
        let next = startRIP &+ UInt64(cached.pointee.instruction.length)
        lastNextRIP = next
        try execute(&cached.pointee.instruction, nextRIP: next)
      } else if let decoded {
        let next = startRIP &+ UInt64(decoded.pointee.length)
        lastNextRIP = next
        try execute(&decoded.pointee, nextRIP: next)
      } else {
        try executeOne()
      }
      if !ioLog.isEmpty { ioLog.removeAll(keepingCapacity: true) }
      instructionsRetired &+= 1
      if interruptShadow || pendingShadow {
        interruptShadow = pendingShadow
        pendingShadow = false
        debugShadow = pendingDebugShadow
        pendingDebugShadow = false
      }
      if debugAttention { return debugTrapAfterRetirement(startFlags: startFlags) }
      if let e = retiredEvent {
        retiredEvent = nil
        return e
      }
      return nil
    } catch {
      if debugAttention {
        softwareInterruptDelivered = false
        dataBreakpointHits = 0
      }
      switch error {
      case .event(let e):
        state.rip = startRIP
        return e
      case .exception(let vector, let code):
        ioLog.removeAll(keepingCapacity: true)
        pendingShadow = false
        interruptShadow = false
        state.rip = startRIP
        return raise(vector: vector, errorCode: code, nextRIP: lastNextRIP)
      }
    }
  }

  /// Whether cached instructions use the pre-resolved fast handlers (`FastForm`, the default) or
  /// all take the general `execute` path. Both give the same results; turning the fast path off
  /// exists to prove that (tests, `trivisor difftest --no-fast-path`) and to measure what it buys.
  public var fastPathEnabled: Bool {
    get { decodeCache.classifiesFastForms }
    set {
      decodeCache.classifiesFastForms = newValue
      decodeCache.flush()
    }
  }

  /// Whether PAUSE is counted (`pausesRetired`, `pauseLoopLength`), for pause-loop exiting: then
  /// it leaves the fast path (a callout under dbt). Off by default, when PAUSE is a fast NOP.
  /// Changing it forgets this CPU's decoded and translated code, which was classified under the
  /// old setting.
  public var countsPauses: Bool {
    get { decodeCache.countsPauses }
    set {
      guard newValue != decodeCache.countsPauses else { return }
      decodeCache.countsPauses = newValue
      decodeCache.flush()
    }
  }

  /// Runs until an event or until `budget` instructions retired.
  public func run(budget: UInt64) -> CPUEvent {
    if injectedFault != nil, let e = entryEvent() { return e }
    refreshBreakpoints()
    var left = budget
    while left > 0 {
      if stopsAtUserLevel && runsAtUserLevel { break }
      if let translator, translatedCodeMode != nil {
        // Translated blocks first; the instruction they stop at (one they do not cover, or one
        // that side-exited) runs in the interpreter, then translated code again.
        let (steps, event) = translator.runTranslated(self, budget: left)
        left -= steps
        if let event { return event }
        if left == 0 || stopsAtUserLevel && runsAtUserLevel { break }
        if let e = stepInline() { return e }
        left -= 1
        continue
      }
      let (steps, pending, event) = runFastInPage(budget: left)
      left -= steps
      if let event { return event }
      if left == 0 { break }
      if let e = stepInline(cached: pending) { return e }
      left -= 1
    }
    return .budgetExhausted
  }

  /// Runs cached instructions of the current code page back to back and returns how many steps
  /// of the budget they took (at most `budget`), with RIP committed. Fast forms run through their
  /// handlers; an instruction without one (or whose handler declines) that `runsInPage` allows
  /// runs on the general path in place (`executeInPage`), after which the loop enters the page of
  /// the new RIP again. It stops at the first other instruction (returned as `pending`, its valid
  /// cache entry, so the caller need not look it up again), after a fault the general path
  /// delivered, when RIP leaves the cacheable pages, or with an `event` (an exception reported,
  /// an MMIO access) for `run` to return.
  ///
  /// Within one page the linear-to-physical translation and the page's decode-cache generation
  /// cannot change: fast handlers never write CR3, CPL, the code mode, a segment register or a
  /// page that holds cached code (those pages are kept out of the write side of the host-page
  /// cache), so both are looked up once per page.
  @inline(__always)
  func runFastInPage(budget: UInt64) -> (steps: UInt64, pending: CacheEntry?, event: CPUEvent?) {
    guard !interruptShadow,
      stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self) & (Flags.tf | Flags.rf) == 0,
      !debugChecksNeeded
    else { return (0, nil, nil) }
    guard stateRaw.load(fromByteOffset: CPUStateLayout.codeMode, as: UInt64.self) == 64 else {
      return runFastInPageLegacy(budget: budget)
    }
    return runFastInPageLong(budget: budget)
  }

  /// `runFastInPage` for 64-bit code, out of line like `runFastInPageLegacy` (inlined into `run`,
  /// the loop competed with everything else there for registers).
  @inline(never)
  func runFastInPageLong(budget: UInt64) -> (steps: UInt64, pending: CacheEntry?, event: CPUEvent?) {
    var rip = stateRaw.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self)
    var left = budget
    var general: UInt64 = 0
    var pending: CacheEntry?
    inPageStop = .none
    while left > 0 {
      // Enter the page of RIP.
      guard rip & 0xFFF <= 0x1000 - 15, isCanonical(rip), let physical = quickTranslate(rip, kind: .execute) else {
        break
      }
      // RIP stays in the page's cacheable window (all 15 bytes in the page) exactly while
      // `rip - linearPage <= 0x1000 - 15`, and then its physical address is `physicalPage | that`.
      let linearPage = rip & ~0xFFF
      let physicalPage = physical & ~0xFFF
      let generation = DecodeCache.generation(
        cachePageGeneration, epoch: cacheEpoch.pointee, ofPageHolding: physicalPage)
      guard let e = DecodeCache.hit(cacheEntries, physical, .bits64, generation: generation) else { break }
      guard
        runWindow(
          FastLong.self, .bits64, from: e, rip: &rip, windowStart: linearPage, span: 0x1000 - 15,
          physicalPage: physicalPage, generation: generation, left: &left, general: &general, pending: &pending)
      else { break }
    }
    materializeFlags()
    stateRaw.storeBytes(of: rip, toByteOffset: CPUStateLayout.rip, as: UInt64.self)
    return finishInPage(budget: budget, left: left, general: general, pending: pending)
  }

  /// `runFastInPage` for 16- and 32-bit code (real, protected, virtual-8086 and compatibility
  /// mode). CS cannot change inside (no fast form loads a segment register), so its base and limit
  /// are read once; an instruction runs from the decode cache only where `executeGeneral` would
  /// have cached it: all 15 bytes from EIP within CS's limit (and below 64 KiB in 16-bit code)
  /// and within one linear page.
  @inline(never)
  func runFastInPageLegacy(budget: UInt64) -> (steps: UInt64, pending: CacheEntry?, event: CPUEvent?) {
    let mode: CodeMode =
      stateRaw.load(fromByteOffset: CPUStateLayout.codeMode, as: UInt64.self) == 32 ? .bits32 : .bits16
    let csBase = state.segmentBase(1)
    // The highest EIP + 15 the cacheable window allows.
    let end = Swift.min(state.segmentLimit(1), mode == .bits16 ? 0xFFFF : 0xFFFF_FFFF)
    var rip = stateRaw.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self)
    var left = budget
    var general: UInt64 = 0
    var pending: CacheEntry?
    inPageStop = .none
    while left > 0 {
      guard rip &+ 15 <= end else { break }
      let linear = (csBase &+ rip) & 0xFFFF_FFFF
      guard linear & 0xFFF <= 0x1000 - 15, let physical = quickTranslate(linear, kind: .execute) else { break }
      // The EIP at which the page starts (wrapping when CS's base puts the page start below EIP
      // 0): an EIP is in the window of this page (all 15 bytes in the page and within `end`)
      // exactly while `eip - pageEIP <= span`, and its physical address is then `physicalPage |
      // (eip - pageEIP)` (a page never straddles the 4 GiB wrap of linear addresses).
      let pageEIP = rip &- (linear & 0xFFF)
      let span = Swift.min(0x1000 - 15, (end &- 15) &- pageEIP)
      let physicalPage = physical & ~0xFFF
      let generation = DecodeCache.generation(
        cachePageGeneration, epoch: cacheEpoch.pointee, ofPageHolding: physicalPage)
      guard let e = DecodeCache.hit(cacheEntries, physical, mode, generation: generation) else { break }
      guard
        runWindow(
          FastLegacy.self, mode, from: e, rip: &rip, windowStart: pageEIP, span: span, physicalPage: physicalPage,
          generation: generation, left: &left, general: &general, pending: &pending)
      else { break }
    }
    materializeFlags()
    stateRaw.storeBytes(of: rip, toByteOffset: CPUStateLayout.rip, as: UInt64.self)
    return finishInPage(budget: budget, left: left, general: general, pending: pending)
  }

  /// The page loops' inner loop, shared by 64-bit and legacy code (`M`, `mode`): runs cached
  /// instructions from `first` (the entry at `rip`) while RIP stays in the page's window, i.e.
  /// `rip - windowStart <= span`, where its physical address is `physicalPage | (rip -
  /// windowStart)`. Finds the next entry through the current one's links (`successor` after a
  /// fall-through, `branchTarget` and then the hashed slot after a branch or a general-path
  /// instruction) and checks its tag and generation. Returns true when RIP left the window or a
  /// general-path instruction may have changed the page (the caller enters the page of RIP), false
  /// when the loop must end (budget used up, a miss, a stop for `run`).
  @inline(__always)
  func runWindow<M: FastMode>(
    _: M.Type, _ mode: CodeMode, from first: CacheEntry, rip: inout UInt64, windowStart: UInt64, span: UInt64,
    physicalPage: UInt64, generation: UInt32, left: inout UInt64, general: inout UInt64, pending: inout CacheEntry?
  ) -> Bool {
    var e = first
    while true {
      let fallThrough = rip &+ UInt64(e.pointee.instruction.length)
      let next = executeFast(e, M.self, nextRIP: fallThrough)
      if _fastPath(next == fallThrough) {
        // The common case: on to the instruction that follows, through the entry's link.
        rip = next
        left -= 1
        if left == 0 { return false }
        let offset = rip &- windowStart
        guard offset <= span else { return true }
        guard
          let found = DecodeCache.hit(e.pointee.successor, holding: physicalPage | offset, mode, generation: generation)
        else { return false }
        e = found
        continue
      }
      if next == CPU.fastDeclined {
        // The general path ran it, and the general instructions after it, and found the entry
        // at the new RIP when it is in the window.
        guard
          let (mapped, found) = declinedInPage(
            e, rip: &rip, left: &left, general: &general, pending: &pending, windowStart: windowStart, span: span,
            physicalPage: physicalPage, generation: generation, mode: mode)
        else { return false }
        guard mapped, rip &- windowStart <= span else { return true }
        guard let found else { return false }
        e = found
        continue
      } else {
        rip = next
        left -= 1
        if left == 0 { return false }
      }
      let offset = rip &- windowStart
      guard offset <= span else { return true }
      let physical = physicalPage | offset
      let link = rip == fallThrough ? e.pointee.successor : e.pointee.branchTarget
      guard
        let found = DecodeCache.hit(link, holding: physical, mode, generation: generation)
          ?? DecodeCache.hit(cacheEntries, physical, mode, generation: generation)
      else { return false }
      e = found
    }
  }

  /// An event reported after the instruction retired (HLT, VMCALL, a MOV to CR8 below
  /// `taskPriorityThreshold`).
  @exclusivity(unchecked) var retiredEvent: CPUEvent?
  /// True right after an instruction that blocks interrupts for one instruction (STI setting IF,
  /// MOV SS, POP SS): the embedder must not deliver an external interrupt at this boundary.
  @exclusivity(unchecked) public internal(set) var interruptShadow = false
  @exclusivity(unchecked) var pendingShadow = false
  /// NMIs are blocked: an NMI was delivered and no IRET has executed since. Settable for an
  /// embedder that moves the guest between this CPU and another (the hybrid engine's sides).
  @exclusivity(unchecked) public var nmiBlocked = false
  /// MOV SS and POP SS also hold debug traps (single-step) back for one instruction; STI does not.
  @exclusivity(unchecked) var debugShadow = false
  @exclusivity(unchecked) var pendingDebugShadow = false
  /// Set when INT n/INT3/INTO/INT1 started with TF set and delivers its interrupt (which clears TF:
  /// no single-step trap); consumed after retirement, cleared when the instruction faults.
  @exclusivity(unchecked) var softwareInterruptDelivered = false
  /// DR0-DR3 armed by DR7 as instruction breakpoints (bit n = DRn) and as data breakpoints.
  @exclusivity(unchecked) var executeBreakpoints: UInt8 = 0
  @exclusivity(unchecked) var dataBreakpoints: UInt8 = 0
  @exclusivity(unchecked) var ioBreakpoints: UInt8 = 0
  /// A task switch into a TSS with its T bit set: #DB before the new task's first instruction.
  @exclusivity(unchecked) var taskDebugTrapPending = false
  /// Any of the above: the per-instruction debug checks must run (and the fast loop steps aside).
  @exclusivity(unchecked) var debugChecksNeeded = false
  /// Data and I/O breakpoints the current instruction hit (a #DB trap after it retires).
  @exclusivity(unchecked) var dataBreakpointHits: UInt8 = 0

  // MARK: Embedder controls (see CPU+Interrupts.swift)

  /// Instructions that become events instead of executing in the model.
  @exclusivity(unchecked) public var traps: CPUTraps = []
  /// Exception vectors (bit n = vector n) returned as `.exception` with the state as before the
  /// instruction, instead of being delivered through the IDT.
  @exclusivity(unchecked) public var exceptionTrapBitmap: UInt32 = 0
  /// The task-priority threshold (VMX's TPR threshold): a MOV to CR8 that leaves CR8 below it ends
  /// `run` with `.taskPriorityLowered` once it retired, so the embedder can deliver an interrupt
  /// the task priority held back before the next instruction. 0 (the default): no such event.
  @exclusivity(unchecked) public var taskPriorityThreshold: UInt64 = 0
  /// MSRs whose RDMSR/WRMSR become `.msrRead`/`.msrWrite` events; all others are answered by the model.
  @exclusivity(unchecked) public var trappedMSRReads: Set<UInt32> = []
  @exclusivity(unchecked) public var trappedMSRWrites: Set<UInt32> = []
  /// A fault the embedder answered an event with (`completeWithFault`), raised at the next step.
  @exclusivity(unchecked) var injectedFault: Fault?
  /// RIP after the instruction being executed (for trap-style exceptions such as the 8086's #DE).
  @exclusivity(unchecked) var lastNextRIP: UInt64 = 0
  /// Why the page loop stopped after an instruction it ran on the general path (`CPU+GeneralInPage.swift`).
  @exclusivity(unchecked) var inPageStop: InPageStop = .none
}

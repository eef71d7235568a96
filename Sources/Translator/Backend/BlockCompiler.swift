import X86

/// The back end: turns a `GuestBlock` into host x86-64 code.
///
/// Generated code is a C function `(state, budget) -> budget used`: RBX holds the CPU state page
/// (`CPUStateLayout`, with the paging TLB after it), R9 the instruction budget left and R10 the
/// guest's arithmetic flags, from the C entry across every linked block to the epilogue (which
/// merges the flags into the state page and returns how much of the budget went: instructions
/// completed, a callout's included). A block takes its whole length from the budget at its entry;
/// a side exit, or a conditional branch taken out of the middle of a superblock, gives back what
/// did not run. Up to six guest registers, the ones the block uses most, live in RBP, R11, R12,
/// R13, R14 and R15 from the block's start to each of its exits (loaded after the entry checks,
/// written back before every exit); the others are used in place in the state page. A
/// branch back to the block's own start keeps them there (and skips the code-page check: a store
/// to a page holding code never happens in generated code). In `sbt`, the blocks of a register
/// region (`RegisterRegion`) share one assignment chosen ahead of time, and a direct branch between
/// two of them keeps the registers live (register-live entries and links).
/// Every block has a *chained entry* after its prologue that checks its code page's generation
/// and the budget, and before it a *cross-page entry* that first checks, in the paging TLB's
/// execute entry for the block's linear page, that the page still maps to the physical page the
/// block was translated from. Direct branches are patched to jump straight to their target's
/// chained entry (same linear page: the mapping cannot differ from the one that brought control
/// here) or cross-page entry (execute & link), and RET looks its target up in an inline table of
/// cross-page entries, so loops, calls and returns run without returning to the dispatcher. Guest registers live in the state page; each guest instruction becomes the
/// host instruction of the same operation and size (x86 on x86: results and flags come from the
/// host ALU), wrapped in the checks the interpreter's fast path makes:
///
/// - memory operands go through the paging TLB inline (RAM-tag compare that also catches a page
///   crossing, addend), a read's miss through a page walk called from the code; stores through
///   the write table, the write host-page cache and the code-page byte, so a store to a page
///   holding code never happens here; nearby reads through the same registers share one lookup
///   (`BlockCompiler+ReadGroups.swift`);
/// - any check that fails is a *side exit*: the code returns with RIP at that instruction and the
///   state exactly as before it (nothing of it was written yet), and the interpreter runs it in
///   full (walks, faults, MMIO, self-modifying code);
/// - arithmetic flags stay in the host's RFLAGS after the instruction that set them and are only
///   merged into the state's RFLAGS when something would clobber them, when a side exit could follow
///   or at the block's end; a flag result nothing reads before the next full flag write is never
///   stored (dead-flag elimination). Captured flags are kept in R10 as LAHF/SETO left them and
///   turned into an RFLAGS image only where one is needed (`CapturedFlags`).
///
/// The return value is the number of guest instructions the code completed.
package struct BlockCompiler {
  package struct Tables {
    let hostWritePage: UInt64
    let hostWritePointer: UInt64
    let hostReadPage: UInt64
    let hostReadPointer: UInt64
    let pageHasCode: UInt64
    let pageGeneration: UInt64
    let epoch: UInt64
    let entryStride: Int
    let tagOffset: Int
    let ramTagOffset: Int
    let addendOffset: Int
    let physicalPageOffset: Int
    let hostPageSlots: Int
    let codePageSlots: Int

    package init(_ t: TranslationTables) {
      hostWritePage = UInt64(UInt(bitPattern: t.hostWritePage))
      hostWritePointer = UInt64(UInt(bitPattern: t.hostWritePointer))
      hostReadPage = UInt64(UInt(bitPattern: t.hostReadPage))
      hostReadPointer = UInt64(UInt(bitPattern: t.hostReadPointer))
      pageHasCode = UInt64(UInt(bitPattern: t.pageHasCode))
      pageGeneration = UInt64(UInt(bitPattern: t.pageGeneration))
      epoch = UInt64(UInt(bitPattern: t.epoch))
      entryStride = t.entryStride
      tagOffset = t.tagOffset
      ramTagOffset = t.ramTagOffset
      addendOffset = t.addendOffset
      physicalPageOffset = t.physicalPageOffset
      hostPageSlots = t.hostPageSlots
      codePageSlots = t.codePageSlots
    }
  }

  // MARK: What gets translated

  /// Whether the back end translates `ins` (classified `form`) in `mode` code.
  package static func translates(_ form: FastForm, _ ins: DecodedInstruction, mode: TranslatedCodeMode) -> Bool {
    guard operandsTranslate(ins, mode: mode) else { return false }
    switch form {
    case .generic: return false
    case .jcc, .jmpRel, .callRel, .ret, .pushR, .popR, .pushI:
      // 32-bit code: 32-bit branches and stack slots (a 16-bit one truncates IP: the interpreter's).
      return mode == .long64 || ins.operandSize == 4
    case .imulR, .imulM:
      // Host IMUL has no byte form with two operands; the classifier never makes one.
      return ins.operandSize >= 2
    case .shiftR:
      // A byte or word SHL/SHR by more than its width leaves CF undefined on the host (the model
      // clears it): the interpreter's.
      return
        !(Self.shiftCountMayExceedWidth(ins) && ins.operands.1.kind == .immediate
        && ins.immediate & 31 > UInt64(8 * ins.operandSize))
    default: return true
    }
  }

  /// Whether `ins`'s memory operand, if any, is one generated code reaches: in 64-bit code any; in
  /// 32-bit code one with 32-bit addressing (through DS or SS, which the translated code mode
  /// guarantees flat, or through ES, CS, FS or GS, checked at run time: `linearAddress`).
  static func operandsTranslate(_ ins: DecodedInstruction, mode: TranslatedCodeMode) -> Bool {
    guard mode != .long64, ins.hasMemoryOperand else { return true }
    return ins.addressSize == 4
  }

  /// A byte or word SHL/SHR/SAL (whose count, masked to 5 bits, can exceed the operand's width).
  static func shiftCountMayExceedWidth(_ ins: DecodedInstruction) -> Bool {
    ins.operandSize <= 2 && [.shl, .sal, .shr].contains(ins.operation)
  }

  /// Whether the block ends after `g` (control leaves straight-line code, or a callout).
  package static func endsBlock(_ g: GuestInstruction) -> Bool {
    switch g.form {
    case .jcc, .jmpRel, .callRel, .ret: return true
    case .generic:
      switch g.special {
      case nil, .jumpIndirect, .callIndirect, .privilegeTransfer: return true
      default: return false
      }
    default: return false
    }
  }

  /// The branch target of a direct branch (in 32-bit code, EIP wraps at 4 GiB).
  static func staticTarget(_ g: GuestInstruction, mode: TranslatedCodeMode) -> UInt64? {
    switch g.form {
    case .jcc, .jmpRel, .callRel:
      let target = g.nextRIP &+ g.instruction.immediate
      return mode == .long64 ? target : target & 0xFFFF_FFFF
    default: return nil
    }
  }

  static func isCanonical(_ a: UInt64) -> Bool { UInt64(bitPattern: Int64(bitPattern: a << 16) >> 16) == a }

  // MARK: Compiling

  /// Host code for one block.
  package struct Output {
    package var code: [UInt8]
    /// Where the chained entry starts (what same-page links jump to).
    package var chainEntry: Int
    /// Where the cross-page entry starts (what other links and the indirect table jump to).
    package var crossEntry: Int
    /// rel32 fields of branches that may be linked: (offset of the field, target RIP). Each
    /// initially jumps to its own exit to the dispatcher.
    package var links: [(field: Int, target: UInt64)]
    /// Guest instructions emitted as a constant (constant folding).
    package var folded: Int
    /// Where the host-flags entry starts, when the block has one (`CrossBlockFlags`): what
    /// `hostFlagsLinks` jump to.
    package var hostFlagsEntry: Int? = nil
    /// rel32 fields of branches to a block of the same page whose flags are dead at its start,
    /// taken with the guest's flags in the host's RFLAGS, not captured: each may only be linked to
    /// that block's host-flags entry, and initially jumps to an exit that captures them.
    package var hostFlagsLinks: [(field: Int, target: UInt64)] = []
    /// Where the register-live entry starts, when the block has one (`RegisterRegion`): what
    /// `registerLiveLinks` jump to.
    package var registerLiveEntry: Int? = nil
    /// rel32 fields of branches to a block of the same page and register region, taken with the
    /// region's guest registers still in their host registers, not written back: each may only be
    /// linked to that block's register-live entry, and initially jumps to code that writes them
    /// back and leaves through an ordinary link.
    package var registerLiveLinks: [(field: Int, target: UInt64)] = []
    /// Where the entry for both starts, when the block has one: register-live and host-flags
    /// (`registerLiveHostFlagsLinks` jump to it).
    package var registerLiveHostFlagsEntry: Int? = nil
    /// rel32 fields of branches to a block of the same page and region whose flags are dead at
    /// its start, taken with both the registers live and the guest's flags in the host's RFLAGS:
    /// each may only be linked to that block's register-live host-flags entry, and initially
    /// jumps to a host-flags exit (registers written back).
    package var registerLiveHostFlagsLinks: [(field: Int, target: UInt64)] = []
  }

  var a = X64Assembler()
  let tables: Tables
  let user: Bool
  let block: GuestBlock
  /// The kind of code (`block.mode`).
  var mode: TranslatedCodeMode { block.mode }
  /// Bytes per stack slot: PUSH, POP, CALL and RET move 8 in 64-bit code, 4 in 32-bit code.
  var stackSlot: Int { mode == .long64 ? 8 : 4 }
  /// The code page's generation the block was translated from (checked at the chained entry).
  let generation: UInt32
  var links: [(field: Int, target: UInt64)] = []
  /// The host-flags entry's out-of-line exit on a short budget, when the block has the entry.
  var hostFlagsShortBudget: X64Assembler.Label?
  /// The host-flags entry's offset, when the block has one.
  var hostFlagsEntryOffset: Int?
  /// Branches that may only be linked to a host-flags entry (`Output.hostFlagsLinks`).
  var hostFlagsLinks: [(field: Int, target: UInt64)] = []
  /// What the static translator knows beyond this block; nil in `dbt`.
  let crossBlock: CrossBlockFlags?
  /// The register region the block belongs to (`sbt`), nil: it picks its own cache registers.
  let region: RegisterRegion?
  /// The register-live entry's offset, when the block has one.
  var registerLiveEntryOffset: Int?
  /// Branches that may only be linked to a register-live entry (`Output.registerLiveLinks`).
  var registerLiveLinks: [(field: Int, target: UInt64)] = []
  /// The register-live host-flags entry's offset, when the block has one.
  var registerLiveHostFlagsEntryOffset: Int?
  /// Branches that may only be linked to a register-live host-flags entry.
  var registerLiveHostFlagsLinks: [(field: Int, target: UInt64)] = []
  /// The block counts the instructions it completes in the state page
  /// (`CPUStateLayout.translatorDynamicInstructions`): blocks `sbt` compiles at run time, so that
  /// the split between file code and run-time code stays exact while they chain to each other.
  let countsInstructions: Bool
  /// The inline indirect-branch table generated code reads: `IndirectBranchTable.slots` entries of
  /// (RIP, cross-page entry address), one table per privilege class.
  let indirectTable: UInt64
  /// The C functions generated code calls and their context.
  package struct Helpers {
    /// The callout: `(context, next RIP, decoded instruction) -> 0 (go on), 1 (leave the block)
    /// or an indirect-branch table`.
    package var function: UInt64
    /// What every helper gets first (the `DynamicTranslator`).
    package var context: UInt64
    /// The block's final instruction, decoded, when the block ends in a callout (else 0).
    package var instruction: UInt64
    /// `(context, linear address, size) -> host address or 0`: a read's inline TLB lookup missed.
    package var tlbMiss: UInt64
    /// `(context, port | size << 16 | OUT << 24 | instructions left in the block << 32, value
    /// written) -> value read, or bit 63 set to side-exit`: IN and OUT (`emitPortIO`).
    package var portIO: UInt64
    /// `(context, next RIP, PrivilegeTransfer raw value) -> 0 (it faulted: side-exit), 1 (it
    /// retired: leave) or the indirect-branch table to go on through` (`emitPrivilegeTransfer`).
    package var privilegeTransfer: UInt64
  }
  let callout: Helpers
  /// Guest register -> host register for the block's most used registers.
  var cached = [HostRegister?](repeating: nil, count: 16)
  /// The same pairs by guest register number (loads and write-backs in a fixed order), set once
  /// by `allocateRegisters` (every exit writes them back: no array built per exit).
  var cachedRegisters: [(guest: Int, host: HostRegister)] = []
  /// The cached pairs whose guest register some instruction of the block may write: the only
  /// ones an exit stores back (the others still hold what the entry loaded from the state page).
  var writtenCachedRegisters: [(guest: Int, host: HostRegister)] = []
  /// Host registers that hold guest registers, in allocation order.
  static let cacheRegisters: [HostRegister] = [.rbp, .r11, .r12, .r13, .r14, .r15]
  /// Host RFLAGS hold the guest's arithmetic flags (set by the last guest instruction).
  var flagsInHost = false
  /// The guest's arithmetic flags are in the host's RFLAGS only, not yet in R10 (they must be
  /// captured there before anything clobbers them, if live).
  var flagsPending = false
  /// Every way out of the block: merges R10's flags into the state page, returns the budget used.
  var epilogue: X64Assembler.Label
  /// The epilogue after the flags merge (the state page's RFLAGS already current).
  var epilogueFlagsStored: X64Assembler.Label
  /// Where the block's first instruction starts, its registers loaded (what a branch back to the
  /// block's own start jumps to).
  var loopHead: X64Assembler.Label
  /// Per instruction: the arithmetic flags it leaves that are read later (by an instruction, a
  /// possible side exit or the block's end), as RFLAGS bits.
  var liveFlagsAfter: [UInt64] = []
  /// The arithmetic flags live at the block's first instruction (what a branch back to it must
  /// keep).
  var liveFlagsAtStart: UInt64 = 0x8D5
  /// How R10 holds the guest's flags when it holds the newest ones (`flagsPending` false). Not
  /// `.image` only between a cheap capture and the point that needs the RFLAGS image.
  var r10Format = CapturedFlags.image
  /// The guest registers whose value is known here (constant folding): set by MOV of an immediate,
  /// a register XORed or subtracted from itself and folded results, forgotten when anything else
  /// writes them. Compiling is one pass in order, so the knowledge holds on every path that
  /// reaches an instruction from the block's start (a branch back to the start re-enters with
  /// none known).
  var knownValues = [UInt64?](repeating: nil, count: 16)
  /// Instructions emitted as a constant.
  var foldedInstructions = 0
  /// Side exits to emit: label, instruction, and the format R10's flags are in there.
  var pendingSideExits: [(X64Assembler.Label, Int, CapturedFlags)] = []
  /// The block's groups of reads checked at once (`planReadGroups`), and for each instruction
  /// that is one of their reads, its group and its offset from the group's low end.
  var readGroups: [ReadGroup] = []
  var readGroupMember: [(group: Int, offset: Int32)?] = []
  /// Inline TLB lookups of reads that missed, to call the walk for out of line: the miss, where
  /// the access goes on with RAX = host address, its size, and the side exit.
  var pendingTLBMisses: [(miss: X64Assembler.Label, found: X64Assembler.Label, size: Int, exit: X64Assembler.Label)] =
    []
  /// Taken ways out of conditional branches inside the block, to emit out of line: label,
  /// instruction, and where the flags were at the branch.
  var pendingBranchExits: [(label: X64Assembler.Label, k: Int, flags: FlagPlace)] = []

  /// Where the guest's flags are at a point of the block (`flagsPending`, `flagsInHost`,
  /// `r10Format`): what a way out emitted later must start from.
  struct FlagPlace {
    var pending: Bool
    var inHost: Bool
    var format: CapturedFlags
  }

  /// The flags' place now; setting it puts the compiler back at a place saved earlier.
  var flagPlace: FlagPlace {
    get { FlagPlace(pending: flagsPending, inHost: flagsInHost, format: r10Format) }
    set { (flagsPending, flagsInHost, r10Format) = (newValue.pending, newValue.inHost, newValue.format) }
  }

  /// RFLAGS bits an arithmetic instruction defines: CF PF AF ZF SF OF.
  static let arithmeticFlags: Int64 = 0x8D5

  private init(
    block: GuestBlock, tables: Tables, user: Bool, generation: UInt32, indirectTable: UInt64,
    callout: Helpers, crossBlock: CrossBlockFlags?, countsInstructions: Bool = false, region: RegisterRegion? = nil
  ) {
    self.region = region
    self.crossBlock = crossBlock
    self.countsInstructions = countsInstructions
    self.indirectTable = indirectTable
    self.callout = callout
    self.block = block
    self.tables = tables
    self.user = user
    self.generation = generation
    epilogue = a.newLabel()
    epilogueFlagsStored = a.newLabel()
    loopHead = a.newLabel()
  }

  /// Host code for `block` (read from a code page at `generation`) running at CPL 3 (`user`) or
  /// below; `crossBlock`, the static translator's knowledge of the blocks around it (nil: none);
  /// `countsInstructions`, count what it completes in the state page (`sbt`'s run-time blocks);
  /// `region`, the register region it belongs to (nil: none).
  package static func compile(
    _ block: GuestBlock, tables: Tables, user: Bool, generation: UInt32, indirectTable: UInt64,
    callout: Helpers, crossBlock: CrossBlockFlags? = nil, countsInstructions: Bool = false,
    region: RegisterRegion? = nil
  ) -> Output {
    var c = BlockCompiler(
      block: block, tables: tables, user: user, generation: generation, indirectTable: indirectTable,
      callout: callout, crossBlock: crossBlock, countsInstructions: countsInstructions, region: region)
    return c.emitBlock()
  }

  /// Whether `block`'s arithmetic flags are all dead at its start as its own compile sees them
  /// (each written before anything reads them, before any possible side exit and before the
  /// block's end): the blocks that get a host-flags entry when compiled with `CrossBlockFlags`.
  package static func flagsDeadAtStart(_ block: GuestBlock, user: Bool, layout: TranslationTables) -> Bool {
    var c = BlockCompiler(
      block: block, tables: Tables(layout: layout, placeholderSet: 0), user: user, generation: 0, indirectTable: 0,
      callout: RelocatableBlock.helpers(set: 0), crossBlock: nil)
    c.planReadGroups()
    c.computeFlagLiveness()
    return c.liveFlagsAtStart == 0
  }

  mutating func emitBlock() -> Output {
    planReadGroups()
    computeFlagLiveness()
    allocateRegisters()
    for r in [HostRegister.rbx, .rbp, .r12, .r13, .r14, .r15] { a.push(r) }
    a.alu(.sub, .register(.rsp), immediate: 8)  // 16-byte alignment for callouts
    a.mov(.rbx, .register(.rdi))
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorBudget))), .rsi)
    a.mov(.r9, .register(.rsi))
    loadFlagsRegister()
    let entryChecks = a.newLabel()
    a.jmp(entryChecks)
    let crossEntry = a.count
    emitMappingCheck()
    a.bind(entryChecks)
    let chainEntry = a.count
    emitEntryChecks()
    for (guest, host) in cachedRegisters {
      a.mov(host, .memory(HostMemory(.rbx, Int32(CPUStateLayout.gprs + 8 * guest))))
    }
    a.bind(loopHead)
    var k = 0
    while k < block.instructions.count {
      let run = stackRun(from: k)
      if run.count >= 2 {
        emitStackRun(run)
        for g in block.instructions[run] { forgetConstants(writtenBy: g) }
        k = run.upperBound
      } else {
        let g = block.instructions[k]
        if !foldConstant(g, k: k) {
          emit(g, index: k)
          forgetConstants(writtenBy: g)
          learnConstants(from: g)
        }
        k += 1
      }
    }
    // A block that ends without a branch falls through to the next instruction.
    if let last = block.instructions.last, !Self.endsBlock(last) {
      exit(to: last.nextRIP)
    }
    emitBranchExits()
    emitTLBMisses()
    emitSideExits()
    emitHostFlagsShortBudget()
    registerLiveEntryOffset = emitRegisterLiveEntry()
    registerLiveHostFlagsEntryOffset = emitRegisterLiveHostFlagsEntry()
    // Every way out: the flags from R10 into the state page; RAX = the budget used.
    a.bind(epilogue)
    a.alu(.and, .register(.r10), immediate: Self.arithmeticFlags, size: 4)
    a.mov(.rax, .memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags))))
    a.alu(.and, .register(.rax), immediate: ~Self.arithmeticFlags, size: 8)
    a.alu(.or, .register(.rax), .r10, size: 8)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags))), .rax)
    a.bind(epilogueFlagsStored)
    a.mov(.rax, .memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorBudget))))
    a.alu(.sub, .register(.rax), .r9)
    a.alu(.add, .register(.rsp), immediate: 8)
    for r in [HostRegister.r15, .r14, .r13, .r12, .rbp, .rbx] { a.pop(r) }
    a.ret()
    return Output(
      code: a.finished(), chainEntry: chainEntry, crossEntry: crossEntry, links: links, folded: foldedInstructions,
      hostFlagsEntry: hostFlagsEntryOffset, hostFlagsLinks: hostFlagsLinks, registerLiveEntry: registerLiveEntryOffset,
      registerLiveLinks: registerLiveLinks, registerLiveHostFlagsEntry: registerLiveHostFlagsEntryOffset,
      registerLiveHostFlagsLinks: registerLiveHostFlagsLinks)
  }

  /// The cross-page entry's check: the execute TLB entry of the block's linear page (at a slot
  /// known now) holds that page with the physical page the block came from; else back to the
  /// dispatcher with RIP at the block (which walks the page tables if need be).
  mutating func emitMappingCheck() {
    // Unpaged code: a linear page is its physical page.
    guard mode.paged else { return }
    let slot = CPUStateLayout.pagingTLB + CPU.tlbSlot(block.startRIP, kind: .execute, user: user) * tables.entryStride
    let bail = a.newLabel()
    let checked = a.newLabel()
    a.load(.rcx, constant: block.startRIP & ~0xFFF)
    a.alu(.cmp, .rcx, .memory(HostMemory(.rbx, Int32(slot + tables.tagOffset))))
    a.jcc(HostCondition.notEqual, bail)
    a.mov(.rcx, .memory(HostMemory(.rbx, Int32(slot + tables.physicalPageOffset))))
    a.alu(.and, .register(.rcx), immediate: -4096)
    a.load(.rax, constant: block.physicalStart & ~0xFFF)
    a.alu(.cmp, .rcx, .register(.rax))
    a.jcc(HostCondition.equal, checked)
    a.bind(bail)
    returnToDispatcher()
    a.bind(checked)
  }

  /// The chained entry's checks: the code page still holds what was translated, and the budget
  /// covers the whole block; else back to the dispatcher with RIP at the block.
  mutating func emitEntryChecks() {
    let bail = a.newLabel()
    let slot = (block.physicalStart >> 12) & UInt64(tables.codePageSlots - 1)
    a.load(.rax, constant: tables.pageGeneration + 4 * slot)
    a.mov(.rax, .memory(HostMemory(.rax)), size: 4)
    a.load(.rcx, constant: tables.epoch)
    a.alu(.add, .rax, .memory(HostMemory(.rcx)), size: 4)
    a.alu(.cmp, .register(.rax), immediate: Int64(Int32(bitPattern: generation)), size: 4)
    a.jcc(HostCondition.notEqual, bail)
    let body = a.newLabel()
    chargeBudget(thenGoTo: body)
    a.bind(bail)
    returnToDispatcher()
    // The host-flags entry falls through into what follows the checks (the register loads).
    hostFlagsEntryOffset = emitHostFlagsEntry()
    a.bind(body)
  }

  /// Takes the whole block's length from the budget in R9 and goes on at `label`; when the budget
  /// does not cover it, puts it back and falls through.
  mutating func chargeBudget(thenGoTo label: X64Assembler.Label) {
    let n = Int64(block.instructions.count)
    a.alu(.sub, .register(.r9), immediate: n)
    if countsInstructions {
      let short = a.newLabel()
      a.jcc(HostCondition.below, short)
      a.alu(.add, .memory(Self.instructionCount), immediate: n)
      a.jmp(label)
      a.bind(short)
    } else {
      a.jcc(HostCondition.aboveOrEqual, label)
    }
    a.alu(.add, .register(.r9), immediate: n)
  }

  /// Where a counting block adds what it completes (`countsInstructions`).
  static let instructionCount = HostMemory(.rbx, Int32(CPUStateLayout.translatorDynamicInstructions))

  /// Gives `n` instructions charged at the block's entry back to the budget (they are not run
  /// here), and takes them off the count of a counting block. Clobbers the host's flags.
  mutating func refundBudget(_ n: Int) {
    a.alu(.add, .register(.r9), immediate: Int64(n))
    if countsInstructions { a.alu(.sub, .memory(Self.instructionCount), immediate: Int64(n)) }
  }

  /// Back to the dispatcher from an entry check, nothing of the block run: RIP at the block.
  mutating func returnToDispatcher() {
    a.load(.rax, constant: block.startRIP)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
    a.jmp(epilogue)
  }

  /// Picks the guest registers the block uses at least twice (once, in a block that loops back
  /// to its start), most used first, for the cache registers.
  mutating func allocateRegisters() {
    if let region {
      // The region's assignment, whatever this block uses; every exit stores what this block
      // writes and what a block before it in the region may have left unstored.
      for (guest, host) in zip(region.guests, Self.cacheRegisters) { cached[guest] = host }
      cachedRegisters = cached.enumerated().compactMap { guest, host in host.map { (guest, $0) } }
      let dirty = block.instructions.reduce(region.dirtyAtEntry) { $0 | Self.writtenRegisters($1) }
      writtenCachedRegisters = cachedRegisters.filter { dirty & (1 << UInt32($0.guest)) != 0 }
      return
    }
    let uses = Self.registerUses(block)
    // In a block that branches back to its own start every use repeats each iteration: one is
    // enough to keep the register in a host register across the loop.
    let loops = Self.loopsToItself(block)
    let threshold = loops ? 1 : 2
    let chosen = (0..<16).filter { uses[$0] >= threshold }.sorted {
      uses[$0] > uses[$1] || (uses[$0] == uses[$1] && $0 < $1)
    }
    for (guest, host) in zip(chosen, Self.cacheRegisters) { cached[guest] = host }
    cachedRegisters = cached.enumerated().compactMap { guest, host in host.map { (guest, $0) } }
    let written = block.instructions.reduce(UInt32(0)) { $0 | Self.writtenRegisters($1) }
    writtenCachedRegisters = cachedRegisters.filter { written & (1 << UInt32($0.guest)) != 0 }
  }

  /// Stores the cached guest registers the block may have changed back into the state page
  /// (before any exit).
  mutating func writeBackRegisters() {
    for (guest, host) in writtenCachedRegisters {
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.gprs + 8 * guest))), host)
    }
  }

  // Inside generated code the guest's arithmetic flags live in R10 (an RFLAGS image whose other
  // bits are the host's, or zero), not in the state page: the C entry loads them, every block
  // entry and link assumes them there, and the epilogue and callouts merge them back. After a guest
  // instruction sets them they are in the host's RFLAGS until host code would clobber them.

  // MARK: Exits

  /// Leaves the block, all of it done, for `rip`: through a patchable jump (a link: to the block
  /// there once it is translated), else to the dispatcher. A branch back to the block's own start
  /// stays in it: the budget charged again, registers and flags kept where they are.
  ///
  /// `refund`: instructions at the end of the block that were charged but are not run (leaving
  /// from a conditional branch inside it).
  mutating func exit(to rip: UInt64, refund: Int = 0) {
    if let region, rip != block.startRIP, region.liveTargets.contains(rip) {
      if let crossBlock, flagsInHost, crossBlock.deadAtStart.contains(rip) {
        registerLiveHostFlagsExit(to: rip, refund: refund)
      } else {
        registerLiveExit(to: rip, refund: refund)
      }
      return
    }
    if let crossBlock, rip != block.startRIP, flagsInHost, crossBlock.deadAtStart.contains(rip) {
      hostFlagsExit(to: rip, refund: refund)
      return
    }
    settleFlags()
    if rip == block.startRIP && flagsPending && liveFlagsAtStart == 0 {
      // The loop's body writes every flag before anything reads one: going round again needs
      // them nowhere. Only leaving on an exhausted budget does; LAHF and SETO keep them in AH and
      // AL (cheaper than PUSHFQ) for R10 to be rebuilt on that path alone.
      a.lahf()
      a.setcc(HostCondition.overflow, .register(.rax))
      flagsPending = false
      flagsInHost = false
      if refund > 0 { refundBudget(refund) }
      chargeBudget(thenGoTo: loopHead)
      a.movzxECXFromAH()
      a.movzx(.rax, .register(.rax), sourceSize: 1)
      a.shift(.shl, .register(.rax), count: 11, size: 4)  // OF
      a.alu(.or, .register(.rcx), .rax, size: 4)
      a.mov(.r10, .register(.rcx))
      writeBackRegisters()
      returnToDispatcher()
      return
    }
    // Linked blocks, the loop head and the dispatcher take R10 as an RFLAGS image.
    clobberFlags()
    settleFlags()
    if refund > 0 { refundBudget(refund) }
    if rip == block.startRIP {
      chargeBudget(thenGoTo: loopHead)
      writeBackRegisters()
      returnToDispatcher()
      return
    }
    writeBackRegisters()
    linkableJump(to: rip)
  }

  /// A patchable jump to the block at `rip`, and the exit to the dispatcher it takes until linked.
  mutating func linkableJump(to rip: UInt64) {
    let unlinked = a.newLabel()
    a.jmp(unlinked)
    links.append((a.count - 4, rip))
    a.bind(unlinked)
    a.load(.rax, constant: rip)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
    a.jmp(epilogue)
  }

  /// The side exit of instruction `k` (state as before it; flags already in R10).
  mutating func sideExit(_ k: Int) -> X64Assembler.Label {
    precondition(!flagsPending, "a side exit with the guest's flags in host RFLAGS alone")
    let l = a.newLabel()
    pendingSideExits.append((l, k, r10Format))
    return l
  }

  /// The taken ways out of conditional branches inside the block, out of line: each leaves for
  /// the branch target with the state the branch saw, giving back the budget of the instructions
  /// after it.
  mutating func emitBranchExits() {
    let exits = pendingBranchExits
    pendingBranchExits = []
    for e in exits {
      a.bind(e.label)
      flagPlace = e.flags
      let g = block.instructions[e.k]
      exit(to: Self.staticTarget(g, mode: mode)!, refund: block.instructions.count - e.k - 1)
    }
  }

  /// The side exits' code, out of line after the block's last instruction.
  mutating func emitSideExits() {
    let exits = pendingSideExits
    pendingSideExits = []
    for (label, k, format) in exits {
      a.bind(label)
      emitFlagsImage(from: format)
      writeBackRegisters()
      a.load(.rax, constant: block.instructions[k].rip)
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorExit))), immediate: 1)
      // Instructions k..<n were charged but not run.
      refundBudget(block.instructions.count - k)
      a.jmp(epilogue)
    }
  }

  // MARK: Instructions

  mutating func emit(_ g: GuestInstruction, index k: Int) {
    let ins = g.instruction
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    let size = Int(ins.operandSize)
    if Self.needsGuestFlagsInHost(g) || Self.endsBlock(g) {
      // A conditional branch reads the flags straight from the LAHF form (each way out settles).
      if !(g.form == .jcc && r10Format == .lahf) { settleFlags() }
    }
    switch g.form {
    case .generic where g.special != nil:
      emitSpecial(g, k: k)

    case .generic:
      // A callout (the block's last instruction): the interpreter runs it on the state page.
      // The state page gets the registers, flags and the budget left (this instruction included:
      // the callout's step is charged to the block); all caller-saved registers are lost.
      clobberFlags()
      settleFlags()
      writeBackRegisters()
      storeFlagsRegister()
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorBudgetLeft))), .r9)
      // The interpreter counts the callout's instruction itself.
      if countsInstructions { a.alu(.sub, .memory(Self.instructionCount), immediate: 1) }
      a.load(.rax, constant: g.rip)
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
      a.load(.rsi, constant: g.nextRIP)
      a.load(.rdx, constant: callout.instruction)
      callHelper(callout.function, saving: [])
      a.mov(.r9, .memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorBudgetLeft))))
      // 0: on to the next instruction; 1: leave; else RAX is the indirect-branch table to find
      // the block at the new RIP in.
      let leave = a.newLabel()
      let elsewhere = a.newLabel()
      a.alu(.cmp, .register(.rax), immediate: 1)
      a.jcc(HostCondition.equal, leave)
      a.jcc(HostCondition.above, elsewhere)
      loadFlagsRegister()
      linkableJump(to: g.nextRIP)
      a.bind(elsewhere)
      loadFlagsRegister()
      a.mov(.rdx, .memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))))
      jumpThroughIndirectTable(base: .rax)
      a.bind(leave)
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorExit))), immediate: 2)
      a.jmp(epilogueFlagsStored)

    case .addRR, .orRR, .adcRR, .sbbRR, .andRR, .subRR, .xorRR, .cmpRR, .testRR,
      .addRI, .orRI, .adcRI, .sbbRI, .andRI, .subRI, .xorRI, .cmpRI, .testRI,
      .addRM, .orRM, .adcRM, .sbbRM, .andRM, .subRM, .xorRM, .cmpRM, .testRM,
      .addMR, .orMR, .adcMR, .sbbMR, .andMR, .subMR, .xorMR, .cmpMR, .testMR,
      .addMI, .orMI, .adcMI, .sbbMI, .andMI, .subMI, .xorMI, .cmpMI, .testMI:
      emitALU(g, k: k)

    case .incDecR, .incDecM:
      let increment = ins.operation == .inc
      if g.form == .incDecM {
        memoryOperand(g, size: size, write: true, k: k)
        loadCarry()
        a.incDec(.memory(HostMemory(.rax)), increment: increment, size: size)
      } else if size == 4, let host = cached[Int(o0.reg)] {
        loadCarry()
        a.incDec(.register(host), increment: increment, size: 4)  // zero-extends
      } else if size == 4 {
        a.mov(.rcx, gpr(o0.reg), size: 4)
        loadCarry()
        a.incDec(.register(.rcx), increment: increment, size: 4)
        a.mov(gpr(o0.reg), .rcx, size: 8)
      } else {
        loadCarry()
        a.incDec(gpr(o0.reg), increment: increment, size: size)
      }
      flagsWritten(by: k)

    case .movRR, .movRI, .movRM, .movMR, .movMI, .movsxRR, .movsxRM:
      emitMove(g, k: k)

    case .lea:
      if let host = cached[Int(o0.reg)], o0.size >= 4 {
        effectiveAddress(g, into: host, size: Int(o0.size))
      } else {
        effectiveAddress(g)
        storeGPR(o0.reg, .rsi, size: Int(o0.size))
      }

    case .nop:
      break

    case .jcc where k < block.instructions.count - 1:
      // Inside the block (a superblock goes on at the next instruction): the taken way out is
      // emitted out of line, so the common fall-through is a branch not taken.
      loadFlags(for: ins.condition)
      let taken = a.newLabel()
      a.jcc(ins.condition, taken)
      pendingBranchExits.append((taken, k, flagPlace))

    case .jcc:
      loadFlags(for: ins.condition)
      let taken = a.newLabel()
      a.jcc(ins.condition, taken)
      let atBranch = flagPlace
      exit(to: g.nextRIP)
      a.bind(taken)
      flagPlace = atBranch
      exit(to: Self.staticTarget(g, mode: mode)!)

    case .jmpRel:
      exit(to: Self.staticTarget(g, mode: mode)!)

    case .callRel:
      push(constant: g.nextRIP, k: k)
      exit(to: Self.staticTarget(g, mode: mode)!)

    case .ret:
      clobberFlags()
      let side = sideExit(k)
      stackAddress()
      hostPointer(size: stackSlot, write: false, exit: side)
      a.mov(.rdx, .memory(HostMemory(.rax)), size: stackSlot)
      if mode == .long64 {
        // A non-canonical return address faults at the RET: the interpreter raises it. (In flat
        // 32-bit code every 32-bit target is within CS's limit.)
        a.mov(.rcx, .register(.rdx))
        a.shift(.shl, .register(.rcx), count: 16)
        a.shift(.sar, .register(.rcx), count: 16)
        a.alu(.cmp, .register(.rcx), .rdx)
        a.jcc(HostCondition.notEqual, side)
      }
      adjustStackPointer(by: stackSlot)
      writeBackRegisters()
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rdx)
      jumpThroughIndirectTable()

    case .pushR:
      clobberFlags()
      a.mov(.r8, gpr(o0.reg))  // before RSP moves: PUSH RSP pushes the old value
      pushR8(k: k)

    case .pushI:
      push(constant: ins.immediate & (o0.size == 8 ? ~0 : (1 << UInt64(8 * o0.size)) - 1), k: k)

    case .popR:
      // The stack pointer moves first, then the register is written (POP ESP keeps the value).
      clobberFlags()
      stackAddress()
      hostPointer(size: stackSlot, write: false, exit: sideExit(k))
      a.mov(.rdx, .memory(HostMemory(.rax)), size: stackSlot)
      adjustStackPointer(by: stackSlot)
      a.mov(gpr(o0.reg), .rdx)

    case .imulR, .imulM:
      emitMultiply(g, k: k)

    case .shiftR:
      emitShift(g, k: k)

    case .cmovR, .cmovM:
      if g.form == .cmovM {
        memoryOperand(g, size: size, write: false, k: k)
        a.mov(.rdx, .memory(HostMemory(.rax)), size: size == 8 ? 8 : size)
      } else {
        a.mov(.rdx, gpr(o1.reg), size: size)
      }
      a.mov(.rcx, gpr(o0.reg), size: size)
      loadFlags()
      a.cmov(ins.condition, .rcx, .register(.rdx), size: size)
      // CMOV with a 32-bit operand zero-extends the destination whether or not it moves.
      if size == 4 { a.mov(gpr(o0.reg), .rcx, size: 8) } else { a.mov(gpr(o0.reg), .rcx, size: size) }

    case .setccR:
      loadFlags()
      a.setcc(ins.condition, gpr(o0.reg))
    }
  }

  mutating func emitMultiply(_ g: GuestInstruction, k: Int) {
    let ins = g.instruction
    let o0 = ins.operands.0
    let size = Int(ins.operandSize)
    var source: HostOperand = gpr(ins.operands.1.reg)
    if g.form == .imulM {
      memoryOperand(g, size: size, write: false, k: k)
      source = .memory(HostMemory(.rax))
    } else {
      clobberFlags()
    }
    // In place when a cache register holds the destination and the result fills it.
    let direct = size >= 4 ? cached[Int(o0.reg)] : nil
    let product = direct ?? .rcx
    if ins.operandCount == 3 {
      a.imul(product, source, immediate: Self.signed(ins.immediate, size: size), size: size)
    } else {
      if direct == nil { a.mov(.rcx, gpr(o0.reg), size: size) }
      a.imul(product, source, size: size)
    }
    if liveFlagsAfter[k] & (Flags.sf | Flags.zf | Flags.pf | Flags.af) != 0 {
      // The host's CF and OF (always equal after IMUL) are the model's; its SF ZF AF PF
      // (undefined) may not be: R10's low byte takes CF now (SETC, much cheaper than PUSHF) and the
      // result waits in the scratch word, for the flags the model defines to be worked out only
      // if something reads them (`settleFlags`).
      a.setcc(HostCondition.below, .register(.r10))
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorScratch))), product)
      flagsInHost = false
      flagsPending = false
      r10Format = .multiply(size: size)
    } else {
      flagsWritten(by: k)
    }
    if direct == nil { storeGPR(o0.reg, .rcx, size: size, zeroExtended: true) }
  }

}

import X86

/// The back end: turns a `GuestBlock` into host x86-64 code.
///
/// Generated code is a C function `(state, budget) -> budget used`: RBX holds the CPU state page
/// (`CPUStateLayout`), R12 the paging TLB, R9 the instruction budget left and R10 the guest's
/// arithmetic flags, from the C entry across every linked block to the epilogue (which merges the
/// flags into the state page and returns how much of the budget went: instructions completed, a
/// callout's included). A block takes its whole length from the budget at its entry; a side exit
/// gives back what did not run. Up to five guest registers, the ones the block uses most, live in
/// RBP, R11, R13, R14 and R15 from the block's start to each of its exits (loaded after the entry
/// checks, written back before every exit); the others are used in place in the state page. A
/// branch back to the block's own start keeps them there (and skips the code-page check: a store
/// to a page holding code never happens in generated code).
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
/// - memory operands go through the paging TLB inline (tag compare, page-crossing check, host
///   pointer); stores also through the write host-page cache and the code-page byte, so a store to a
///   page holding code never happens here;
/// - any check that fails is a *side exit*: the code returns with RIP at that instruction and the
///   state exactly as before it (nothing of it was written yet), and the interpreter runs it in
///   full (walks, faults, MMIO, self-modifying code);
/// - arithmetic flags stay in the host's RFLAGS after the instruction that set them and are only
///   merged into the state's RFLAGS when something would clobber them, when a side exit could follow
///   or at the block's end; a flag result nothing reads before the next full flag write is never
///   stored (dead-flag elimination). Instructions that read flags get them back with POPFQ.
///
/// The return value is the number of guest instructions the code completed.
package struct BlockCompiler {
  package struct Tables {
    let pagingTLB: UInt64
    let hostWritePage: UInt64
    let hostWritePointer: UInt64
    let pageHasCode: UInt64
    let pageGeneration: UInt64
    let epoch: UInt64
    let entryStride: Int
    let tagOffset: Int
    let hostOffset: Int
    let physicalPageOffset: Int
    let hostPageSlots: Int
    let codePageSlots: Int

    package init(_ t: TranslationTables) {
      pagingTLB = UInt64(UInt(bitPattern: t.pagingTLB))
      hostWritePage = UInt64(UInt(bitPattern: t.hostWritePage))
      hostWritePointer = UInt64(UInt(bitPattern: t.hostWritePointer))
      pageHasCode = UInt64(UInt(bitPattern: t.pageHasCode))
      pageGeneration = UInt64(UInt(bitPattern: t.pageGeneration))
      epoch = UInt64(UInt(bitPattern: t.epoch))
      entryStride = t.entryStride
      tagOffset = t.tagOffset
      hostOffset = t.hostOffset
      physicalPageOffset = t.physicalPageOffset
      hostPageSlots = t.hostPageSlots
      codePageSlots = t.codePageSlots
    }
  }

  // MARK: What gets translated

  /// Whether the back end translates `ins` (classified `form`).
  package static func translates(_ form: FastForm, _ ins: DecodedInstruction) -> Bool {
    switch form {
    case .generic: return false
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
      case nil, .jumpIndirect, .callIndirect: return true
      default: return false
      }
    default: return false
    }
  }

  /// The branch target of a direct branch.
  static func staticTarget(_ g: GuestInstruction) -> UInt64? {
    switch g.form {
    case .jcc, .jmpRel, .callRel: return g.nextRIP &+ g.instruction.immediate
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
  }

  private var a = X64Assembler()
  private let tables: Tables
  private let user: Bool
  private let block: GuestBlock
  /// The code page's generation the block was translated from (checked at the chained entry).
  private let generation: UInt32
  private var links: [(field: Int, target: UInt64)] = []
  /// The inline indirect-branch table generated code reads: `IndirectBranchTable.slots` entries of
  /// (RIP, cross-page entry address), one table per privilege class.
  private let indirectTable: UInt64
  /// The callout: a C function `(context, next RIP, decoded instruction) -> 0 (go on), 1 (leave
  /// the block) or an indirect-branch table`, its context (`DynamicTranslator`) and the address of
  /// the block's final instruction, decoded (when the block ends in a callout).
  private let callout: (function: UInt64, context: UInt64, instruction: UInt64)
  /// Guest register -> host register for the block's most used registers.
  private var cached = [HostRegister?](repeating: nil, count: 16)
  /// Host registers that hold guest registers, in allocation order.
  static let cacheRegisters: [HostRegister] = [.rbp, .r11, .r13, .r14, .r15]
  /// Host RFLAGS hold the guest's arithmetic flags (set by the last guest instruction).
  private var flagsInHost = false
  /// The guest's arithmetic flags are in the host's RFLAGS only, not yet in R10 (they must be
  /// captured there before anything clobbers them, if live).
  private var flagsPending = false
  /// Every way out of the block: merges R10's flags into the state page, returns the budget used.
  private var epilogue: X64Assembler.Label
  /// The epilogue after the flags merge (the state page's RFLAGS already current).
  private var epilogueFlagsStored: X64Assembler.Label
  /// Where the block's first instruction starts, its registers loaded (what a branch back to the
  /// block's own start jumps to).
  private var loopHead: X64Assembler.Label
  /// Per instruction: whether the arithmetic flags it leaves are read later (by an instruction, a
  /// possible side exit or the block's end).
  private var flagsLiveAfter: [Bool] = []

  /// RFLAGS bits an arithmetic instruction defines: CF PF AF ZF SF OF.
  static let arithmeticFlags: Int64 = 0x8D5

  private init(
    block: GuestBlock, tables: Tables, user: Bool, generation: UInt32, indirectTable: UInt64,
    callout: (function: UInt64, context: UInt64, instruction: UInt64)
  ) {
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
  /// below.
  package static func compile(
    _ block: GuestBlock, tables: Tables, user: Bool, generation: UInt32, indirectTable: UInt64,
    callout: (function: UInt64, context: UInt64, instruction: UInt64)
  ) -> Output {
    var c = BlockCompiler(
      block: block, tables: tables, user: user, generation: generation, indirectTable: indirectTable,
      callout: callout)
    return c.emitBlock()
  }

  private mutating func emitBlock() -> Output {
    computeFlagLiveness()
    allocateRegisters()
    for r in [HostRegister.rbx, .rbp, .r12, .r13, .r14, .r15] { a.push(r) }
    a.alu(.sub, .register(.rsp), immediate: 8)  // 16-byte alignment for callouts
    a.mov(.rbx, .register(.rdi))
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorBudget))), .rsi)
    a.mov(.r9, .register(.rsi))
    loadFlagsRegister()
    a.load(.r12, constant: tables.pagingTLB)
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
        k = run.upperBound
      } else {
        emit(block.instructions[k], index: k)
        k += 1
      }
    }
    // A block that ends without a branch falls through to the next instruction.
    if let last = block.instructions.last, !Self.endsBlock(last) {
      exit(to: last.nextRIP)
    }
    emitSideExits()
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
    return Output(code: a.finished(), chainEntry: chainEntry, crossEntry: crossEntry, links: links)
  }

  /// The cross-page entry's check: the execute TLB entry of the block's linear page (at a slot
  /// known now) holds that page with the physical page the block came from; else back to the
  /// dispatcher with RIP at the block (which walks the page tables if need be).
  private mutating func emitMappingCheck() {
    let slot = CPU.tlbSlot(block.startRIP, kind: .execute, user: user) * tables.entryStride
    let bail = a.newLabel()
    let checked = a.newLabel()
    a.load(.rcx, constant: block.startRIP & ~0xFFF)
    a.alu(.cmp, .rcx, .memory(HostMemory(.r12, Int32(slot + tables.tagOffset))))
    a.jcc(HostCondition.notEqual, bail)
    a.load(.rcx, constant: block.physicalStart & ~0xFFF)
    a.alu(.cmp, .rcx, .memory(HostMemory(.r12, Int32(slot + tables.physicalPageOffset))))
    a.jcc(HostCondition.equal, checked)
    a.bind(bail)
    returnToDispatcher()
    a.bind(checked)
  }

  /// The chained entry's checks: the code page still holds what was translated, and the budget
  /// covers the whole block; else back to the dispatcher with RIP at the block.
  private mutating func emitEntryChecks() {
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
    a.bind(body)
  }

  /// Takes the whole block's length from the budget in R9 and goes on at `label`; when the budget
  /// does not cover it, puts it back and falls through.
  private mutating func chargeBudget(thenGoTo label: X64Assembler.Label) {
    let n = Int64(block.instructions.count)
    a.alu(.sub, .register(.r9), immediate: n)
    a.jcc(HostCondition.aboveOrEqual, label)
    a.alu(.add, .register(.r9), immediate: n)
  }

  /// Back to the dispatcher from an entry check, nothing of the block run: RIP at the block.
  private mutating func returnToDispatcher() {
    a.load(.rax, constant: block.startRIP)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
    a.jmp(epilogue)
  }

  /// Picks the guest registers the block uses at least twice, most used first, for the cache
  /// registers.
  private mutating func allocateRegisters() {
    var uses = [Int](repeating: 0, count: 16)
    for g in block.instructions {
      let ins = g.instruction
      for o in [ins.operands.0, ins.operands.1, ins.operands.2] where o.kind == .gpr { uses[Int(o.reg)] += 1 }
      if ins.hasMemoryOperand {
        if ins.base < 16 { uses[Int(ins.base)] += 1 }
        if ins.index < 16 { uses[Int(ins.index)] += 1 }
      }
      switch g.form {
      case .pushR, .pushI, .popR, .callRel, .ret: uses[4] += 2
      case .shiftR where ins.operands.1.kind == .gpr: uses[1] += 1
      default: break
      }
    }
    let chosen = (0..<16).filter { uses[$0] >= 2 }.sorted { uses[$0] > uses[$1] || (uses[$0] == uses[$1] && $0 < $1) }
    for (guest, host) in zip(chosen, Self.cacheRegisters) { cached[guest] = host }
  }

  /// The cached pairs, by guest register number (loads and write-backs in a fixed order).
  private var cachedRegisters: [(guest: Int, host: HostRegister)] {
    cached.enumerated().compactMap { guest, host in host.map { (guest, $0) } }
  }

  /// Stores every cached guest register back into the state page (before any exit).
  private mutating func writeBackRegisters() {
    for (guest, host) in cachedRegisters {
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.gprs + 8 * guest))), host)
    }
  }

  // MARK: Flags

  /// What an instruction does with the arithmetic flags.
  private enum FlagUse { case none, readsOrKeeps, writesAll }

  private static func flagUse(_ g: GuestInstruction) -> FlagUse {
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
  private static func maySideExit(_ g: GuestInstruction) -> Bool {
    if g.special != nil { return true }
    switch g.form {
    case .pushR, .pushI, .popR, .callRel, .ret: return true
    case .shiftR where g.instruction.operands.1.kind != .immediate && shiftCountMayExceedWidth(g.instruction):
      return true
    default: return g.instruction.hasMemoryOperand && g.form != .lea && g.form != .nop
    }
  }

  private mutating func computeFlagLiveness() {
    var live = true  // the block's end
    flagsLiveAfter = Array(repeating: true, count: block.instructions.count)
    for k in block.instructions.indices.reversed() {
      let g = block.instructions[k]
      flagsLiveAfter[k] = live
      switch Self.flagUse(g) {
      case .readsOrKeeps: live = true
      case .writesAll: live = false
      case .none: break
      }
      if Self.maySideExit(g) { live = true }
    }
  }

  // Inside generated code the guest's arithmetic flags live in R10 (an RFLAGS image whose other
  // bits are the host's, or zero), not in the state page: the C entry loads them, every block
  // entry and link assumes them there, and the epilogue and callouts merge them back. After a guest
  // instruction sets them they are in the host's RFLAGS until host code would clobber them.

  /// R10 = the state page's arithmetic flags.
  private mutating func loadFlagsRegister() {
    a.mov(.r10, .memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags))))
    a.alu(.and, .register(.r10), immediate: Self.arithmeticFlags, size: 4)
  }

  /// The state page's RFLAGS takes R10's arithmetic flags (clobbers host flags, R8, RAX).
  private mutating func storeFlagsRegister() {
    a.mov(.r8, .register(.r10))
    a.alu(.and, .register(.r8), immediate: Self.arithmeticFlags, size: 4)
    a.mov(.rax, .memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags))))
    a.alu(.and, .register(.rax), immediate: ~Self.arithmeticFlags, size: 8)
    a.alu(.or, .register(.rax), .r8, size: 8)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags))), .rax)
  }

  /// Before host code that clobbers the host's flags: live guest flags there move to R10.
  private mutating func clobberFlags() {
    if flagsPending {
      a.pushfq()
      a.pop(.r10)
      flagsPending = false
    }
    flagsInHost = false
  }

  /// Makes the host's arithmetic flags equal the guest's (R10's image: the host's own flags or
  /// arithmetic flags alone, either safe to load).
  private mutating func loadFlags() {
    if flagsInHost { return }
    a.push(.r10)
    a.popfq()
    flagsInHost = true
  }

  /// After a host instruction that set the guest's flags (instruction `k`).
  private mutating func flagsWritten(by k: Int) {
    flagsInHost = true
    flagsPending = flagsLiveAfter[k]
    multiplyFlagsOwed = nil
  }

  /// The size of an IMUL whose flags R10 holds as the host left them: SF ZF PF must still come
  /// from its result (in the scratch word) and AF be cleared before anything reads them.
  private var multiplyFlagsOwed: Int?

  /// Turns R10's flags of an IMUL into the model's (clobbers R8, RAX and the host's flags).
  private mutating func settleMultiplyFlags() {
    guard let size = multiplyFlagsOwed else { return }
    emitMultiplyFlagsFix(size: size)
    multiplyFlagsOwed = nil
  }

  private mutating func emitMultiplyFlagsFix(size: Int) {
    // ADD of 0 to the result: SF ZF PF from it, AF (and CF OF) clear; CF and OF stay R10's.
    a.mov(.r8, .memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorScratch))))
    a.alu(.add, .register(.r8), immediate: 0, size: size)
    a.pushfq()
    a.pop(.rax)
    a.alu(.and, .register(.rax), immediate: Int64(Flags.sf | Flags.zf | Flags.pf), size: 4)
    a.alu(.and, .register(.r10), immediate: Int64(Flags.cf | Flags.of), size: 4)
    a.alu(.or, .register(.r10), .rax)
  }

  // MARK: Exits

  /// Leaves the block, all of it done, for `rip`: through a patchable jump (a link: to the block
  /// there once it is translated), else to the dispatcher. A branch back to the block's own start
  /// stays in it: the budget charged again, registers and flags kept where they are.
  private mutating func exit(to rip: UInt64) {
    settleMultiplyFlags()
    clobberFlags()
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
  private mutating func linkableJump(to rip: UInt64) {
    let unlinked = a.newLabel()
    a.jmp(unlinked)
    links.append((a.count - 4, rip))
    a.bind(unlinked)
    a.load(.rax, constant: rip)
    a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
    a.jmp(epilogue)
  }

  /// The side exit of instruction `k` (state as before it; flags already in R10).
  private mutating func sideExit(_ k: Int) -> X64Assembler.Label {
    precondition(!flagsPending, "a side exit with the guest's flags in host RFLAGS alone")
    let l = a.newLabel()
    pendingSideExits.append((l, k, multiplyFlagsOwed))
    return l
  }
  /// Side exits to emit: label, instruction, and the size of an IMUL whose flags are still owed.
  private var pendingSideExits: [(X64Assembler.Label, Int, Int?)] = []

  /// The side exits' code, out of line after the block's last instruction.
  private mutating func emitSideExits() {
    let exits = pendingSideExits
    pendingSideExits = []
    for (label, k, owed) in exits {
      a.bind(label)
      if let owed { emitMultiplyFlagsFix(size: owed) }
      writeBackRegisters()
      a.load(.rax, constant: block.instructions[k].rip)
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorExit))), immediate: 1)
      // Instructions k..<n were charged but not run.
      a.alu(.add, .register(.r9), immediate: Int64(block.instructions.count - k))
      a.jmp(epilogue)
    }
  }

  // MARK: Operands

  /// Guest register `r`: its cache register, or its slot in the state page.
  private func gpr(_ r: UInt8) -> HostOperand {
    if let host = cached[Int(r)] { return .register(host) }
    return .memory(HostMemory(.rbx, Int32(CPUStateLayout.gprs + 8 * Int(r))))
  }

  private static func signed(_ value: UInt64, size: Int) -> Int64 {
    switch size {
    case 1: return Int64(Int8(truncatingIfNeeded: value))
    case 2: return Int64(Int16(truncatingIfNeeded: value))
    case 4: return Int64(Int32(truncatingIfNeeded: value))
    default: return Int64(bitPattern: value)
    }
  }

  private static func fitsInt32(_ v: Int64) -> Bool { Int64(Int32(truncatingIfNeeded: v)) == v }

  /// The guest register `r` as a host register: its cache register, or `scratch` loaded from the
  /// state page.
  private mutating func gprRegister(_ r: UInt8, scratch: HostRegister) -> HostRegister {
    if let host = cached[Int(r)] { return host }
    a.mov(scratch, gpr(r))
    return scratch
  }

  /// The effective address of `g`'s memory operand into `destination` (no segment base), at
  /// `size` bytes (4: truncated and zero-extended). Clobbers RDI, and RSI when no cache register
  /// holds the base; not the flags.
  private mutating func effectiveAddress(_ g: GuestInstruction, into destination: HostRegister = .rsi, size: Int? = nil)
  {
    let ins = g.instruction
    let disp = ins.displacement
    let width = min(size ?? 8, ins.addressSize == 4 ? 4 : 8)
    if ins.base == DecodedInstruction.ripBase {
      var ea = g.nextRIP &+ UInt64(bitPattern: disp)
      if width == 4 { ea &= 0xFFFF_FFFF }
      a.load(destination, constant: ea)
      return
    }
    let hasBase = ins.base != DecodedInstruction.noRegister
    let hasIndex = ins.index != DecodedInstruction.noRegister
    let base: HostRegister
    if hasBase {
      base = gprRegister(ins.base, scratch: .rsi)
    } else {
      a.load(.rsi, constant: 0)
      base = .rsi
    }
    var memory = HostMemory(base, 0)
    if hasIndex {
      memory.index = gprRegister(ins.index, scratch: .rdi)
      memory.scale = ins.scale
    }
    if Self.fitsInt32(disp) {
      memory.displacement = Int32(disp)
    } else {
      // Only a 64-bit absolute address (no base, no index) has a displacement this wide.
      a.load(destination, constant: UInt64(bitPattern: disp))
      if width == 4 { a.mov(destination, .register(destination), size: 4) }
      return
    }
    a.lea(destination, memory, size: width)
  }

  /// The linear address of `g`'s memory operand into RSI (FS/GS bases added).
  private mutating func linearAddress(_ g: GuestInstruction) {
    effectiveAddress(g)
    addSegmentBase(Int(g.instruction.segment))
  }

  private mutating func addSegmentBase(_ segment: Int) {
    if segment == 4 || segment == 5 {
      let base = CPUStateLayout.segments + segment * CPUStateLayout.segmentStride + 8
      a.alu(.add, .rsi, .memory(HostMemory(.rbx, Int32(base))))
    }
  }

  /// RSI = linear address; on success RAX = host pointer to `size` bytes there, for reading (or for
  /// writing, through the write host-page cache and the code-page check). Else the side exit of `k`.
  private mutating func hostPointer(size: Int, write: Bool, exit: X64Assembler.Label) {
    let kind = write ? 1 : 0
    // Slot: ((lin >> 12) ^ (lin >> 20)) & 0xFF | kind << 9 | user << 8: with x = lin >> 12, the
    // low byte of x ^ (x >> 8) is AL ^ AH. The entry's offset: slot * 5 * 8 (40-byte entries).
    precondition(tables.entryStride == 40, "the TLB entry layout generated code assumes")
    a.mov(.rax, .register(.rsi), size: 4)
    a.shift(.shr, .register(.rax), count: 12, size: 4)
    a.xorALWithAH()
    a.movzx(.rax, .register(.rax), sourceSize: 1)
    a.lea(.rax, HostMemory(.rax, 0, index: .rax, scale: 4), size: 4)
    let slotBase = (kind << 9 | (user ? 1 << 8 : 0)) * tables.entryStride
    let entry = { (field: Int) in HostMemory(.r12, Int32(slotBase + field), index: .rax, scale: 8) }
    // Tag: the linear page.
    a.mov(.rcx, .register(.rsi))
    a.alu(.and, .register(.rcx), immediate: -4096)
    a.alu(.cmp, .rcx, .memory(entry(tables.tagOffset)))
    a.jcc(HostCondition.notEqual, exit)
    // Within one page (a byte always is).
    a.mov(.rcx, .register(.rsi), size: 4)
    a.alu(.and, .register(.rcx), immediate: 0xFFF, size: 4)
    if size > 1 {
      a.alu(.cmp, .register(.rcx), immediate: Int64(0x1000 - size), size: 4)
      a.jcc(HostCondition.above, exit)
    }
    if !write {
      a.mov(.rax, .memory(entry(tables.hostOffset)))
      a.test(.register(.rax), .rax)
      a.jcc(HostCondition.equal, exit)
      a.alu(.add, .register(.rax), .rcx)
      return
    }
    // Physical page number; the write host-page cache must hold it and the page no code.
    a.mov(.rdx, .memory(entry(tables.physicalPageOffset)))
    a.shift(.shr, .register(.rdx), count: 12)
    a.mov(.rax, .register(.rdx), size: 4)
    a.alu(.and, .register(.rax), immediate: Int64(tables.hostPageSlots - 1), size: 4)
    a.load(.rdi, constant: tables.hostWritePage)
    a.alu(.cmp, .rdx, .memory(HostMemory(.rdi, 0, index: .rax, scale: 8)))
    a.jcc(HostCondition.notEqual, exit)
    a.load(.rdi, constant: tables.hostWritePointer)
    a.mov(.rax, .memory(HostMemory(.rdi, 0, index: .rax, scale: 8)))
    a.test(.register(.rax), .rax)
    a.jcc(HostCondition.equal, exit)
    a.alu(.and, .register(.rdx), immediate: Int64(tables.codePageSlots - 1), size: 4)
    a.load(.rdi, constant: tables.pageHasCode)
    a.alu(.cmp, .memory(HostMemory(.rdi, 0, index: .rdx, scale: 1)), immediate: 0, size: 1)
    a.jcc(HostCondition.notEqual, exit)
    a.alu(.add, .register(.rax), .rcx)
  }

  /// RAX = host pointer for `g`'s memory operand of `size` bytes (flags stored first).
  private mutating func memoryOperand(_ g: GuestInstruction, size: Int, write: Bool, k: Int) {
    clobberFlags()
    linearAddress(g)
    hostPointer(size: size, write: write, exit: sideExit(k))
  }

  /// Writes host `r` to a guest register at `size`: 4 zero-extends to 64 bits, 1 and 2 merge.
  private mutating func storeGPR(_ reg: UInt8, _ r: HostRegister, size: Int) {
    if size == 4, let host = cached[Int(reg)] {
      a.mov(.register(host), r, size: 4)  // a 32-bit move zero-extends
    } else if size == 4 {
      a.mov(.register(r), r, size: 4)  // zero-extend
      a.mov(gpr(reg), r, size: 8)
    } else {
      a.mov(gpr(reg), r, size: size)
    }
  }

  // MARK: Instructions

  private mutating func emit(_ g: GuestInstruction, index k: Int) {
    let ins = g.instruction
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    let size = Int(ins.operandSize)
    if Self.flagUse(g) == .readsOrKeeps || Self.endsBlock(g) { settleMultiplyFlags() }
    switch g.form {
    case .generic where g.special != nil:
      emitSpecial(g, k: k)

    case .generic:
      // A callout (the block's last instruction): the interpreter runs it on the state page.
      // The state page gets the registers, flags and the budget left (this instruction included:
      // the callout's step is charged to the block); all caller-saved registers are lost.
      clobberFlags()
      writeBackRegisters()
      storeFlagsRegister()
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorBudgetLeft))), .r9)
      a.load(.rax, constant: g.rip)
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rax)
      a.load(.rdi, constant: callout.context)
      a.load(.rsi, constant: g.nextRIP)
      a.load(.rdx, constant: callout.instruction)
      a.load(.rax, constant: callout.function)
      a.call(.register(.rax))
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
        loadFlags()
        a.incDec(.memory(HostMemory(.rax)), increment: increment, size: size)
      } else if size == 4 {
        a.mov(.rcx, gpr(o0.reg), size: 4)
        loadFlags()
        a.incDec(.register(.rcx), increment: increment, size: 4)
        a.mov(gpr(o0.reg), .rcx, size: 8)
      } else {
        loadFlags()
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

    case .jcc:
      loadFlags()
      let taken = a.newLabel()
      a.jcc(ins.condition, taken)
      let pending = flagsPending
      exit(to: g.nextRIP)
      a.bind(taken)
      flagsPending = pending
      flagsInHost = true
      exit(to: g.nextRIP &+ ins.immediate)

    case .jmpRel:
      exit(to: g.nextRIP &+ ins.immediate)

    case .callRel:
      push(constant: g.nextRIP, k: k)
      exit(to: g.nextRIP &+ ins.immediate)

    case .ret:
      clobberFlags()
      let side = sideExit(k)
      a.mov(.rsi, gpr(4))
      hostPointer(size: 8, write: false, exit: side)
      a.mov(.rdx, .memory(HostMemory(.rax)))
      // A non-canonical return address faults at the RET: the interpreter raises it.
      a.mov(.rcx, .register(.rdx))
      a.shift(.shl, .register(.rcx), count: 16)
      a.shift(.sar, .register(.rcx), count: 16)
      a.alu(.cmp, .register(.rcx), .rdx)
      a.jcc(HostCondition.notEqual, side)
      a.alu(.add, gpr(4), immediate: 8)
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
      clobberFlags()
      a.mov(.rsi, gpr(4))
      hostPointer(size: 8, write: false, exit: sideExit(k))
      a.mov(.rdx, .memory(HostMemory(.rax)))
      a.alu(.add, gpr(4), immediate: 8)
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

  /// The block's end through the inline indirect-branch table: RIP (in the state page and RDX)
  /// is the target, registers are written back; a hit jumps to the target's cross-page entry,
  /// a miss returns to the dispatcher.
  private mutating func jumpThroughIndirectTable(base: HostRegister? = nil) {
    let miss = a.newLabel()
    if let base { a.mov(.rcx, .register(base)) } else { a.load(.rcx, constant: indirectTable) }
    a.mov(.rax, .register(.rdx), size: 4)
    a.shift(.shr, .register(.rax), count: UInt8(IndirectBranchTable.shift))
    a.alu(.xor, .register(.rax), .rdx, size: 4)
    a.alu(.and, .register(.rax), immediate: Int64(IndirectBranchTable.slots - 1), size: 4)
    a.shift(.shl, .register(.rax), count: 4)
    a.alu(.add, .register(.rcx), .rax)
    a.alu(.cmp, .rdx, .memory(HostMemory(.rcx)))
    a.jcc(HostCondition.notEqual, miss)
    a.jmp(.memory(HostMemory(.rcx, 8)))
    a.bind(miss)
    a.jmp(epilogue)
  }

  /// Side-exits to `exit` unless RDX is canonical (clobbers RCX and flags).
  private mutating func requireCanonicalRDX(else exit: X64Assembler.Label) {
    a.mov(.rcx, .register(.rdx))
    a.shift(.shl, .register(.rcx), count: 16)
    a.shift(.sar, .register(.rcx), count: 16)
    a.alu(.cmp, .register(.rcx), .rdx)
    a.jcc(HostCondition.notEqual, exit)
  }

  private mutating func emitSpecial(_ g: GuestInstruction, k: Int) {
    let ins = g.instruction
    switch g.special {
    case .jumpIndirect, .callIndirect:
      // The target first (a CALL through [RSP] reads the old RSP); a non-canonical one faults at
      // the branch, in the interpreter.
      let side: X64Assembler.Label
      if ins.operands.0.kind == .memory {
        memoryOperand(g, size: 8, write: false, k: k)
        side = sideExit(k)
        a.mov(.rdx, .memory(HostMemory(.rax)))
      } else {
        clobberFlags()
        side = sideExit(k)
        a.mov(.rdx, gpr(ins.operands.0.reg))
      }
      requireCanonicalRDX(else: side)
      if g.special == .callIndirect {
        // RIP holds the target while the return address is pushed (a side exit rewrites it).
        a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rdx)
        push(constant: g.nextRIP, k: k)
        a.mov(.rdx, .memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))))
      }
      writeBackRegisters()
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.rip))), .rdx)
      jumpThroughIndirectTable()

    case .pushMemory:
      memoryOperand(g, size: 8, write: false, k: k)
      a.mov(.r8, .memory(HostMemory(.rax)))
      pushR8(k: k)

    case .setDirection(let set):
      clobberFlags()
      let rflags = HostOperand.memory(HostMemory(.rbx, Int32(CPUStateLayout.rflags)))
      if set {
        a.alu(.or, rflags, immediate: Int64(Flags.df))
      } else {
        a.alu(.and, rflags, immediate: ~Int64(Flags.df))
      }

    case .swapGS:
      // Only CPL 0 may (a block of the supervisor class may also run at CPL 1 or 2).
      clobberFlags()
      a.alu(.cmp, .memory(HostMemory(.rbx, Int32(CPUStateLayout.cpl))), immediate: 0)
      a.jcc(HostCondition.notEqual, sideExit(k))
      let gsBase = HostOperand.memory(
        HostMemory(.rbx, Int32(CPUStateLayout.segments + 5 * CPUStateLayout.segmentStride + 8)))
      let kernelGSBase = HostOperand.memory(HostMemory(.rbx, Int32(CPUStateLayout.kernelGSBase)))
      a.mov(.rax, gsBase)
      a.mov(.rcx, kernelGSBase)
      a.mov(gsBase, .rcx)
      a.mov(kernelGSBase, .rax)

    case .atomicUpdate:
      emitAtomicUpdate(g, k: k)

    case nil:
      preconditionFailure("a callout is not a special form")
    }
  }

  // MARK: Runs of PUSH or POP

  /// Whether `g` is a PUSH (`push` true) or POP of a register other than RSP, or a PUSH of an
  /// immediate: what a stack run is made of.
  private static func isStackRunMember(_ g: GuestInstruction, push: Bool) -> Bool {
    switch g.form {
    case .pushR: return push && g.instruction.operands.0.reg != 4
    case .pushI: return push
    case .popR: return !push && g.instruction.operands.0.reg != 4
    default: return false
    }
  }

  /// The consecutive PUSHes (or POPs) starting at instruction `k` (empty if `k` is neither).
  private func stackRun(from k: Int) -> Range<Int> {
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
  private mutating func emitStackRun(_ run: Range<Int>) {
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

  /// A read-modify-write of memory as one host LOCK-prefixed instruction on the guest page (the
  /// interpreter's atomic updates work on the same host memory, so vCPUs on other threads see
  /// either the whole update or none of it). The checks are a store's; a side exit leaves it to
  /// the interpreter.
  private mutating func emitAtomicUpdate(_ g: GuestInstruction, k: Int) {
    let ins = g.instruction
    let size = Int(ins.operandSize)
    let o1 = ins.operands.1
    memoryOperand(g, size: size, write: true, k: k)
    a.mov(.rdi, .register(.rax))
    let memory = HostOperand.memory(HostMemory(.rdi))
    switch ins.operation {
    case .inc, .dec:
      loadFlags()  // CF is kept
      a.lock()
      a.incDec(memory, increment: ins.operation == .inc, size: size)
      flagsWritten(by: k)
    case .xadd, .xchg:
      // The register takes the old memory value: in place in a cache register when the result
      // fills it (a 32-bit write zero-extends), else through RDX and back at its size.
      let reg = o1.reg
      let direct = size >= 4 ? cached[Int(reg)] : nil
      let value = direct ?? .rdx
      if direct == nil { a.mov(.rdx, gpr(reg), size: size == 8 ? 8 : size) }
      if ins.operation == .xadd {
        a.lock()
        a.xadd(memory, value, size: size)
        if direct == nil { storeGPR(reg, .rdx, size: size) }
        flagsWritten(by: k)
      } else {
        a.xchg(memory, value, size: size)  // implicitly locked
        if direct == nil { storeGPR(reg, .rdx, size: size) }
      }
    case .cmpxchg:
      // The accumulator is host RAX: the guest's whole RAX goes in and comes back (a failed 32-bit
      // compare zero-extends it, a successful one leaves it alone, as the guest's does).
      let source = gprRegister(o1.reg, scratch: .rdx)
      a.mov(.rax, gpr(0))
      a.lock()
      a.cmpxchg(memory, source, size: size)
      a.mov(gpr(0), .rax)
      flagsWritten(by: k)
    default:  // LOCK ADD OR ADC SBB AND SUB XOR
      let op = Self.hostALU(ins.operation)!
      if ins.operation == .adc || ins.operation == .sbb { loadFlags() }
      if o1.kind == .immediate {
        a.lock()
        a.alu(op, memory, immediate: Self.signed(ins.immediate, size: size), size: size)
      } else {
        let source = gprRegister(o1.reg, scratch: .rdx)
        a.lock()
        a.alu(op, memory, source, size: size)
      }
      flagsWritten(by: k)
    }
  }

  /// PUSH of a constant (`CALL`'s return address, `PUSH imm`).
  private mutating func push(constant: UInt64, k: Int) {
    clobberFlags()
    a.load(.r8, constant: constant)
    pushR8(k: k)
  }

  /// Pushes R8 (8 bytes) or side-exits. (`hostPointer` clobbers RAX, RCX, RDX, RSI, RDI: values
  /// that must survive it live in R8.)
  private mutating func pushR8(k: Int) {
    a.mov(.rsi, gpr(4))
    a.alu(.sub, .register(.rsi), immediate: 8)
    hostPointer(size: 8, write: true, exit: sideExit(k))
    a.mov(.memory(HostMemory(.rax)), .r8)
    a.alu(.sub, gpr(4), immediate: 8)
  }

  private static func hostALU(_ op: Operation) -> HostALU? {
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

  private mutating func emitALU(_ g: GuestInstruction, k: Int) {
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
    if readsCarry { loadFlags() }
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

  private mutating func emitMove(_ g: GuestInstruction, k: Int) {
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
      storeGPR(o0.reg, .r8, size: destinationSize)
    }
  }

  /// `dst` = the `sourceSize` value at `src` extended to `destinationSize` (4 or 8: the whole host
  /// register, a 4-byte result zero-extended; 1 or 2: a plain load of that size, so the register's
  /// other bytes are kept when it is stored back at that size).
  private mutating func loadExtended(
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

  private mutating func emitMultiply(_ g: GuestInstruction, k: Int) {
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
    if flagsLiveAfter[k] {
      // The host's CF and OF are the model's; its SF ZF AF PF (undefined) may not be: R10 takes
      // the host's flags now and the result waits in the scratch word, for the model's SF ZF PF
      // (and AF clear) to be worked out only if something reads them (`settleMultiplyFlags`).
      a.pushfq()
      a.pop(.r10)
      a.mov(.memory(HostMemory(.rbx, Int32(CPUStateLayout.translatorScratch))), product)
      flagsInHost = false
      flagsPending = false
      multiplyFlagsOwed = size
    } else {
      flagsWritten(by: k)
    }
    if direct == nil { storeGPR(o0.reg, .rcx, size: size) }
  }

  private mutating func emitShift(_ g: GuestInstruction, k: Int) {
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
    a.mov(.rdx, gpr(o0.reg), size: size)
    if Self.flagUse(g) == .readsOrKeeps { loadFlags() } else { clobberFlags() }
    if byCL {
      a.shiftByCL(op, .register(.rdx), size: size)
    } else {
      a.shift(op, .register(.rdx), count: UInt8(truncatingIfNeeded: ins.immediate), size: size)
    }
    // MOV keeps the flags: write the result back after the shift.
    if size == 4 { a.mov(gpr(o0.reg), .rdx, size: 8) } else { a.mov(gpr(o0.reg), .rdx, size: size) }
    if flagsLiveAfter[k] {
      a.pushfq()
      a.pop(.r10)
      flagsInHost = false
      flagsPending = false
      multiplyFlagsOwed = nil
      modelShiftFlags(ins.operation, size: size, byCL: byCL, count: ins.immediate)
    } else {
      flagsWritten(by: k)
    }
  }

  /// Makes R10 (the host's flags after a shift or rotate of RDX, by CL or by `count`) hold the
  /// flags the model defines where the SDM leaves them undefined (`ALU.shiftRotate`): AF clear
  /// after a shift; OF by the one-bit rule for every count (SHL, ROL, RCL: MSB of the result XOR
  /// CF; ROR, RCR: the two top bits of the result differ; SHR: the operand's MSB for a count of 1,
  /// else 0; SAR: 0). A masked count of 0 leaves every flag as it was. Clobbers R8, RSI, flags.
  private mutating func modelShiftFlags(_ operation: Operation, size: Int, byCL: Bool, count: UInt64) {
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

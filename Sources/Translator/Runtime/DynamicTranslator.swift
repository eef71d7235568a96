import X86

#if canImport(Glibc)
  import Glibc
#endif

/// The dynamic binary translator of one vCPU: the seed's four stages around the X86 model.
///
/// 1. **Lookup** (`CodeCache`): the block at (RIP, physical RIP, privilege class), valid while its
///    code page's generation is unchanged.
/// 2. **Context switch**: generated code is entered as a C function with the CPU state page and
///    the budget; it returns how much of the budget it used (instructions completed and callouts),
///    RIP committed (`blockEntries` counts the entries).
/// 3. **Translation** (`GuestBlock.read` → `BlockCompiler.compile` → `ExecutableMemory`): the
///    decoder's instructions and the interpreter's fast-form classification, emitted as host code
///    by our own assembler into a W^X buffer.
/// 4. **Execute**: blocks run back to back while the budget allows; an instruction the back end
///    does not translate is a callout into the interpreter from inside the block
///    (`CPU.runCallout`), and one whose fast case fails side-exits to be run by `CPU.run`, so
///    every guest instruction has one definition of its slow cases.
///
/// Direct branches are linked to their target block (same page: its chained entry; another page:
/// its cross-page entry, which checks the mapping); RET, indirect JMP/CALL and callouts that moved
/// control elsewhere find their target in an inline table (`IndirectBranchTable`); a block
/// retranslated after its page was written takes over the old translation's links.
///
/// Code runs translated in 64-bit mode with paging on and in flat 32-bit code, paged or not
/// (`TranslatedCodeMode`); 16-bit code and the rest stay in the interpreter (docs/dbt.md).
package final class DynamicTranslator: BlockExecutor {
  package typealias BlockFunction = @convention(c) (UnsafeMutableRawPointer, UInt64) -> UInt64

  // Touched on every dispatch from this vCPU's thread only: no dynamic exclusivity checks.
  @exclusivity(unchecked) private var cache = CodeCache()
  private let code: ExecutableMemory
  /// The links and the inline indirect-branch table of the translated blocks. Blocks compiled here
  /// and blocks installed from a translation file (`sbt`) are one domain: each branches straight
  /// to the other, as `dbt` blocks do among themselves.
  private struct Links {
    /// Linkable branches to the same linear page by the block they want to reach: buffer offsets
    /// of their rel32 fields (linked to its chained entry).
    var links: [CodeCache.Key: [Int]] = [:]
    /// Linkable branches to another page, by target RIP and privilege class (linked to the
    /// cross-page entry of the newest translation at that RIP, which checks the mapping itself).
    var crossLinks: [CodeCache.Key: [Int]] = [:]
    /// The newest translation's cross-page entry by (RIP, privilege class).
    var latestCrossEntry: [CodeCache.Key: Int] = [:]
    /// RET's inline lookup table.
    let indirect = IndirectBranchTable()
  }
  @exclusivity(unchecked) private var linked = Links()
  /// The indirect-branch table.
  private var indirect: IndirectBranchTable { linked.indirect }
  @exclusivity(unchecked) private var tables: BlockCompiler.Tables?
  @exclusivity(unchecked) package private(set) var statistics = TranslatorStatistics()

  /// A translator with a code buffer of `codeBytes`.
  package init(codeBytes: Int = 32 << 20) throws(TranslatorError) {
    code = try ExecutableMemory(capacity: codeBytes)
  }

  package func runTranslated(_ cpu: CPU, budget: UInt64) -> (steps: UInt64, event: CPUEvent?) {
    let tables = self.tables ?? makeTables(cpu)
    let state = cpu.state.raw
    currentCPU = Unmanaged.passUnretained(cpu)
    calloutSteps = 0
    pendingEvent = nil
    var translated: UInt64 = 0
    var retired: UInt64 { translated &+ calloutSteps }
    while retired < budget {
      // A callout may have changed the privilege level (or anything else translated code needs).
      guard let mode = cpu.translatedCodeMode else { break }
      let user = cpu.runsAtUserLevel
      let rip = state.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self)
      guard let physical = cpu.physicalCodeAddress(rip) else { break }
      let key = key(rip: rip, physical: physical, user: user, mode: mode)
      let generation = cpu.codeGeneration(ofPageHolding: physical)
      var block: CodeCache.Block
      if let found = cache.lookup(key), found.generation == generation {
        statistics.cacheHits &+= 1
        block = found
      } else {
        statistics.cacheMisses &+= 1
        if cache.lookup(key) != nil { statistics.invalidations &+= 1 }
        block = translate(cpu, rip: rip, physical: physical, user: user, mode: mode, tables: tables)
      }
      guard let entry = block.entry, UInt64(block.length) <= budget - retired else { break }
      statistics.blockEntries &+= 1
      state.storeBytes(of: 0, toByteOffset: CPUStateLayout.translatorExit, as: UInt64.self)
      let stepsBefore = retired
      notedInThisEntry = 0
      calloutsInThisEntry = 0
      currentMode = mode
      let used = unsafeBitCast(entry, to: BlockFunction.self)(state, budget - retired)
      // The budget used counts this entry's callouts too; the interpreter counted those itself.
      let done = used &- calloutsInThisEntry
      translated &+= done
      if staticBlocks != nil {
        // Blocks of both origins chain to each other; run-time blocks count what they complete
        // (`BlockCompiler.countsInstructions`), the rest ran in file blocks.
        let dynamic = state.load(fromByteOffset: CPUStateLayout.translatorDynamicInstructions, as: UInt64.self)
        state.storeBytes(of: 0, toByteOffset: CPUStateLayout.translatorDynamicInstructions, as: UInt64.self)
        statistics.staticTranslatedInstructions &+= done &- dynamic
      }
      calloutSteps &+= calloutsInThisEntry
      cpu.noteTranslatedRetired(done &- notedInThisEntry)
      let exit = state.load(fromByteOffset: CPUStateLayout.translatorExit, as: UInt64.self)
      if exit == 1 {
        statistics.sideExits &+= 1
        break
      }
      if pendingEvent != nil || retired == stepsBefore { break }
    }
    statistics.translatedInstructions &+= translated
    // Generated code counts its indirect-table lookups in the state page: collect them.
    statistics.indirectHits &+= state.load(fromByteOffset: CPUStateLayout.translatorIndirectHits, as: UInt64.self)
    statistics.indirectMisses &+= state.load(fromByteOffset: CPUStateLayout.translatorIndirectMisses, as: UInt64.self)
    state.storeBytes(of: 0, toByteOffset: CPUStateLayout.translatorIndirectHits, as: UInt64.self)
    state.storeBytes(of: 0, toByteOffset: CPUStateLayout.translatorIndirectMisses, as: UInt64.self)
    currentCPU = nil
    return (retired, pendingEvent)
  }

  /// The CPU the dispatcher is running (for callouts from generated code).
  @exclusivity(unchecked) private var currentCPU: Unmanaged<CPU>?
  /// The kind of code the running block was translated as (a callout that lets it go on has
  /// changed none of that).
  @exclusivity(unchecked) private var currentMode = TranslatedCodeMode.long64
  /// Callouts run since the dispatcher was entered (each one interpreter step).
  @exclusivity(unchecked) private var calloutSteps: UInt64 = 0
  /// Callouts run in the current entry into generated code.
  @exclusivity(unchecked) private var calloutsInThisEntry: UInt64 = 0
  /// The event a callout's instruction raised, for `CPU.run` to return.
  @exclusivity(unchecked) private var pendingEvent: CPUEvent?
  /// Translated instructions of the current entry into generated code already added to the
  /// CPU's count (a callout brings the count up to date first: RDTSC, a deterministic clock, a
  /// fault report must see every instruction before it).
  @exclusivity(unchecked) private var notedInThisEntry: UInt64 = 0

  /// A callout from generated code: the interpreter runs the instruction at RIP; 0 tells the code
  /// to go on at `nextRIP`, 1 to return to the dispatcher, anything else is the indirect-branch
  /// table in which to look up the block at the new RIP.
  fileprivate func runCallout(nextRIP: UInt64, instruction: UnsafeMutablePointer<DecodedInstruction>) -> UInt64 {
    // The dispatcher holds the CPU while its code runs: no reference counting here.
    guard let current = currentCPU else { return 1 }
    return current._withUnsafeGuaranteedRef { cpu in runCallout(cpu, nextRIP: nextRIP, instruction: instruction) }
  }

  private func runCallout(_ cpu: CPU, nextRIP: UInt64, instruction: UnsafeMutablePointer<DecodedInstruction>) -> UInt64
  {
    noteTranslatedRetired(cpu, charged: 1)
    calloutsInThisEntry &+= 1
    statistics.callouts &+= 1
    calloutCounts[Int(instruction.pointee.operation.rawValue)] &+= 1
    let (continuation, event) = cpu.runCallout(nextRIP: nextRIP, instruction: instruction, mode: currentMode)
    if let event { pendingEvent = event }
    switch continuation {
    case .next: return 0
    case .leave: return 1
    case .elsewhere:
      statistics.calloutsContinuedElsewhere &+= 1
      return indirect.base(user: cpu.runsAtUserLevel, mode: currentMode)
    }
  }

  /// Brings the CPU's instruction count up to the instructions generated code completed before a
  /// helper call (RDTSC, a deterministic clock, a device or a fault report must see them): the
  /// budget it used so far (its latest `translatorBudgetLeft`) less earlier callouts (counted by
  /// the interpreter) and the `charged` instructions from the calling one to the block's end.
  private func noteTranslatedRetired(_ cpu: CPU, charged: UInt64) {
    let done = cpu.translatorBudgetUsed &- calloutsInThisEntry &- charged
    cpu.noteTranslatedRetired(done &- notedInThisEntry)
    notedInThisEntry = done
  }

  /// The decoded instructions of the callouts in the code buffer.
  @exclusivity(unchecked) private var calloutInstructions: [UnsafeMutablePointer<DecodedInstruction>] = []

  private func freeCalloutInstructions(keeping kept: UnsafeMutablePointer<DecodedInstruction>?) {
    for p in calloutInstructions where p != kept {
      p.deinitialize(count: 1)
      p.deallocate()
    }
    calloutInstructions = kept.map { [$0] } ?? []
  }

  /// Callouts by the instruction's operation (`Operation.rawValue`).
  private let calloutCounts: UnsafeMutablePointer<UInt64> = {
    let p = UnsafeMutablePointer<UInt64>.allocate(capacity: Operation.allCases.count)
    p.initialize(repeating: 0, count: Operation.allCases.count)
    return p
  }()

  deinit {
    freeCalloutInstructions(keeping: nil)
    calloutCounts.deallocate()
  }

  /// What generated code calls (a callout, a TLB miss, port I/O, a privilege transfer) and the
  /// context it passes; the callout's instruction is the block's.
  private func helpers(calloutInstruction: UnsafeMutablePointer<DecodedInstruction>?) -> BlockCompiler.Helpers {
    func address(_ f: UnsafeRawPointer) -> UInt64 { UInt64(UInt(bitPattern: f)) }
    return BlockCompiler.Helpers(
      function: address(unsafeBitCast(dbtCallout, to: UnsafeRawPointer.self)),
      context: UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())),
      instruction: UInt64(UInt(bitPattern: calloutInstruction)),
      tlbMiss: address(unsafeBitCast(dbtTLBMiss, to: UnsafeRawPointer.self)),
      portIO: address(unsafeBitCast(dbtPortIO, to: UnsafeRawPointer.self)),
      privilegeTransfer: address(unsafeBitCast(dbtPrivilegeTransfer, to: UnsafeRawPointer.self)))
  }

  /// Generated code's SYSCALL, SYSRET or IRETQ (`CPU.privilegeTransfer`): 0 when it faulted
  /// (nothing changed: side-exit), 1 when it retired into code the block's mode does not cover,
  /// else the indirect-branch table of the new privilege level to find the block at the new RIP in.
  fileprivate func privilegeTransfer(nextRIP: UInt64, kind: UInt64) -> UInt64 {
    guard let current = currentCPU, let kind = PrivilegeTransfer(rawValue: kind) else { return 0 }
    return current._withUnsafeGuaranteedRef { cpu in
      guard cpu.privilegeTransfer(kind, nextRIP: nextRIP) else {
        statistics.privilegeTransferFaults &+= 1
        return 0
      }
      statistics.privilegeTransfers &+= 1
      guard cpu.translatedCodeMode == currentMode else { return 1 }
      return indirect.base(user: cpu.runsAtUserLevel, mode: currentMode)
    }
  }

  /// Generated code's IN or OUT: the value read (0 after a write) when the VMM answered it as a
  /// lightweight exit (`CPU.respondToPortIO`), else `UInt64.max` to side-exit. `packed`: port,
  /// size << 16, OUT << 24, and the instructions from this one to the block's end << 32 (to bring
  /// the instruction count up to date first, as a callout does: a device may read guest time).
  fileprivate func portIO(packed: UInt64, value: UInt64) -> UInt64 {
    guard let current = currentCPU else { return .max }
    return current._withUnsafeGuaranteedRef { cpu in
      noteTranslatedRetired(cpu, charged: packed >> 32)
      let port = UInt16(truncatingIfNeeded: packed)
      let size = Int((packed >> 16) & 0xFF)
      let mask: UInt64 = size >= 4 ? 0xFFFF_FFFF : (1 << UInt64(8 * size)) - 1
      let written: UInt64? = packed & (1 << 24) != 0 ? value & mask : nil
      guard let read = cpu.respondToPortIO(port: port, size: size, written: written) else {
        statistics.portIOExits &+= 1
        return .max
      }
      statistics.portIOAnswered &+= 1
      return read & mask  // never bit 63: the access is done
    }
  }

  /// Generated code's inline TLB lookup missed on a read: the host address of the access after a
  /// page walk, or 0 to side-exit (`CPU.hostAddressAfterTLBMiss`).
  fileprivate func tlbMiss(linear: UInt64, size: Int) -> UInt64 {
    guard let current = currentCPU else { return 0 }
    let host = current._withUnsafeGuaranteedRef { $0.hostAddressAfterTLBMiss(linear: linear, size: size) }
    guard let host else {
      statistics.tlbMissExits &+= 1
      return 0
    }
    statistics.tlbMissFills &+= 1
    return UInt64(UInt(bitPattern: host))
  }

  private func makeTables(_ cpu: CPU) -> BlockCompiler.Tables {
    let t = BlockCompiler.Tables(cpu.translationTables)
    tables = t
    return t
  }

  /// Translates the block at `rip`; a block with no entry when its first instruction is not
  /// translatable.
  private func translate(
    _ cpu: CPU, rip: UInt64, physical: UInt64, user: Bool, mode: TranslatedCodeMode, tables: BlockCompiler.Tables
  ) -> CodeCache.Block {
    let start = DispatcherClock.now()
    defer { statistics.translationNanoseconds &+= DispatcherClock.now() &- start }
    if let source = staticBlocks,
      let installed = installStatic(cpu, source, rip: rip, physical: physical, user: user, mode: mode, tables: tables)
    {
      return installed
    }
    let guest = GuestBlock.read(from: cpu, rip: rip, physical: physical, mode: mode)
    // Reading may have decoded (and so marked the page): take the generation afterwards.
    let generation = cpu.codeGeneration(ofPageHolding: physical)
    let ownKey = key(rip: rip, physical: physical, user: user, mode: mode)
    guard !guest.instructions.isEmpty else {
      statistics.untranslatableStarts &+= 1
      let marker = CodeCache.Block(entry: nil, length: 0, generation: generation)
      cache.insert(marker, for: ownKey)
      return marker
    }
    // A block ending in a callout hands the interpreter its decoded instruction, kept here for as
    // long as the code that points at it.
    var calloutInstruction: UnsafeMutablePointer<DecodedInstruction>?
    if let last = guest.instructions.last, last.form == .generic, last.special == nil {
      let p = UnsafeMutablePointer<DecodedInstruction>.allocate(capacity: 1)
      p.initialize(to: last.instruction)
      calloutInstructions.append(p)
      calloutInstruction = p
    }
    let host = BlockCompiler.compile(
      guest, tables: tables, user: user, generation: generation, indirectTable: indirect.base(user: user, mode: mode),
      callout: helpers(calloutInstruction: calloutInstruction), countsInstructions: staticBlocks != nil)
    return install(
      host, length: guest.instructions.count, generation: generation, calloutInstruction: calloutInstruction, rip: rip,
      physical: physical, user: user, mode: mode, fromFile: false)
  }

  /// Puts `host` (a block of `length` guest instructions at `rip` from a code page at
  /// `generation`, compiled here or installed from a translation file: `fromFile`) into the code
  /// buffer, the cache and the indirect table, and links it both ways with every other block.
  private func install(
    _ host: BlockCompiler.Output, length: Int, generation: UInt32,
    calloutInstruction: UnsafeMutablePointer<DecodedInstruction>?, rip: UInt64, physical: UInt64, user: Bool,
    mode: TranslatedCodeMode, fromFile: Bool
  ) -> CodeCache.Block {
    let ownKey = key(rip: rip, physical: physical, user: user, mode: mode)
    if let dumpDirectory = Self.dumpDirectory {
      Self.dump(host.code, rip: rip, user: user, mode: mode, to: dumpDirectory)
    }
    var offset = code.append(host.code)
    if offset == nil {
      // The buffer is full: start over (every block is retranslated on its next use).
      statistics.cacheFlushes &+= 1
      cache.removeAll()
      linked.links.removeAll()
      linked.crossLinks.removeAll()
      linked.latestCrossEntry.removeAll()
      linked.indirect.clear()
      outgoing.removeAll()
      hostFlagsWaiting.removeAll()
      registerLiveWaiting = [[:], [:]]
      code.reset()
      freeCalloutInstructions(keeping: calloutInstruction)
      offset = code.append(host.code)
    }
    guard let offset else { return CodeCache.Block(entry: nil, length: 0, generation: generation) }
    if let perfMap = Self.perfMap {
      let address = UInt(bitPattern: code.entry(offset))
      // perf shows addresses in the (file-backed) code buffer as file offsets: name both.
      let size = String(host.code.count, radix: 16)
      let name = "dbt:\(String(rip, radix: 16))\(user ? "u" : "s")\(mode.nameSuffix)"
      fputs("\(String(address, radix: 16)) \(size) \(name)\n\(String(offset, radix: 16)) \(size) \(name)\n", perfMap)
      fflush(perfMap)
    }
    let block = CodeCache.Block(
      entry: code.entry(offset), length: length, generation: generation,
      chainEntry: offset + host.chainEntry, crossEntry: offset + host.crossEntry, fromFile: fromFile,
      hostFlagsEntry: host.hostFlagsEntry.map { offset + $0 },
      registerLiveEntry: host.registerLiveEntry.map { offset + $0 },
      registerLiveHostFlagsEntry: host.registerLiveHostFlagsEntry.map { offset + $0 })
    cache.insert(block, for: ownKey)
    statistics.blocksTranslated &+= 1
    statistics.instructionsTranslated &+= UInt64(length)
    statistics.hostBytes &+= UInt64(host.code.count)
    statistics.instructionsFolded &+= UInt64(host.folded)
    // Branches already waiting for this block (or for an older translation of it) now reach it.
    for field in linked.links[ownKey] ?? [] { patch(field, to: offset + host.chainEntry) }
    let ownCrossKey = crossKey(rip: rip, user: user, mode: mode)
    for field in linked.crossLinks[ownCrossKey] ?? [] { patch(field, to: offset + host.crossEntry) }
    linked.latestCrossEntry[ownCrossKey] = offset + host.crossEntry
    linked.indirect.insert(rip: rip, entry: code.entry(offset + host.crossEntry), user: user, mode: mode)
    // The branches of the translation this one replaces need no more patching.
    for old in outgoing.removeValue(forKey: ownKey) ?? [] {
      if old.cross {
        linked.crossLinks[old.target]?.removeAll { $0 == old.field }
      } else {
        linked.links[old.target]?.removeAll { $0 == old.field }
      }
    }
    // This block's own branches: linked now when their target is translated, else on its arrival.
    var registered: [(target: CodeCache.Key, cross: Bool, field: Int)] = []
    for l in host.links {
      if l.target & ~0xFFF == rip & ~0xFFF {
        let target = key(rip: l.target, physical: (physical & ~0xFFF) | (l.target & 0xFFF), user: user, mode: mode)
        linked.links[target, default: []].append(offset + l.field)
        registered.append((target, false, offset + l.field))
        if let t = cache.lookup(target), let chainEntry = t.chainEntry {
          patch(offset + l.field, to: chainEntry)
        }
      } else {
        let target = crossKey(rip: l.target, user: user, mode: mode)
        linked.crossLinks[target, default: []].append(offset + l.field)
        registered.append((target, true, offset + l.field))
        if let entry = linked.latestCrossEntry[target] { patch(offset + l.field, to: entry) }
      }
    }
    outgoing[ownKey] = registered
    linkHostFlags(host, offset: offset, block: block, key: ownKey, physical: physical, generation: generation)
    linkRegisterLive(host, offset: offset, block: block, key: ownKey, physical: physical, generation: generation)
    return block
  }

  /// Branches that leave with a register region's guest registers live in host registers,
  /// waiting for their target's register-live entry (`BlockCompiler.RegisterRegion`; index 1:
  /// its register-live host-flags entry): by target, the field and the generation of the code
  /// page both blocks lie in.
  @exclusivity(unchecked) private var registerLiveWaiting: [[CodeCache.Key: [(field: Int, generation: UInt32)]]] = [
    [:], [:],
  ]

  /// Links a file block's register-live branches and entry (`sbt` only), as `linkHostFlags` links
  /// host-flags ones: a branch is patched only to the register-live entry of a block of the same
  /// page installed from the file at the same generation (compiled with the same region, so
  /// with the same assignment), never to another translation; until then it writes the
  /// registers back and takes its ordinary link.
  private func linkRegisterLive(
    _ host: BlockCompiler.Output, offset: Int, block: CodeCache.Block, key ownKey: CodeCache.Key, physical: UInt64,
    generation: UInt32
  ) {
    let kinds: [(entry: (CodeCache.Block) -> Int?, links: [(field: Int, target: UInt64)])] = [
      ({ $0.registerLiveEntry }, host.registerLiveLinks),
      ({ $0.registerLiveHostFlagsEntry }, host.registerLiveHostFlagsLinks),
    ]
    for (kind, (entryOf, links)) in kinds.enumerated() {
      if let entry = entryOf(block), let waiting = registerLiveWaiting[kind].removeValue(forKey: ownKey) {
        for w in waiting where w.generation == generation {
          patch(w.field, to: entry)
          statistics.registerLiveLinksPatched &+= 1
          if kind == 1 { statistics.hostFlagsLinksPatched &+= 1 }
        }
      }
      for l in links {
        let classBits = ownKey.physicalAndLevel & ~((1 << 61) - 1)
        let target = CodeCache.Key(
          linear: l.target, physicalAndLevel: (physical & ~0xFFF) | (l.target & 0xFFF) | classBits)
        if let t = cache.lookup(target), t.fromFile, t.generation == generation, let entry = entryOf(t) {
          patch(offset + l.field, to: entry)
          statistics.registerLiveLinksPatched &+= 1
          if kind == 1 { statistics.hostFlagsLinksPatched &+= 1 }
        } else {
          registerLiveWaiting[kind][target, default: []].append((offset + l.field, generation))
        }
      }
    }
  }

  /// Branches that leave with the guest's flags in the host's RFLAGS, waiting for their target's
  /// host-flags entry (`BlockCompiler.CrossBlockFlags`): by target, the field and the generation of
  /// the code page both blocks lie in.
  @exclusivity(unchecked) private var hostFlagsWaiting: [CodeCache.Key: [(field: Int, generation: UInt32)]] = [:]

  /// Links a file block's host-flags branches and entry (`sbt` only): a branch is patched only to
  /// the host-flags entry of a block of the same page installed from the file at the same
  /// generation (its code is the one the analysis saw), never to another translation, and until
  /// then takes its exit that captures the flags.
  private func linkHostFlags(
    _ host: BlockCompiler.Output, offset: Int, block: CodeCache.Block, key ownKey: CodeCache.Key, physical: UInt64,
    generation: UInt32
  ) {
    if let entry = block.hostFlagsEntry, let waiting = hostFlagsWaiting.removeValue(forKey: ownKey) {
      for w in waiting where w.generation == generation {
        patch(w.field, to: entry)
        statistics.hostFlagsLinksPatched &+= 1
      }
    }
    for l in host.hostFlagsLinks {
      let classBits = ownKey.physicalAndLevel & ~((1 << 61) - 1)
      let target = CodeCache.Key(
        linear: l.target, physicalAndLevel: (physical & ~0xFFF) | (l.target & 0xFFF) | classBits)
      if let t = cache.lookup(target), t.fromFile, t.generation == generation, let entry = t.hostFlagsEntry {
        patch(offset + l.field, to: entry)
        statistics.hostFlagsLinksPatched &+= 1
      } else {
        hostFlagsWaiting[target, default: []].append((offset + l.field, generation))
      }
    }
  }

  /// Translations made ahead of time (`sbt`), installed instead of compiling; nil for `dbt`.
  @exclusivity(unchecked) package var staticBlocks: (any StaticBlockSource)?

  /// The block `source` has for `rip`, installed with this VM's addresses and the code page's
  /// current generation, or nil (the dynamic translator compiles it). The page is marked as
  /// holding code first (by decoding its first instruction, as translating would), so a guest
  /// write to it changes the generation and invalidates the block exactly as in `dbt`.
  private func installStatic(
    _ cpu: CPU, _ source: any StaticBlockSource, rip: UInt64, physical: UInt64, user: Bool, mode: TranslatedCodeMode,
    tables: BlockCompiler.Tables
  ) -> CodeCache.Block? {
    guard cpu.translatableInstruction(physical: physical, mode: mode.codeMode) != nil else { return nil }
    let generation = cpu.codeGeneration(ofPageHolding: physical)
    guard let found = source.block(for: cpu, rip: rip, physical: physical, user: user, mode: mode) else { return nil }
    // The source checked the page after it was marked: a write since then shows in the generation.
    guard cpu.codeGeneration(ofPageHolding: physical) == generation else { return nil }
    guard
      var installed = installStatic(
        cpu, found, rip: rip, physical: physical, user: user, mode: mode, tables: tables, generation: generation)
    else { return nil }
    let flushes = statistics.cacheFlushes
    // Link time: the file blocks this one reaches by direct branches within its page, and the
    // ones they reach, go in now, so those branches are patched block to block before any of them
    // runs (none waits for a lazy link). Blocks of the page nothing here branches to wait for
    // their own first use.
    let page = source.pageBlocks(for: cpu, rip: rip, physical: physical, user: user, mode: mode)
    var seen: Set<UInt64> = [rip]
    var pending = found.links.map(\.target) + found.hostFlagsLinks.map(\.target)
    while let next = pending.popLast() {
      guard next & ~0xFFF == rip & ~0xFFF, seen.insert(next).inserted, let block = page[next] else { continue }
      let siblingPhysical = physical & ~0xFFF | next & 0xFFF
      let siblingKey = key(rip: next, physical: siblingPhysical, user: user, mode: mode)
      // Already in: its own branches were followed when it went in.
      if let present = cache.lookup(siblingKey), present.generation == generation { continue }
      if installStatic(
        cpu, block, rip: next, physical: siblingPhysical, user: user, mode: mode, tables: tables,
        generation: generation) != nil
      {
        statistics.staticBlocksInstalledAhead &+= 1
        pending += block.links.map(\.target) + block.hostFlagsLinks.map(\.target)
      }
      if statistics.cacheFlushes != flushes {
        // The code buffer filled up and was emptied: the block asked for goes in again, alone.
        guard
          let again = installStatic(
            cpu, found, rip: rip, physical: physical, user: user, mode: mode, tables: tables, generation: generation)
        else { return nil }
        installed = again
        break
      }
    }
    return installed
  }

  /// Installs `found`, a file block for `rip` from a page checked at `generation`; nil when its
  /// callout instruction no longer decodes.
  private func installStatic(
    _ cpu: CPU, _ found: RelocatableBlock, rip: UInt64, physical: UInt64, user: Bool, mode: TranslatedCodeMode,
    tables: BlockCompiler.Tables, generation: UInt32
  ) -> CodeCache.Block? {
    var calloutInstruction: UnsafeMutablePointer<DecodedInstruction>?
    if let offset = found.calloutPageOffset {
      guard
        let (ins, _) = cpu.translatableInstruction(physical: physical & ~0xFFF | UInt64(offset), mode: mode.codeMode)
      else { return nil }
      let p = UnsafeMutablePointer<DecodedInstruction>.allocate(capacity: 1)
      p.initialize(to: ins)
      calloutInstructions.append(p)
      calloutInstruction = p
    }
    let host = found.resolved(
      tables: tables, helpers: helpers(calloutInstruction: calloutInstruction),
      indirectTable: indirect.base(user: user, mode: mode), generation: generation)
    statistics.staticBlocksInstalled &+= 1
    return install(
      host, length: found.length, generation: generation, calloutInstruction: calloutInstruction, rip: rip,
      physical: physical, user: user, mode: mode, fromFile: true)
  }

  /// `TRIVISOR_DBT_DUMP=DIR`: every translated block's host code is written to
  /// DIR/<rip>-<u|s>[32|32u].bin (for `llvm-objdump -D -b binary -m i386:x86-64`), to read what the back
  /// end emits. A debugging aid, off unless the variable is set.
  private static let dumpDirectory: String? = getenv("TRIVISOR_DBT_DUMP").map { String(cString: $0) }

  /// `TRIVISOR_DBT_PERFMAP=1`: each translated block is listed in /tmp/perf-<pid>.map, the file
  /// `perf report` reads to name code it finds no symbols for (as `dbt:<guest rip>`).
  nonisolated(unsafe) private static let perfMap: UnsafeMutablePointer<FILE>? =
    getenv("TRIVISOR_DBT_PERFMAP") == nil ? nil : fopen("/tmp/perf-\(getpid()).map", "a")

  private static func dump(_ code: [UInt8], rip: UInt64, user: Bool, mode: TranslatedCodeMode, to directory: String) {
    let path = directory + "/" + String(rip, radix: 16) + (user ? "-u" : "-s") + mode.nameSuffix + ".bin"
    guard let file = fopen(path, "wb") else { return }
    _ = code.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
  }

  /// The linkable branches each key's current translation registered (so that a retranslation
  /// can withdraw them and the lists only hold branches of live translations).
  @exclusivity(unchecked) private var outgoing: [CodeCache.Key: [(target: CodeCache.Key, cross: Bool, field: Int)]] =
    [:]

  private func key(rip: UInt64, physical: UInt64, user: Bool, mode: TranslatedCodeMode) -> CodeCache.Key {
    CodeCache.Key(linear: rip, physicalAndLevel: physical | CodeCache.Key.classBits(user: user, mode: mode))
  }

  /// The key of links to another page: the target RIP, privilege class and code mode only (the
  /// cross-page entry checks the physical page).
  private func crossKey(rip: UInt64, user: Bool, mode: TranslatedCodeMode) -> CodeCache.Key {
    CodeCache.Key(linear: rip, physicalAndLevel: CodeCache.Key.classBits(user: user, mode: mode))
  }

  private func patch(_ field: Int, to target: Int) {
    let rel = Int32(target - (field + 4))
    code.patch(at: field, withUnsafeBytes(of: rel.littleEndian, Array.init))
    statistics.chainsPatched &+= 1
  }

  package var counters: [(name: String, value: UInt64, description: String)] {
    let s = statistics
    return [
      ("dbt-translated-instructions", s.translatedInstructions, "guest instructions completed by generated code"),
      ("dbt-block-entries", s.blockEntries, "context switches into generated code"),
      ("dbt-side-exits", s.sideExits, "blocks left early: that instruction ran in the interpreter"),
      ("dbt-tlb-miss-fills", s.tlbMissFills, "reads' inline TLB misses filled by a page walk, generated code going on"),
      (
        "dbt-tlb-miss-exits", s.tlbMissExits, "reads' inline TLB misses left to the interpreter (fault, MMIO, crossing)"
      ),
      (
        "dbt-privilege-transfers", s.privilegeTransfers,
        "SYSCALL/SYSRET/IRETQ run by their helper from generated code"
      ),
      (
        "dbt-privilege-transfer-faults", s.privilegeTransferFaults,
        "SYSCALL/SYSRET/IRETQ that faulted, left to the interpreter"
      ),
      ("dbt-port-io-answered", s.portIOAnswered, "IN/OUT answered inside generated code (lightweight exits)"),
      ("dbt-port-io-exits", s.portIOExits, "IN/OUT left to the interpreter for a full exit"),
      ("dbt-cache-hits", s.cacheHits, "lookups that found a valid translated block"),
      ("dbt-cache-misses", s.cacheMisses, "lookups that translated"),
      ("dbt-invalidations", s.invalidations, "blocks retranslated because their code page was written"),
      ("dbt-blocks-translated", s.blocksTranslated, "blocks translated (with those installed from a translation file)"),
      ("dbt-instructions-translated", s.instructionsTranslated, "guest instructions translated"),
      ("dbt-host-bytes", s.hostBytes, "bytes of host code emitted"),
      ("dbt-constants-folded", s.instructionsFolded, "guest instructions translated into a constant"),
      ("dbt-translation-ns", s.translationNanoseconds, "time spent translating"),
      (
        "dbt-untranslatable-starts", s.untranslatableStarts,
        "addresses whose first instruction stays in the interpreter"
      ),
      ("dbt-cache-flushes", s.cacheFlushes, "times the full code buffer was emptied"),
      ("dbt-chains-patched", s.chainsPatched, "direct branches linked to their target block"),
      (
        "dbt-indirect-hits", s.indirectHits,
        "indirect branches, returns and system calls that found their block in the inline table"
      ),
      ("dbt-indirect-misses", s.indirectMisses, "inline-table lookups that missed (the dispatcher looked up)"),
      ("dbt-callouts", s.callouts, "instructions generated code handed to the interpreter"),
      (
        "dbt-callouts-elsewhere", s.calloutsContinuedElsewhere,
        "callouts after which translated code went on at a new RIP (system calls, returns, interrupts)"
      ),
    ]
      + Operation.allCases.compactMap { operation in
        let n = calloutCounts[Int(operation.rawValue)]
        guard n > 0 else { return nil }
        let name = String(describing: operation)
        return ("dbt-callouts-\(name)", n, "callouts of \(name)")
      }
      + (staticBlocks.map { source in
        [
          ("sbt-blocks-installed", s.staticBlocksInstalled, "blocks installed from the translation file, not compiled"),
          (
            "sbt-blocks-installed-ahead", s.staticBlocksInstalledAhead,
            "of those, blocks installed before they ran, with a block of their page that branches to them"
          ),
          (
            "sbt-host-flags-links", s.hostFlagsLinksPatched,
            "branches linked to leave with the flags uncaptured (dead in the block they reach)"
          ),
          (
            "sbt-register-live-links", s.registerLiveLinksPatched,
            "branches linked to leave with a register region's guest registers kept in host registers "
              + "(with the flags uncaptured too: also counted in sbt-host-flags-links)"
          ),
          (
            "sbt-static-instructions", s.staticTranslatedInstructions,
            "guest instructions completed by code from the translation file"
          ),
          (
            "sbt-dynamic-instructions", s.translatedInstructions &- s.staticTranslatedInstructions,
            "guest instructions completed by code translated at run time"
          ),
        ]
          + source.counters
      } ?? [])
  }
}

/// The host's monotonic clock in nanoseconds (translation time).
enum DispatcherClock {
  static func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
  }
}

/// The C entry point generated code calls for a callout: (translator, next RIP, the decoded
/// instruction) -> 0, 1 or an indirect-branch table (`runCallout`).
private let dbtCallout: @convention(c) (UnsafeMutableRawPointer, UInt64, UnsafeMutableRawPointer) -> UInt64 = {
  context, nextRIP, instruction in
  // The translator outlives its code: no reference counting on this path.
  Unmanaged<DynamicTranslator>.fromOpaque(context)._withUnsafeGuaranteedRef {
    $0.runCallout(nextRIP: nextRIP, instruction: instruction.assumingMemoryBound(to: DecodedInstruction.self))
  }
}

/// The C entry point generated code calls for SYSCALL, SYSRET and IRETQ: (translator, next RIP,
/// `PrivilegeTransfer` raw value) -> 0, 1 or an indirect-branch table (`privilegeTransfer`).
private let dbtPrivilegeTransfer: @convention(c) (UnsafeMutableRawPointer, UInt64, UInt64) -> UInt64 = {
  context, nextRIP, kind in
  Unmanaged<DynamicTranslator>.fromOpaque(context)._withUnsafeGuaranteedRef {
    $0.privilegeTransfer(nextRIP: nextRIP, kind: kind)
  }
}

/// The C entry point generated code calls for IN and OUT: (translator, packed port, size,
/// direction and instructions left, value written) -> value read, or `UInt64.max` (`portIO`).
private let dbtPortIO: @convention(c) (UnsafeMutableRawPointer, UInt64, UInt64) -> UInt64 = {
  context, packed, value in
  Unmanaged<DynamicTranslator>.fromOpaque(context)._withUnsafeGuaranteedRef {
    $0.portIO(packed: packed, value: value)
  }
}

/// The C entry point generated code calls when its inline TLB lookup misses: (translator, linear
/// address, size of a read) -> host address, or 0 to side-exit (`tlbMiss`).
private let dbtTLBMiss: @convention(c) (UnsafeMutableRawPointer, UInt64, UInt64) -> UInt64 = {
  context, linear, size in
  Unmanaged<DynamicTranslator>.fromOpaque(context)._withUnsafeGuaranteedRef {
    $0.tlbMiss(linear: linear, size: Int(size))
  }
}

extension TranslatedCodeMode {
  /// How block names (`TRIVISOR_DBT_DUMP`, perf maps) mark the mode: nothing for 64-bit code.
  var nameSuffix: String {
    switch self {
    case .long64: return ""
    case .flat32Paged: return "32"
    case .flat32Unpaged: return "32u"
    }
  }
}

import X86

#if canImport(Glibc)
  import Glibc
#endif

/// The dynamic binary translator of one vCPU: the seed's four stages around the X86 model.
///
/// 1. **Lookup** (`CodeCache`): the block at (RIP, physical RIP, privilege class), valid while its
///    code page's generation is unchanged.
/// 2. **Context switch**: generated code is entered as a C function with the CPU state page; it
///    returns how many guest instructions it completed, RIP committed (`blockEntries` counts them).
/// 3. **Translation** (`GuestBlock.read` → `BlockCompiler.compile` → `ExecutableMemory`): the
///    decoder's instructions and the interpreter's fast-form classification, emitted as host code
///    by our own assembler into a W^X buffer.
/// 4. **Execute**: blocks run back to back from the dispatcher loop while the budget allows;
///    an instruction a block does not cover, or one whose fast case fails, goes to the interpreter
///    (`CPU.run` steps it), so every guest instruction has one definition of its slow cases.
///
/// Direct branches to a block on the same linear page are linked (`BlockCompiler`); a block
/// retranslated after its page was written takes over the old translation's links.
///
/// Not yet: links across pages, the inline indirect-branch table, guest registers kept in
/// host registers across instructions, and other modes than 64-bit paged code (docs/dbt.md).
package final class DynamicTranslator: BlockExecutor {
  package typealias BlockFunction = @convention(c) (UnsafeMutableRawPointer, UInt64) -> UInt64

  // Touched on every dispatch from this vCPU's thread only: no dynamic exclusivity checks.
  @exclusivity(unchecked) private var cache = CodeCache()
  private let code: ExecutableMemory
  /// Linkable branches by the block they want to reach: buffer offsets of their rel32 fields.
  @exclusivity(unchecked) private var links: [CodeCache.Key: [Int]] = [:]
  @exclusivity(unchecked) private var tables: BlockCompiler.Tables?
  @exclusivity(unchecked) package private(set) var statistics = TranslatorStatistics()

  /// A translator with a code buffer of `codeBytes`.
  package init(codeBytes: Int = 32 << 20) throws(TranslatorError) {
    code = try ExecutableMemory(capacity: codeBytes)
  }

  package func runTranslated(_ cpu: CPU, budget: UInt64) -> UInt64 {
    let tables = self.tables ?? makeTables(cpu)
    let state = cpu.state.raw
    let user = cpu.runsAtUserLevel
    var retired: UInt64 = 0
    while retired < budget {
      let rip = state.load(fromByteOffset: CPUStateLayout.rip, as: UInt64.self)
      guard let physical = cpu.physicalCodeAddress(rip) else { break }
      let key = CodeCache.Key(linear: rip, physicalAndLevel: physical | (user ? 1 << 63 : 0))
      let generation = cpu.codeGeneration(ofPageHolding: physical)
      var block: CodeCache.Block
      if let found = cache.lookup(key), found.generation == generation {
        statistics.cacheHits &+= 1
        block = found
      } else {
        statistics.cacheMisses &+= 1
        if cache.lookup(key) != nil { statistics.invalidations &+= 1 }
        block = translate(cpu, rip: rip, physical: physical, user: user, tables: tables)
      }
      guard let entry = block.entry, UInt64(block.length) <= budget - retired else { break }
      statistics.blockEntries &+= 1
      state.storeBytes(of: 0, toByteOffset: CPUStateLayout.translatorExit, as: UInt64.self)
      let done = unsafeBitCast(entry, to: BlockFunction.self)(state, budget - retired)
      retired &+= done
      if state.load(fromByteOffset: CPUStateLayout.translatorExit, as: UInt64.self) != 0 {
        statistics.sideExits &+= 1
        break
      }
      if done == 0 { break }
    }
    statistics.translatedInstructions &+= retired
    cpu.noteTranslatedRetired(retired)
    return retired
  }

  private func makeTables(_ cpu: CPU) -> BlockCompiler.Tables {
    let t = BlockCompiler.Tables(cpu.translationTables)
    tables = t
    return t
  }

  /// Translates the block at `rip`; a block with no entry when its first instruction is not
  /// translatable.
  private func translate(
    _ cpu: CPU, rip: UInt64, physical: UInt64, user: Bool, tables: BlockCompiler.Tables
  ) -> CodeCache.Block {
    let start = DispatcherClock.now()
    defer { statistics.translationNanoseconds &+= DispatcherClock.now() &- start }
    let guest = GuestBlock.read(from: cpu, rip: rip, physical: physical)
    // Reading may have decoded (and so marked the page): take the generation afterwards.
    let generation = cpu.codeGeneration(ofPageHolding: physical)
    let ownKey = key(rip: rip, physical: physical, user: user)
    guard !guest.instructions.isEmpty else {
      statistics.untranslatableStarts &+= 1
      let marker = CodeCache.Block(entry: nil, length: 0, generation: generation)
      cache.insert(marker, for: ownKey)
      return marker
    }
    let host = BlockCompiler.compile(guest, tables: tables, user: user, generation: generation)
    var offset = code.append(host.code)
    if offset == nil {
      // The buffer is full: start over (every block is retranslated on its next use).
      statistics.cacheFlushes &+= 1
      cache.removeAll()
      links.removeAll()
      code.reset()
      offset = code.append(host.code)
    }
    guard let offset else { return CodeCache.Block(entry: nil, length: 0, generation: generation) }
    let block = CodeCache.Block(
      entry: code.entry(offset), length: guest.instructions.count, generation: generation,
      chainEntry: offset + host.chainEntry)
    cache.insert(block, for: ownKey)
    statistics.blocksTranslated &+= 1
    statistics.instructionsTranslated &+= UInt64(guest.instructions.count)
    statistics.hostBytes &+= UInt64(host.code.count)
    link(into: offset + host.chainEntry, key: ownKey)
    for l in host.links {
      let target = key(rip: l.target, physical: (physical & ~0xFFF) | (l.target & 0xFFF), user: user)
      links[target, default: []].append(offset + l.field)
      if let t = cache.lookup(target), let chainEntry = t.chainEntry { patch(offset + l.field, to: chainEntry) }
    }
    return block
  }

  private func key(rip: UInt64, physical: UInt64, user: Bool) -> CodeCache.Key {
    CodeCache.Key(linear: rip, physicalAndLevel: physical | (user ? 1 << 63 : 0))
  }

  /// Points every branch waiting for `key` at the chained entry at buffer offset `chainEntry`
  /// (a retranslated block takes over the links of its old translation).
  private func link(into chainEntry: Int, key: CodeCache.Key) {
    for field in links[key] ?? [] { patch(field, to: chainEntry) }
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
      ("dbt-cache-hits", s.cacheHits, "lookups that found a valid translated block"),
      ("dbt-cache-misses", s.cacheMisses, "lookups that translated"),
      ("dbt-invalidations", s.invalidations, "blocks retranslated because their code page was written"),
      ("dbt-blocks-translated", s.blocksTranslated, "blocks translated"),
      ("dbt-instructions-translated", s.instructionsTranslated, "guest instructions translated"),
      ("dbt-host-bytes", s.hostBytes, "bytes of host code emitted"),
      ("dbt-translation-ns", s.translationNanoseconds, "time spent translating"),
      (
        "dbt-untranslatable-starts", s.untranslatableStarts,
        "addresses whose first instruction stays in the interpreter"
      ),
      ("dbt-cache-flushes", s.cacheFlushes, "times the full code buffer was emptied"),
      ("dbt-chains-patched", s.chainsPatched, "direct branches linked to their target block"),
    ]
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

import Synchronization

/// A direct-mapped cache of decoded instructions keyed by physical address and code mode.
///
/// Self-modifying code: every page that holds cached code is kept out of the write side of the
/// CPU's host-page cache, so the first write to it takes the slow path, which bumps the page's
/// generation (invalidating its entries) and lets the page back into that cache. Page generations live in a direct-mapped
/// table, so two pages sharing a slot only cause extra (safe) invalidations.
final class DecodeCache {
  static let entryCount = 1 << 15
  static let pageSlots = 1 << 16

  struct Entry {
    /// Physical address | mode << 62 | 1 << 61 (valid).
    var tag: UInt64
    var generation: UInt32
    /// How the interpreter runs it (classified at insertion).
    var form: FastForm
    /// How the general path runs it inside the page-local run loop (`CPU.inPageRun`).
    var inPageRun: CPU.InPageRun
    /// The slot of the instruction that follows it in memory (at physical + length): the page
    /// loops step to it without hashing an address, so finding the next entry is one load
    /// away from this one. Only a place to look: the loops still check its tag and generation.
    var successor: UnsafeMutablePointer<Entry>
    /// For a relative JMP, Jcc or CALL, the slot of its target as far as the decoder can tell
    /// (physical + length + displacement: right unless the target leaves the page or wraps at
    /// the operand size); the successor's slot otherwise. A hint as well, checked like one.
    var branchTarget: UnsafeMutablePointer<Entry>
    var instruction: DecodedInstruction
  }

  /// When false, every entry gets `.generic` (all instructions take `execute`): for comparing the
  /// fast handlers against the general path.
  var classifiesFastForms = true
  /// When false (the default), PAUSE takes the `.nop` fast form and is not counted; when true it
  /// takes the general path, which counts it (`CPU.countsPauses`).
  var countsPauses = false
  /// The CPU model whose instructions this cache holds (a few forms keep the 8086's quirks on the
  /// general path).
  var model: CPUModel = .host64

  let entries: UnsafeMutablePointer<Entry>
  /// The page stamps, possibly shared with other CPUs on other threads (relaxed atomics).
  let pageGeneration: UnsafeMutablePointer<Atomic<UInt32>>
  let pageHasCode: UnsafeMutablePointer<Atomic<Bool>>
  /// This cache's own flush count, added to the page generation an entry is filled under: a flush
  /// (after a TLB flush or a memory-map change) invalidates this CPU's entries only.
  let epoch: UnsafeMutablePointer<UInt32>
  /// The page table when this cache allocated it (nil: the embedder's shared table).
  private let ownedPages: CodePageTable?

  /// A cache over `pages` (the embedder's table shared with other CPUs and its own writers), or
  /// over a table of its own.
  init(pages shared: CodePageTable? = nil) {
    entries = .allocate(capacity: DecodeCache.entryCount)
    entries.initialize(
      repeating: Entry(
        tag: 0, generation: 0, form: .generic, inPageRun: .leaves, successor: entries, branchTarget: entries,
        instruction: DecodedInstruction()),
      count: DecodeCache.entryCount)
    let pages = shared ?? CodePageTable.allocate()
    ownedPages = shared == nil ? pages : nil
    pageGeneration = pages.generation
    pageHasCode = pages.hasCode
    epoch = .allocate(capacity: 1)
    epoch.initialize(to: 0)
  }

  deinit {
    entries.deallocate()
    epoch.deallocate()
    ownedPages?.deallocate()
  }

  @inline(__always) static func tag(_ physical: UInt64, _ mode: CodeMode) -> UInt64 {
    let m: UInt64 = mode == .bits64 ? 2 : mode == .bits32 ? 1 : 0
    return physical | m << 62 | 1 << 61
  }

  @inline(__always) static func slot(_ physical: UInt64) -> Int {
    Int(truncatingIfNeeded: (physical ^ (physical >> 15)) & UInt64(entryCount - 1))
  }

  @inline(__always) static func pageSlot(_ page: UInt64) -> Int {
    Int(truncatingIfNeeded: page & UInt64(pageSlots - 1))
  }

  /// The entry for `physical` in `mode`, looked up in its hashed slot, when it holds that
  /// instruction and was filled under the page's current `generation`. Static over raw pointers so
  /// the run loops, which keep `entries` and the generation of the page they run in, pay no class
  /// access.
  @inline(__always) static func hit(
    _ entries: UnsafeMutablePointer<Entry>, _ physical: UInt64, _ mode: CodeMode, generation: UInt32
  ) -> UnsafeMutablePointer<Entry>? {
    hit(entries + slot(physical), holding: physical, mode, generation: generation)
  }

  /// The one cache-hit test, for an entry whose slot the caller found (hashed, or through a
  /// `successor` or `branchTarget` link): `e` when it holds the instruction at `physical` in
  /// `mode`, filled under `generation`.
  @inline(__always) static func hit(
    _ e: UnsafeMutablePointer<Entry>, holding physical: UInt64, _ mode: CodeMode, generation: UInt32
  ) -> UnsafeMutablePointer<Entry>? {
    e.pointee.tag == tag(physical, mode) && e.pointee.generation == generation ? e : nil
  }

  /// The current generation of the page holding `physical` for a cache at `epoch`.
  @inline(__always) static func generation(
    _ pageGeneration: UnsafeMutablePointer<Atomic<UInt32>>, epoch: UInt32, ofPageHolding physical: UInt64
  ) -> UInt32 {
    pageGeneration[pageSlot(physical >> 12)].load(ordering: .relaxed) &+ epoch
  }

  /// The cached instruction at `physical` in `mode`, if still valid.
  @inline(__always) func lookup(_ physical: UInt64, _ mode: CodeMode) -> UnsafeMutablePointer<Entry>? {
    DecodeCache.hit(
      entries, physical, mode,
      generation: DecodeCache.generation(pageGeneration, epoch: epoch.pointee, ofPageHolding: physical))
  }

  /// Caches `ins` (decoded at `physical` in `mode`) and returns its entry.
  @discardableResult
  func insert(_ physical: UInt64, _ mode: CodeMode, _ ins: DecodedInstruction) -> UnsafeMutablePointer<Entry> {
    let page = DecodeCache.pageSlot(physical >> 12)
    if !pageHasCode[page].load(ordering: .relaxed) { pageHasCode[page].store(true, ordering: .relaxed) }
    let e = entries + DecodeCache.slot(physical)
    let next = physical &+ UInt64(ins.length)
    let relative = ins.operandCount > 0 && ins.operands.0.kind == .relative
    e.pointee = Entry(
      tag: DecodeCache.tag(physical, mode), generation: pageGeneration[page].load(ordering: .relaxed) &+ epoch.pointee,
      form: classifiesFastForms
        ? FastForm.classify(ins, mode: mode, model: model, countingPauses: countsPauses) : .generic,
      inPageRun: CPU.inPageRun(ins), successor: entries + DecodeCache.slot(next),
      branchTarget: entries + DecodeCache.slot(relative ? next &+ ins.immediate : next), instruction: ins)
    return e
  }

  /// Called before a page is written outside the write host-page cache (a miss there, a
  /// system-layer or page-walker store): if the page holds cached code, its entries become invalid
  /// and the page may enter the write host-page cache again.
  @inline(__always) func noteWrite(page: UInt64) {
    let s = DecodeCache.pageSlot(page)
    if pageHasCode[s].load(ordering: .relaxed) {
      pageGeneration[s].wrappingAdd(1, ordering: .relaxed)
      pageHasCode[s].store(false, ordering: .relaxed)
    }
  }

  /// Forgets everything this CPU decoded (other CPUs sharing the page stamps keep theirs).
  func flush() {
    epoch.pointee &+= 1
  }
}

import VMM
import X86

/// Shadow page tables for trap-and-emulate: the real page tables the CPU walks while the
/// deprivileged guest runs, built by the monitor from the guest's own 4-level tables, one shadow
/// per guest address space (CR3) and mode (`ShadowMode`), in frames of a reserved pool.
///
/// Shadows start empty (plus the monitor's own root slots) and fill lazily: each real page fault
/// goes to `handleFault`, which walks the guest's tables with the X86 model's `PageWalker` at the
/// guest's virtual privilege (setting the guest's accessed and dirty bits as the CPU would) and
/// either builds the missing shadow leaf or reports a fault the guest must see. Every guest frame
/// a shadow entry was built through is a page-table page: mapped read-only in every shadow, so a
/// guest store to it faults and the monitor emulates it (`emulatePageTableWrite`), dropping just
/// the shadow leaves built through the entries it changed. Shadows therefore stay coherent with
/// the guest's tables at all times (stricter than a TLB, which is allowed), so a CR3 switch keeps
/// the shadows of other address spaces cached (at most `maximumContexts`, least recently used
/// evicted) and INVLPG has nothing stale to drop (it drops the page anyway).
///
/// A write-protected frame that takes `floodThreshold` emulated writes with no shadow walk through
/// it in between is no longer used as a page table (typically a table of an exited address space,
/// freed by the guest and reused as data, whose shadow is still cached): it is unshadowed — the
/// leaves built through it and the cached shadows rooted at it are dropped — so it stops being
/// write-protected and later stores to it run natively (KVM's shadow MMU does the same: "write
/// flooding"). A frame still in use is protected again by its next walk.
///
/// Supported: 4-level long-mode paging with 4 KiB, 2 MiB and 1 GiB guest pages (shadowed as 4 KiB
/// pages), U/S, R/W, XD (EFER.NXE), CR0.WP and CR4.SMEP. Not supported (`activate` throws):
/// paging off, 32-bit and PAE paging, 5-level paging, CR4.SMAP and CR4.PCIDE.
///
/// The real CPU must run with EFER.NXE (the shadows use XD) and CR0.WP (the monitor's own pages).
/// After any call, `takeRealTLBFlush()` says whether shadow entries were removed or made
/// read-only, so the real TLB must be flushed before the guest runs again.
public final class ShadowPageTables {
  /// One shadow: the guest root it shadows, the mode, and the pool frames it holds.
  final class Context {
    let id: Int
    let key: Key
    let root: UInt64
    var frames: [UInt64]
    var pages: Set<UInt64> = []
    var lastUse: UInt64 = 0

    /// A shadow of guest root and mode `key` whose root table is frame `root`.
    init(id: Int, key: Key, root: UInt64) {
      self.id = id
      self.key = key
      self.root = root
      self.frames = [root]
    }

    /// What a shadow shadows.
    struct Key: Hashable {
      let guestRoot: UInt64
      let mode: ShadowMode
    }
  }

  /// A shadow leaf: one linear page in one shadow.
  struct LeafKey: Hashable {
    let context: Int
    let page: UInt64
  }

  /// Where a shadow leaf lives and what it was built from.
  struct Leaf {
    /// The physical address of the shadow L1 entry.
    let slot: UInt64
    /// The guest entries (physical addresses) the walk read, root to leaf.
    let guestEntries: [UInt64]
    /// Their values after the walk (accessed and dirty bits it set included), root to leaf:
    /// what `resyncChangedEntries(inFrame:)` compares the guest's tables with.
    var guestValues: [UInt64]
    /// The guest frame it maps.
    let frame: UInt64
  }

  /// The guest memory holding the guest's tables and the pool.
  public let memory: GuestMemory
  /// Page-table access for the walker.
  let tables: GuestPhysicalMemory
  /// The frames shadow tables are built in.
  public private(set) var pool: ShadowFramePool
  /// Guest-physical ranges the guest may not map (the monitor's pages; the pool is always one).
  public let protectedRanges: [Range<UInt64>]
  /// Root-table slots (index 0-511 → entry) that belong to the monitor: copied into every shadow
  /// root; the guest's own entries there are ignored and a fault there is `.monitorRegion`.
  public let monitorRootEntries: [Int: UInt64]
  /// How many shadows are kept at most (each address space has up to two: kernel and user).
  public let maximumContexts: Int
  /// Emulated writes to a write-protected frame, with no walk through it in between, after which
  /// it is unshadowed (`unshadow`).
  public let floodThreshold: Int
  /// What the shadows did.
  public private(set) var statistics = ShadowPagingStatistics()
  /// The guest's paging controls of the last `activate`.
  public private(set) var control: PagingControl?
  /// The mode of the active shadow.
  public private(set) var mode: ShadowMode = .kernel
  /// The physical address of the active shadow's root table: what the real CR3 holds.
  public private(set) var activeRoot: UInt64 = 0
  /// Set when shadow entries were removed or made read-only since the last `takeRealTLBFlush()`.
  private var realTLBFlushPending = false
  /// How many times shadow entries were removed or made read-only (or shadows freed) so far: a
  /// real TLB flushed when it read N is stale once it reads more.
  public private(set) var removals: UInt64 = 0

  private var contexts: [Context.Key: Context] = [:]
  private var contextsByID: [Int: Context] = [:]
  private var active: Context?
  private var nextID = 0
  private var clock: UInt64 = 0
  private var leaves: [LeafKey: Leaf] = [:]
  /// Guest entry address → the shadow leaves built through it.
  private var dependents: [UInt64: Set<LeafKey>] = [:]
  /// Guest frame → how many shadow leaves and shadow roots were built through it (present: the
  /// frame is a page-table page and write-protected).
  private var tableFrameUses: [UInt64: Int] = [:]
  /// Guest frame → the shadow leaves that map it (to write-protect it when it becomes a table).
  private var mappers: [UInt64: Set<LeafKey>] = [:]
  /// Page-table frame → emulated writes to it since a shadow walk last read an entry in it.
  private var writesSinceWalk: [UInt64: Int] = [:]

  /// Shadow page tables in guest `memory`, built in the frames of `pool`.
  /// - Parameters:
  ///   - protectedRanges: guest-physical ranges the guest's tables may not map (besides the pool).
  ///   - monitorRootEntries: root slots the monitor keeps in every shadow (index → entry).
  ///   - maximumContexts: how many shadows stay cached (at least 2: one address space's pair).
  ///   - floodThreshold: emulated writes with no walk in between that unshadow a frame (at least 1).
  public init(
    memory: GuestMemory, pool: ShadowFramePool, protectedRanges: [Range<UInt64>] = [],
    monitorRootEntries: [Int: UInt64] = [:], maximumContexts: Int = 8, floodThreshold: Int = 3
  ) throws(ShadowPagingError) {
    guard pool.capacity >= 4 else { throw .poolTooSmall(frames: pool.capacity) }
    self.memory = memory
    self.tables = GuestPhysicalMemory(memory)
    self.pool = pool
    self.protectedRanges = [pool.range] + protectedRanges
    self.monitorRootEntries = monitorRootEntries
    self.maximumContexts = max(2, maximumContexts)
    self.floodThreshold = max(1, floodThreshold)
  }

  /// How many shadows are cached.
  public var cachedContexts: Int { contexts.count }

  /// The guest frames write-protected as page-table pages (every frame a shadow was built through).
  public var pageTableFrames: Dictionary<UInt64, Int>.Keys { tableFrameUses.keys }

  /// Whether guest frame `physical` is write-protected as a page-table page.
  public func isPageTableFrame(_ physical: UInt64) -> Bool { tableFrameUses[physical & ~0xFFF] != nil }

  /// True once if shadow entries were removed or downgraded since the last call: the monitor then
  /// flushes the real TLB (reloads the real CR3) before resuming the guest.
  public func takeRealTLBFlush() -> Bool {
    defer { realTLBFlushPending = false }
    return realTLBFlushPending
  }

  // MARK: Switching shadows

  /// Makes the shadow of the guest's paging state `control` (its CR0, CR3, CR4 and EFER) in
  /// `mode` the active one, building an empty one if none is cached, and returns its root (the
  /// real CR3). A change of the controls the shadow rights depend on (CR0.WP, CR4.SMEP, EFER.NXE)
  /// flushes every shadow first.
  @discardableResult
  public func activate(control: PagingControl, mode: ShadowMode) throws(ShadowPagingError) -> UInt64 {
    try Self.check(control)
    if let old = self.control, Self.rightsControls(old) != Self.rightsControls(control) {
      dropAll()
      statistics.flushes += 1
    }
    self.control = control
    let key = Context.Key(guestRoot: control.cr3 & Self.rootMask(control), mode: mode)
    clock += 1
    if let active, active.key == key {
      active.lastUse = clock
      return activeRoot
    }
    if active != nil { statistics.contextSwitches += 1 }
    let context = contexts[key] ?? createContext(key)
    context.lastUse = clock
    active = context
    self.mode = mode
    activeRoot = context.root
    return activeRoot
  }

  /// Drops every shadow (counted as a flush) and rebuilds an empty active one; the real CR3 must
  /// then be loaded with `activeRoot`.
  public func flush() {
    let key = active?.key
    dropAll()
    statistics.flushes += 1
    if let key {
      let context = createContext(key)
      context.lastUse = clock
      active = context
      activeRoot = context.root
    }
  }

  /// INVLPG `linear`: the shadow leaves of its page are dropped in every shadow.
  public func invalidatePage(_ linear: UInt64) {
    statistics.invalidations += 1
    let page = linear >> 12
    for context in contexts.values { removeLeaf(LeafKey(context: context.id, page: page), clearEntry: true) }
  }

  // MARK: Faults

  /// Classifies a real page fault at `linear` for an access of `kind` while the active shadow
  /// runs, building the shadow leaf when the guest's tables allow the access.
  public func handleFault(linear: UInt64, kind: MemoryAccessKind) -> ShadowFaultResolution {
    statistics.shadowFaults += 1
    guard let control, let context = active else { preconditionFailure("handleFault before activate") }
    if monitorRootEntries[Int((linear >> 39) & 0x1FF)] != nil { return .monitorRegion }
    let recorder = WalkRecorder(tables)
    let translation: Translation
    defer { for entry in recorder.addresses { writesSinceWalk[entry & ~0xFFF] = nil } }
    do throws(PageFault) {
      translation = try PageWalker.translate(
        linear, kind: kind, user: mode.isUser, control: control, memory: recorder)
    } catch {
      statistics.guestFaults += 1
      return .guestFault(error)
    }
    let frame = translation.physicalAddress & ~0xFFF
    if protectedRanges.contains(where: { $0.contains(frame) }) {
      return .forbiddenFrame(physicalAddress: translation.physicalAddress)
    }
    var rootChanged = false
    var slot = shadowSlot(linear, in: context)
    if slot == nil {
      // The pool ran out with nothing left to evict: start over with empty shadows.
      flush()
      rootChanged = true
      slot = shadowSlot(linear, in: active!)
    }
    guard let slot, let owner = active else { preconditionFailure("a 4-frame pool always holds one path") }
    let key = LeafKey(context: owner.id, page: linear >> 12)
    let old = readShadow(slot)
    removeLeaf(key, clearEntry: false)
    for entry in recorder.addresses { addDependency(entry, of: key) }
    let pageTable = tableFrameUses[frame] != nil
    guard
      let entry = ShadowEntry.leaf(
        for: translation, leafEntry: recorder.values.last ?? 0, mode: mode, control: control, pageTable: pageTable)
    else { preconditionFailure("a walk that succeeded in a mode maps the page in that mode") }
    writeShadow(slot, entry)
    leaves[key] = Leaf(slot: slot, guestEntries: recorder.addresses, guestValues: recorder.valuesAfter, frame: frame)
    mappers[frame, default: []].insert(key)
    owner.pages.insert(key.page)
    if kind == .write && pageTable { return .pageTableWrite(physicalAddress: translation.physicalAddress) }
    if !rootChanged && old == entry && Self.allows(entry, kind) {
      statistics.spuriousFaults += 1
      return .spurious
    }
    statistics.fills += 1
    return .filled(rootChanged: rootChanged)
  }

  /// Emulates the guest's store of `size` bytes (1-8, within one page) of `value` at guest-physical
  /// `physical` on a write-protected page-table page, and drops the shadow leaves built through
  /// the entries it touched (they refill from the new entries on their next access).
  public func emulatePageTableWrite(physical: UInt64, value: UInt64, size: Int) throws(MemoryError) {
    precondition((1...8).contains(size) && physical & 0xFFF + UInt64(size) <= 0x1000, "one store within a page")
    let bytes = (0..<size).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) }
    try memory.write(physical, bytes: bytes)
    statistics.pageTableWrites += 1
    resync(physical..<physical + UInt64(size))
    countWrite(physical & ~0xFFF)
  }

  /// Tells the shadows that the monitor wrote guest memory directly (its emulation of the guest's
  /// instructions and event frames): writes to page-table pages resync the leaves built from them.
  public func noteGuestWrites(_ ranges: [Range<UInt64>]) {
    for range in ranges where !range.isEmpty {
      var frame = range.lowerBound & ~0xFFF
      while frame < range.upperBound {
        if tableFrameUses[frame] != nil {
          resync(max(frame, range.lowerBound)..<min(frame + 0x1000, range.upperBound))
          countWrite(frame)
        }
        frame += 0x1000
      }
    }
  }

  /// Guest page-table frame `frame` was written behind the write protection (by code that does
  /// not trap: the hybrid engine's kernel side): the shadow leaves built through an entry of it
  /// whose value changed since their walk are dropped. An entry whose only change is an accessed
  /// or dirty bit set (the guest's own walks set them) keeps its leaves: a leaf is at most
  /// stricter than the new entry, and the next access that needs more faults and refills it.
  /// Returns how many leaves were dropped (each a resync).
  @discardableResult
  public func resyncChangedEntries(inFrame frame: UInt64) -> Int {
    let frame = frame & ~0xFFF
    guard tableFrameUses[frame] != nil else { return 0 }
    let accessedDirty: UInt64 = 0x60
    var stale: Set<LeafKey> = []
    for entry in stride(from: frame, to: frame + 0x1000, by: 8) {
      guard let keys = dependents[entry] else { continue }
      let value = tables.readEntry(entry, size: 8) ?? 0
      for key in keys {
        guard var leaf = leaves[key], let i = leaf.guestEntries.firstIndex(of: entry) else { continue }
        let old = leaf.guestValues[i]
        if old == value { continue }
        if (old ^ value) & ~accessedDirty == 0 && old & ~value & accessedDirty == 0 {
          leaf.guestValues[i] = value
          leaves[key] = leaf
        } else {
          stale.insert(key)
        }
      }
    }
    for key in stale { removeLeaf(key, clearEntry: true) }
    statistics.resyncs += UInt64(stale.count)
    return stale.count
  }

  /// Stops shadowing guest frame `frame` as a page table: drops every shadow leaf built through an
  /// entry in it and every cached shadow rooted at it, so it is no longer write-protected (its
  /// read-only mappings become writable on their next write fault). The active address space's
  /// root is kept (its shadows stay; the frame stays protected). A later walk through the frame
  /// protects it again. Returns whether the frame is now unprotected.
  @discardableResult
  public func unshadow(_ frame: UInt64) -> Bool {
    let frame = frame & ~0xFFF
    writesSinceWalk[frame] = nil
    guard tableFrameUses[frame] != nil else { return true }
    if let active, active.key.guestRoot == frame { return false }
    var keys: Set<LeafKey> = []
    for entry in stride(from: frame, to: frame + 0x1000, by: 8) { keys.formUnion(dependents[entry] ?? []) }
    for key in keys { removeLeaf(key, clearEntry: true) }
    for context in Array(contexts.values) where context.key.guestRoot == frame { destroy(context) }
    statistics.unshadowedFrames += 1
    return tableFrameUses[frame] == nil
  }

  /// The active-mode shadow leaf of `linear` in the shadow of guest root `cr3` (the active root
  /// when nil) and `mode` (the active mode when nil), nil when none is built. For diagnostics and
  /// tests.
  public func shadowLeaf(_ linear: UInt64, cr3: UInt64? = nil, mode: ShadowMode? = nil) -> UInt64? {
    guard let control else { return nil }
    let key = Context.Key(
      guestRoot: (cr3 ?? control.cr3) & Self.rootMask(control), mode: mode ?? self.mode)
    guard let context = contexts[key] else { return nil }
    var table = context.root
    for level in [4, 3, 2] {
      let entry = readShadow(table + ((linear >> UInt64(12 + 9 * (level - 1))) & 0x1FF) * 8)
      guard entry & ShadowEntry.present != 0 else { return nil }
      table = entry & ShadowEntry.frameMask
    }
    let leaf = readShadow(table + ((linear >> 12) & 0x1FF) * 8)
    return leaf & ShadowEntry.present != 0 ? leaf : nil
  }

  // MARK: Building shadows

  /// Rejects paging states the shadows do not implement.
  static func check(_ control: PagingControl) throws(ShadowPagingError) {
    guard control.pagingEnabled else { throw .unsupported("paging off (CR0.PG clear)") }
    guard control.longMode, control.pae else { throw .unsupported("32-bit or PAE paging (only 4-level long mode)") }
    guard !control.la57 else { throw .unsupported("5-level paging (CR4.LA57)") }
    guard !control.smap else { throw .unsupported("CR4.SMAP") }
    guard control.cr4 & CR4.pcide == 0 else { throw .unsupported("process-context identifiers (CR4.PCIDE)") }
  }

  /// The controls the shadow leaves' rights depend on.
  static func rightsControls(_ control: PagingControl) -> [UInt64] {
    [control.cr0 & CR0.wp, control.cr4 & CR4.smep, control.efer & EFER.nxe, UInt64(control.physicalAddressBits)]
  }

  /// The bits of CR3 that name the root table.
  static func rootMask(_ control: PagingControl) -> UInt64 {
    ((UInt64(1) << UInt64(control.physicalAddressBits)) - 1) & ~0xFFF
  }

  /// Whether shadow leaf `entry` allows an access of `kind` at ring 3.
  static func allows(_ entry: UInt64, _ kind: MemoryAccessKind) -> Bool {
    guard entry & ShadowEntry.present != 0, entry & ShadowEntry.user != 0 else { return false }
    switch kind {
    case .read: return true
    case .write: return entry & ShadowEntry.writable != 0
    case .execute: return entry & ShadowEntry.noExecute == 0
    }
  }

  /// A new empty shadow for `key`: a root with the monitor's slots; the guest's root frame becomes
  /// a write-protected page-table page.
  private func createContext(_ key: Context.Key) -> Context {
    var root = allocateFrame(keeping: nil)
    if root == nil {
      dropAll()
      statistics.flushes += 1
      root = allocateFrame(keeping: nil)
    }
    guard let root else { preconditionFailure("an empty pool has a frame") }
    for (index, entry) in monitorRootEntries { writeShadow(root + UInt64(index) * 8, entry) }
    let context = Context(id: nextID, key: key, root: root)
    nextID += 1
    contexts[key] = context
    contextsByID[context.id] = context
    addTableFrameUse(key.guestRoot)
    while contexts.count > maximumContexts, let victim = leastRecentlyUsed(excluding: context) {
      destroy(victim)
      statistics.evictions += 1
    }
    return context
  }

  /// A zeroed pool frame; when the pool is empty, other shadows are evicted, least recently used
  /// first (never `keeping`). Nil when nothing is left to evict.
  private func allocateFrame(keeping: Context?) -> UInt64? {
    var frame = pool.allocate()
    if frame == nil {
      statistics.poolExhaustions += 1
      while pool.available == 0, let victim = leastRecentlyUsed(excluding: keeping) {
        destroy(victim)
        statistics.evictions += 1
      }
      frame = pool.allocate()
    }
    guard let frame else { return nil }
    try? memory.fill(frame, length: 4096)
    return frame
  }

  /// The least recently used shadow other than `context`.
  private func leastRecentlyUsed(excluding context: Context?) -> Context? {
    contexts.values.filter { $0 !== context }.min { $0.lastUse < $1.lastUse }
  }

  /// The physical address of the shadow L1 entry of `linear` in `context`, building the shadow
  /// tables on the way; nil when the pool runs out.
  private func shadowSlot(_ linear: UInt64, in context: Context) -> UInt64? {
    var table = context.root
    for level in [4, 3, 2] {
      let slot = table + ((linear >> UInt64(12 + 9 * (level - 1))) & 0x1FF) * 8
      let entry = readShadow(slot)
      if entry & ShadowEntry.present != 0 {
        table = entry & ShadowEntry.frameMask
        continue
      }
      guard let frame = allocateFrame(keeping: context), contexts[context.key] === context else { return nil }
      context.frames.append(frame)
      writeShadow(slot, ShadowEntry.table(frame))
      table = frame
    }
    return table + ((linear >> 12) & 0x1FF) * 8
  }

  // MARK: Dependencies

  /// Records that leaf `key` was built through guest entry `entry`.
  private func addDependency(_ entry: UInt64, of key: LeafKey) {
    dependents[entry, default: []].insert(key)
    addTableFrameUse(entry & ~0xFFF)
  }

  /// One more shadow structure built through guest frame `frame`: the first makes it a
  /// page-table page, read-only in every shadow leaf that maps it.
  private func addTableFrameUse(_ frame: UInt64) {
    if let uses = tableFrameUses[frame] {
      tableFrameUses[frame] = uses + 1
      return
    }
    tableFrameUses[frame] = 1
    for key in mappers[frame] ?? [] {
      guard let leaf = leaves[key] else { continue }
      let entry = readShadow(leaf.slot)
      if entry & ShadowEntry.writable != 0 {
        writeShadow(leaf.slot, entry & ~ShadowEntry.writable)
        realTLBFlushPending = true
        removals &+= 1
      }
    }
  }

  /// One shadow structure less through `frame`; at none it is an ordinary page again (its
  /// read-only leaves become writable on their next write fault).
  private func removeTableFrameUse(_ frame: UInt64) {
    guard let uses = tableFrameUses[frame] else { return }
    tableFrameUses[frame] = uses > 1 ? uses - 1 : nil
  }

  /// Forgets leaf `key` and its dependencies; `clearEntry` also clears the shadow entry.
  private func removeLeaf(_ key: LeafKey, clearEntry: Bool) {
    guard let leaf = leaves.removeValue(forKey: key) else { return }
    if clearEntry {
      writeShadow(leaf.slot, 0)
      realTLBFlushPending = true
      removals &+= 1
    }
    for entry in leaf.guestEntries {
      if var set = dependents[entry] {
        set.remove(key)
        dependents[entry] = set.isEmpty ? nil : set
      }
      removeTableFrameUse(entry & ~0xFFF)
    }
    if var set = mappers[leaf.frame] {
      set.remove(key)
      mappers[leaf.frame] = set.isEmpty ? nil : set
    }
    contextsByID[key.context]?.pages.remove(key.page)
  }

  /// Counts an emulated write to page-table frame `frame`; at `floodThreshold` writes with no walk
  /// through it in between, the frame is unshadowed.
  private func countWrite(_ frame: UInt64) {
    guard tableFrameUses[frame] != nil else {
      writesSinceWalk[frame] = nil
      return
    }
    let writes = (writesSinceWalk[frame] ?? 0) + 1
    writesSinceWalk[frame] = writes
    if writes >= floodThreshold { unshadow(frame) }
  }

  /// Drops the shadow leaves built through the guest entries overlapping `range`.
  private func resync(_ range: Range<UInt64>) {
    var keys: Set<LeafKey> = []
    var entry = range.lowerBound & ~7
    while entry < range.upperBound {
      keys.formUnion(dependents[entry] ?? [])
      entry += 8
    }
    for key in keys { removeLeaf(key, clearEntry: true) }
    statistics.resyncs += UInt64(keys.count)
  }

  /// Frees a shadow and everything recorded about it.
  private func destroy(_ context: Context) {
    for page in context.pages { removeLeaf(LeafKey(context: context.id, page: page), clearEntry: false) }
    removeTableFrameUse(context.key.guestRoot)
    for frame in context.frames { pool.release(frame) }
    contexts[context.key] = nil
    contextsByID[context.id] = nil
    if active === context { active = nil }
    realTLBFlushPending = true
    removals &+= 1
  }

  /// Frees every shadow.
  private func dropAll() {
    for context in Array(contexts.values) { destroy(context) }
    pool.reset()
    leaves = [:]
    dependents = [:]
    tableFrameUses = [:]
    mappers = [:]
    writesSinceWalk = [:]
    active = nil
  }

  private func readShadow(_ physical: UInt64) -> UInt64 { (try? memory.read(UInt64.self, at: physical)) ?? 0 }

  private func writeShadow(_ physical: UInt64, _ value: UInt64) { try? memory.write(value, at: physical) }
}

/// Page-table access that records the entries a walk reads (their addresses and values, root to
/// leaf), so the shadow leaf built from the walk knows which guest entries it depends on.
final class WalkRecorder: PageTableMemory {
  let base: GuestPhysicalMemory
  var addresses: [UInt64] = []
  var values: [UInt64] = []
  /// The entries' values after the walk: `values` with the accessed and dirty bits it set.
  var valuesAfter: [UInt64] = []

  /// A recorder reading through `base`.
  init(_ base: GuestPhysicalMemory) { self.base = base }

  func readEntry(_ physical: UInt64, size: Int) -> UInt64? {
    let value = base.readEntry(physical, size: size)
    addresses.append(physical)
    values.append(value ?? 0)
    valuesAfter.append(value ?? 0)
    return value
  }

  func writeEntry(_ physical: UInt64, value: UInt64, size: Int) {
    base.writeEntry(physical, value: value, size: size)
    if let i = addresses.lastIndex(of: physical) { valuesAfter[i] = value }
  }
}

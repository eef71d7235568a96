/// A software TLB in front of `PageWalker` for the interpreter's memory accesses: six direct-mapped
/// tables of 1024 entries (`set`), one per (access kind, user/supervisor), each entry caching one 4 KiB
/// linear page's host pointer (nil for MMIO/unbacked pages) and physical page. A hit is an index,
/// a load and a compare (`hostPointer`).
///
/// Flush rules (SDM vol. 3, "Invalidation of TLBs and Paging-Structure Caches"): MOV CR3 drops
/// non-global entries (`flushNonGlobal`); CR4.PGE/PAE/PSE/SMEP/SMAP/PCIDE/LA57, CR0.PG/WP/PE and
/// EFER.NXE changes drop everything (`flushAll`); INVLPG drops every entry inside the (possibly
/// large) page containing the address. Pass the `SystemEffects` of a system instruction to `apply`.
///
/// Entries are only filled from successful walks; write entries only once the dirty bit is set, so
/// a cached write never skips a dirty-bit update. Supervisor data accesses to user pages under
/// SMAP are never cached (their outcome depends on RFLAGS.AC). Host pointers stay valid only while
/// the guest-physical memory map is unchanged: call `flushAll` when the VMM remaps RAM or ROM.
public final class SoftTLB {
  /// One cached page. 32 bytes: generated code indexes the tables with this stride.
  public struct Entry {
    /// Linear page address (4 KiB aligned), or `invalidTag`.
    public var tag: UInt64
    /// `tag` when the page is RAM (reachable through `addend`), else `invalidTag`: the fast paths
    /// (the interpreter's and generated code's) compare a linear page with this one field and
    /// need no separate test for MMIO.
    public var ramTag: UInt64
    /// Host address of the page minus `tag` (wrapping): a linear address in the page plus this is
    /// its host address. 0 when the page is not RAM.
    public var addend: UInt
    /// The physical page address in bits 63-12; below them, the size of the page the translation
    /// came from as a shift (bits 5-0: 12, 21 or 30) and whether it is global (bit 6).
    public var physicalAndKind: UInt64

    /// Physical address of the 4 KiB page.
    public var physicalPage: UInt64 { physicalAndKind & ~0xFFF }
    /// log2 of the size of the page the translation came from, for INVLPG.
    public var pageShift: UInt8 { UInt8(truncatingIfNeeded: physicalAndKind & 0x3F) }
    /// Whether the translation is global.
    public var global: Bool { physicalAndKind & 0x40 != 0 }
    /// Host address of the 4 KiB page, nil when the page is not RAM (MMIO).
    public var host: UnsafeMutableRawPointer? {
      ramTag == Self.invalidTag ? nil : UnsafeMutableRawPointer(bitPattern: addend &+ UInt(truncatingIfNeeded: tag))
    }
    /// Mask of the page the translation came from (~(size-1)).
    public var pageMask: UInt64 { ~((1 << UInt64(pageShift)) &- 1) }

    init(tag: UInt64, ramTag: UInt64, addend: UInt, physicalPage: UInt64, pageShift: UInt8, global: Bool) {
      self.tag = tag
      self.ramTag = ramTag
      self.addend = addend
      physicalAndKind = physicalPage & ~0xFFF | UInt64(pageShift & 0x3F) | (global ? 0x40 : 0)
    }

    /// A tag no linear page has.
    public static let invalidTag: UInt64 = 1
    static var empty: Entry {
      Entry(tag: invalidTag, ramTag: invalidTag, addend: 0, physicalPage: 0, pageShift: 12, global: false)
    }
  }

  /// Entries per table.
  public static let sets = 1024
  static let tables = 6

  @usableFromInline let entries: UnsafeMutablePointer<Entry>
  /// Counts since the last full flush, to keep flushes and INVLPG cheap when nothing special is cached.
  var globalEntries = 0
  var largeEntries = 0
  /// Flushes so far (full, non-global and INVLPG): the binary translator compares it around a
  /// callout, since any of them may have dropped the mapping of the code it would go on to.
  public var flushCount: Int { flushCounter.pointee }
  /// Where `flushCount` lives (a fixed address, so the CPU reads it without going through the
  /// object graph).
  let flushCounter: UnsafeMutablePointer<Int>
  /// Slots filled since the last full flush (with repeats), so flushes touch only those, until
  /// more were filled than the table has slots (`filledOverflowed`: then flushes scan everything).
  /// The lists keep their storage across flushes: a guest switching address spaces (a MOV CR3 per
  /// context switch) allocates nothing here.
  @exclusivity(unchecked) private var filledSlots: [Int32] = []
  @exclusivity(unchecked) private var filledOverflowed = false
  /// Slots filled from large pages since the last full flush (with repeats), until there were more
  /// than `largeSlotLimit` (`largeOverflowed`): INVLPG looks at those and the page's own set
  /// instead of scanning every entry.
  @exclusivity(unchecked) private var largeSlots: [Int32] = []
  @exclusivity(unchecked) private var largeOverflowed = false
  private static let largeSlotLimit = 512
  /// `flushNonGlobal`'s scratch: the slots it keeps, and one bit per slot it has seen (all clear
  /// between flushes).
  @exclusivity(unchecked) private var keptSlots: [Int32] = []
  private let seenSlots: UnsafeMutablePointer<UInt64>

  /// The CPU state whose allocation holds `entries` (kept alive with the TLB), or nil when the
  /// TLB allocated them itself.
  private let storageOwner: CPUState?

  /// Bytes the entries take (after a CPU's state page: `CPUStateLayout.pagingTLB`).
  public static var storageBytes: Int { MemoryLayout<Entry>.stride * sets * tables }

  /// An empty TLB, its entries after the state page of `state` (where generated code addresses
  /// them from the state register) or, when nil, in an allocation of its own.
  public init(in state: CPUState? = nil) {
    storageOwner = state
    if let state {
      entries = state.pagingTLBStorage.bindMemory(to: Entry.self, capacity: Self.sets * Self.tables)
    } else {
      entries = UnsafeMutablePointer<Entry>.allocate(capacity: Self.sets * Self.tables)
    }
    flushCounter = .allocate(capacity: 1)
    flushCounter.initialize(to: 0)
    seenSlots = .allocate(capacity: Self.sets * Self.tables / 64)
    seenSlots.initialize(repeating: 0, count: Self.sets * Self.tables / 64)
    entries.initialize(repeating: .empty, count: Self.sets * Self.tables)
  }

  deinit {
    entries.deinitialize(count: Self.sets * Self.tables)
    if storageOwner == nil { entries.deallocate() }
    flushCounter.deallocate()
    seenSlots.deallocate()
  }

  /// The set of `linear`'s page within a table: the low 10 bits of the page number, so 1024
  /// consecutive pages get 1024 different sets and pages 1 MiB apart (a stack top and a data page
  /// below it, say) do not evict each other. Two neighbouring pages never share a set, which the
  /// translator's inline lookup relies on to make an access that crosses into the next page miss
  /// (it looks up the first byte's set and compares the last byte's page).
  @inlinable static func set(_ linear: UInt64) -> Int {
    Int(truncatingIfNeeded: (linear >> 12) & UInt64(sets - 1))
  }

  @inlinable static func slot(_ linear: UInt64, kind: MemoryAccessKind, user: Bool) -> Int {
    set(linear) | Int(kind.rawValue) << 11 | (user ? sets : 0)
  }

  /// The host address of `linear` if its page is cached for this access, else nil (miss or MMIO).
  /// The caller must not cross a page boundary with one access.
  @inlinable @inline(__always)
  public func hostPointer(_ linear: UInt64, kind: MemoryAccessKind, user: Bool) -> UnsafeMutableRawPointer? {
    let entry = entries[Self.slot(linear, kind: kind, user: user)]
    guard entry.ramTag == linear & ~0xFFF else { return nil }
    return UnsafeMutableRawPointer(bitPattern: entry.addend &+ UInt(truncatingIfNeeded: linear))
  }

  /// The cached entry for `linear` (hits on MMIO pages too), or nil on a miss.
  @inlinable @inline(__always)
  public func entry(_ linear: UInt64, kind: MemoryAccessKind, user: Bool) -> Entry? {
    let entry = entries[Self.slot(linear, kind: kind, user: user)]
    return entry.tag == linear & ~0xFFF ? entry : nil
  }

  /// Caches the walk result `translation` for `linear`. `host` is the host address of the 4 KiB
  /// physical page containing the translated address (nil for MMIO).
  public func fill(
    _ linear: UInt64, kind: MemoryAccessKind, user: Bool, translation: Translation, host: UnsafeMutableRawPointer?,
    control: PagingControl
  ) {
    if kind == .write && !translation.dirty { return }
    if !user && kind != .execute && translation.user && control.smap && control.pagingEnabled { return }
    let index = Self.slot(linear, kind: kind, user: user)
    if translation.global { globalEntries += 1 }
    if translation.pageShift > 12 {
      largeEntries += 1
      if !largeOverflowed {
        if largeSlots.count < Self.largeSlotLimit { largeSlots.append(Int32(index)) } else { largeOverflowed = true }
      }
    }
    if !filledOverflowed {
      if filledSlots.count < Self.sets * Self.tables {
        filledSlots.append(Int32(index))
      } else {
        filledOverflowed = true
      }
    }
    let tag = linear & ~0xFFF
    entries[index] = Entry(
      tag: tag, ramTag: host == nil ? Entry.invalidTag : tag,
      addend: host.map { UInt(bitPattern: $0) &- UInt(truncatingIfNeeded: tag) } ?? 0,
      physicalPage: translation.physicalAddress & ~0xFFF, pageShift: translation.pageShift, global: translation.global)
  }

  /// Walks the page tables for `linear` and caches the result. `hostPage` maps a 4 KiB-aligned
  /// physical address to host memory (nil for MMIO). Returns the physical address and the host
  /// address of the byte.
  public func translate(
    _ linear: UInt64, kind: MemoryAccessKind, user: Bool, control: PagingControl, tables: some PageTableMemory,
    alignmentCheckFlag: Bool = false, hostPage: (UInt64) -> UnsafeMutableRawPointer?
  ) throws(PageFault) -> (physical: UInt64, host: UnsafeMutableRawPointer?) {
    let translation = try PageWalker.translate(
      linear, kind: kind, user: user, control: control, memory: tables, alignmentCheckFlag: alignmentCheckFlag)
    let host = hostPage(translation.physicalAddress & ~0xFFF)
    fill(linear, kind: kind, user: user, translation: translation, host: host, control: control)
    return (translation.physicalAddress, host.map { $0 + Int(translation.physicalAddress & 0xFFF) })
  }

  /// Drops every entry, global ones included.
  public func flushAll() {
    if filledOverflowed {
      for i in 0..<(Self.sets * Self.tables) { entries[i] = .empty }
    } else {
      for i in filledSlots { entries[Int(i)] = .empty }
    }
    filledSlots.removeAll(keepingCapacity: true)
    filledOverflowed = false
    largeSlots.removeAll(keepingCapacity: true)
    largeOverflowed = false
    globalEntries = 0
    largeEntries = 0
    flushCounter.pointee += 1
  }

  /// Drops every non-global entry (MOV CR3).
  public func flushNonGlobal() {
    guard globalEntries > 0 else { return flushAll() }
    var globals = 0
    var large = 0
    keptSlots.removeAll(keepingCapacity: true)
    func visit(_ i: Int) {
      if entries[i].global && entries[i].tag != Entry.invalidTag {
        globals += 1
        if entries[i].pageShift != 12 { large += 1 }
        keptSlots.append(Int32(i))
      } else {
        entries[i] = .empty
      }
    }
    if filledOverflowed {
      for i in 0..<(Self.sets * Self.tables) { visit(i) }
    } else {
      // A slot may be listed more than once: the bits make each count once.
      for slot in filledSlots {
        let i = Int(slot)
        let bit: UInt64 = 1 << UInt64(i & 63)
        guard seenSlots[i >> 6] & bit == 0 else { continue }
        seenSlots[i >> 6] |= bit
        visit(i)
      }
      for slot in filledSlots { seenSlots[Int(slot) >> 6] = 0 }
    }
    swap(&filledSlots, &keptSlots)
    filledOverflowed = false
    largeSlots.removeAll(keepingCapacity: true)
    largeOverflowed = filledSlots.count > Self.largeSlotLimit
    if !largeOverflowed {
      for slot in filledSlots where entries[Int(slot)].pageShift != 12 { largeSlots.append(slot) }
    }
    globalEntries = globals
    largeEntries = large
    flushCounter.pointee += 1
  }

  /// INVLPG: drops the entries of the page containing `linear`, global or not; for a large page,
  /// every 4 KiB entry cached from it.
  public func invalidate(_ linear: UInt64) {
    flushCounter.pointee += 1
    if largeEntries == 0 {
      for table in 0..<Self.tables {
        let i = table * Self.sets + Self.set(linear)
        if entries[i].tag == linear & ~0xFFF { entries[i] = .empty }
      }
      return
    }
    func drop(_ i: Int) {
      let mask = entries[i].pageMask
      if entries[i].tag != Entry.invalidTag && entries[i].tag & mask == linear & mask { entries[i] = .empty }
    }
    if !largeOverflowed {
      // The page's own entries, then every entry cached from a large page.
      for table in 0..<Self.tables { drop(table * Self.sets + Self.set(linear)) }
      for i in largeSlots { drop(Int(i)) }
      return
    }
    for i in 0..<(Self.sets * Self.tables) { drop(i) }
  }

  /// Applies the TLB part of a system instruction's effects.
  public func apply(_ effects: SystemEffects) {
    if effects.contains(.flushTLB) {
      flushAll()
    } else if effects.contains(.flushNonGlobalTLB) {
      flushNonGlobal()
    }
  }
}

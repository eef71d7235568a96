import Testing
import TrapAndEmulate
import VMM
import X86

/// The shadow page tables' bookkeeping: accessed and dirty bits, large pages, CR3 switches, the two
/// modes, INVLPG, guest page-table writes, the pool running out, the bound on cached shadows.
@Suite struct ShadowPageTablesTests {
  static let page: UInt64 = 0x0000_4000_0020_0000

  @Test func accessedAndDirtyBitsAreSetExactlyWhenTheCPUWouldSetThem() throws {
    let (memory, tables, shadows) = try makeGuest()
    try tables.map(Self.page, to: 0x8_2000, leaf: PTE.rw | PTE.us)
    try shadows.activate(control: guestControl(root: tables.root), mode: .kernel)
    #expect(try tables.entry(Self.page, level: 1) & (PTE.a | PTE.d) == 0)
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_2000))
    #expect(try tables.entry(Self.page, level: 1) & (PTE.a | PTE.d) == PTE.a, "a read sets A only")
    for level in 2...4 { #expect(try tables.entry(Self.page, level: level) & PTE.a != 0) }
    let readOnly = try #require(shadows.shadowLeaf(Self.page))
    #expect(readOnly & ShadowEntry.writable == 0, "mapped read-only until the first write")
    #expect(shadowAccess(Self.page, kind: .write, shadows: shadows) == .ok(physical: 0x8_2000))
    #expect(try tables.entry(Self.page, level: 1) & (PTE.a | PTE.d) == PTE.a | PTE.d, "the first write sets D")
    #expect(try #require(shadows.shadowLeaf(Self.page)) & ShadowEntry.writable != 0)
    // The guest clears D through its (write-protected) tables: the shadow is read-only again and
    // the next write sets D once more.
    let pte = try tables.entryAddress(Self.page, level: 1)
    let cleared = try memory.read(UInt64.self, at: pte) & ~(PTE.a | PTE.d)
    try shadows.emulatePageTableWrite(physical: pte, value: cleared, size: 8)
    #expect(shadows.shadowLeaf(Self.page) == nil, "the write dropped the leaf built from the entry")
    #expect(shadowAccess(Self.page, kind: .write, shadows: shadows) == .ok(physical: 0x8_2000))
    #expect(try tables.entry(Self.page, level: 1) & (PTE.a | PTE.d) == PTE.a | PTE.d)
    #expect(shadows.statistics.resyncs == 1)
  }

  @Test func largePagesAreShadowedAsSmallPagesWithTheirBitsInTheLargeEntry() throws {
    let (_, tables, shadows) = try makeGuest()
    try tables.set(Self.page, level: 2, 0x20_0000 | PTE.p | PTE.rw | PTE.us | PTE.ps)
    try shadows.activate(control: guestControl(root: tables.root), mode: .user)
    let inside = Self.page + 0x3_4567
    #expect(shadowAccess(inside, kind: .write, shadows: shadows) == .ok(physical: 0x23_4567))
    #expect(try tables.entry(Self.page, level: 2) & (PTE.a | PTE.d) == PTE.a | PTE.d)
    let leaf = try #require(shadows.shadowLeaf(inside))
    #expect(leaf & ShadowEntry.frameMask == 0x23_4000)
    #expect(shadows.shadowLeaf(Self.page) == nil, "only the touched 4 KiB page is shadowed")
    // A 1 GiB page (at physical 0) the same way.
    let huge: UInt64 = 0x0000_0080_0000_0000
    try tables.set(huge, level: 3, PTE.p | PTE.us | PTE.ps)
    #expect(shadowAccess(huge + 0x9_5123, kind: .read, shadows: shadows) == .ok(physical: 0x9_5123))
    #expect(try tables.entry(huge, level: 3) & (PTE.a | PTE.d) == PTE.a)
    #expect(try #require(shadows.shadowLeaf(huge + 0x9_5000)) & ShadowEntry.frameMask == 0x9_5000)
    #expect(
      shadowAccess(huge + 0x9_5123, kind: .write, shadows: shadows)
        == .fault(errorCode: PageFault.Bit.present | PageFault.Bit.write | PageFault.Bit.user))
  }

  @Test func eachAddressSpaceKeepsItsShadowAcrossCR3Switches() throws {
    let (memory, tables, shadows) = try makeGuest()
    try tables.map(Self.page, to: 0x8_1000, leaf: PTE.rw | PTE.us)
    let second = try GuestTables(memory: memory, tableBase: 0x40000)
    try second.map(Self.page, to: 0x8_5000, leaf: PTE.rw | PTE.us)
    let rootA = try shadows.activate(control: guestControl(root: tables.root), mode: .user)
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_1000))
    let rootB = try shadows.activate(control: guestControl(root: second.root), mode: .user)
    #expect(rootA != rootB)
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_5000))
    let fills = shadows.statistics.fills
    #expect(try shadows.activate(control: guestControl(root: tables.root), mode: .user) == rootA)
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_1000))
    #expect(shadows.statistics.fills == fills, "the cached shadow needed no new fill")
    #expect(shadows.statistics.contextSwitches == 2)
    #expect(shadows.isPageTableFrame(tables.root) && shadows.isPageTableFrame(second.root))
  }

  @Test func kernelAndUserShadowsAreSeparate() throws {
    let (_, tables, shadows) = try makeGuest()
    let kernelPage = Self.page + 0x1000
    try tables.map(Self.page, to: 0x8_1000, leaf: PTE.rw | PTE.us)
    try tables.map(kernelPage, to: 0x8_2000, leaf: PTE.rw)
    let control = guestControl(root: tables.root)
    let kernelRoot = try shadows.activate(control: control, mode: .kernel)
    #expect(shadowAccess(kernelPage, kind: .write, shadows: shadows) == .ok(physical: 0x8_2000))
    let leaf = try #require(shadows.shadowLeaf(kernelPage))
    #expect(leaf & ShadowEntry.user != 0, "guest ring 0 runs at ring 3: its pages are real user pages")
    let userRoot = try shadows.activate(control: control, mode: .user)
    #expect(userRoot != kernelRoot)
    #expect(
      shadowAccess(kernelPage, kind: .read, shadows: shadows)
        == .fault(errorCode: PageFault.Bit.present | PageFault.Bit.user))
    #expect(shadows.shadowLeaf(kernelPage) == nil)
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_1000))
    #expect(shadows.statistics.guestFaults == 1)
  }

  @Test func invlpgDropsThePageInBothModes() throws {
    let (_, tables, shadows) = try makeGuest()
    try tables.map(Self.page, to: 0x8_1000, leaf: PTE.rw | PTE.us)
    let control = guestControl(root: tables.root)
    for mode in [ShadowMode.user, .kernel] {
      try shadows.activate(control: control, mode: mode)
      #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_1000))
    }
    _ = shadows.takeRealTLBFlush()
    shadows.invalidatePage(Self.page + 0x123)
    #expect(shadows.shadowLeaf(Self.page, mode: .kernel) == nil)
    #expect(shadows.shadowLeaf(Self.page, mode: .user) == nil)
    #expect(shadows.takeRealTLBFlush())
    #expect(shadows.statistics.invalidations == 1)
  }

  @Test func aGuestPageTableWriteIsDetectedEmulatedAndTheNextAccessSeesTheNewMapping() throws {
    let (_, tables, shadows) = try makeGuest()
    let data = Self.page
    let window = Self.page + 0x1000
    try tables.map(data, to: 0x8_1000, leaf: PTE.rw | PTE.us)
    let pte = try tables.entryAddress(data, level: 1)
    // The guest maps its own page table (the frame holding `data`'s entry) at `window`.
    try tables.map(window, to: pte & ~0xFFF, leaf: PTE.rw | PTE.us | PTE.d)
    try shadows.activate(control: guestControl(root: tables.root), mode: .kernel)
    #expect(shadowAccess(data, kind: .read, shadows: shadows) == .ok(physical: 0x8_1000))
    #expect(shadows.isPageTableFrame(pte))
    #expect(shadowAccess(window, kind: .read, shadows: shadows) == .ok(physical: pte & ~0xFFF))
    #expect(try #require(shadows.shadowLeaf(window)) & ShadowEntry.writable == 0, "page tables are read-only")
    // The guest's store through the window: the fault is a page-table write, emulated.
    let newEntry: UInt64 = 0x8_7000 | PTE.p | PTE.rw | PTE.us
    let store = window + (pte & 0xFFF)
    #expect(shadows.handleFault(linear: store, kind: .write) == .pageTableWrite(physicalAddress: pte))
    #expect(shadowAccess(store, kind: .write, shadows: shadows, writeValue: newEntry) == .ok(physical: pte))
    #expect(shadows.statistics.pageTableWrites == 1)
    #expect(shadows.shadowLeaf(data) == nil, "the leaf built from the entry is gone")
    #expect(shadowAccess(data, kind: .read, shadows: shadows) == .ok(physical: 0x8_7000))
  }

  @Test func aPageThatBecomesAPageTableIsWriteProtectedWhereverItIsMapped() throws {
    let (_, tables, shadows) = try makeGuest()
    let window = Self.page
    let frame: UInt64 = 0x8_9000
    try tables.map(window, to: frame, leaf: PTE.rw | PTE.us | PTE.d)
    try shadows.activate(control: guestControl(root: tables.root), mode: .kernel)
    #expect(shadowAccess(window, kind: .write, shadows: shadows) == .ok(physical: frame))
    #expect(try #require(shadows.shadowLeaf(window)) & ShadowEntry.writable != 0)
    #expect(!shadows.isPageTableFrame(frame))
    // The guest makes the frame a page table of another region and touches that region.
    let other: UInt64 = 0x0000_5000_0000_0000
    try tables.set(other, level: 2, frame | PTE.open)
    try tables.memory.write(UInt64(0x8_3000) | PTE.p | PTE.us, at: frame)
    _ = shadows.takeRealTLBFlush()
    #expect(shadowAccess(other, kind: .read, shadows: shadows) == .ok(physical: 0x8_3000))
    #expect(shadows.isPageTableFrame(frame))
    #expect(try #require(shadows.shadowLeaf(window)) & ShadowEntry.writable == 0)
    #expect(shadows.takeRealTLBFlush(), "a downgraded entry needs the real TLB flushed")
  }

  @Test func runningOutOfShadowFramesFlushesAndRebuildsWithoutLosingCorrectness() throws {
    let (_, tables, shadows) = try makeGuest(poolFrames: 4)
    // Sixteen pages in sixteen different 1 GiB regions: each needs its own L3, L2 and L1 tables.
    var pages: [(UInt64, UInt64)] = []
    for i in 0..<16 {
      let linear = 0x0000_1000_0000_0000 + UInt64(i) << 30
      let physical = 0x8_0000 + UInt64(i) * 0x1000
      try tables.map(linear, to: physical, leaf: PTE.rw | PTE.us)
      pages.append((linear, physical))
    }
    try shadows.activate(control: guestControl(root: tables.root), mode: .user)
    for _ in 0..<2 {
      for (linear, physical) in pages {
        #expect(shadowAccess(linear, kind: .write, shadows: shadows) == .ok(physical: physical))
      }
    }
    #expect(shadows.statistics.poolExhaustions > 0)
    #expect(shadows.statistics.flushes > 0)
    #expect(shadows.pool.available >= 0)
  }

  @Test func theBoundOnCachedShadowsEvictsTheLeastRecentlyUsed() throws {
    let (memory, tables, shadows) = try makeGuest(maximumContexts: 2)
    let second = try GuestTables(memory: memory, tableBase: 0x40000)
    let third = try GuestTables(memory: memory, tableBase: 0x50000)
    try shadows.activate(control: guestControl(root: tables.root), mode: .kernel)
    try shadows.activate(control: guestControl(root: second.root), mode: .kernel)
    try shadows.activate(control: guestControl(root: third.root), mode: .kernel)
    #expect(shadows.cachedContexts == 2)
    #expect(shadows.statistics.evictions == 1)
    #expect(!shadows.isPageTableFrame(tables.root), "the evicted shadow's guest root is an ordinary page again")
  }

  @Test func theMonitorsSlotsAndFramesStayOutOfTheGuestsReach() throws {
    let monitorEntry: UInt64 = 0xF_F000 | PTE.p | PTE.rw
    let (_, tables, shadows) = try makeGuest(monitorRootEntries: [256: monitorEntry])
    let root = try shadows.activate(control: guestControl(root: tables.root), mode: .kernel)
    #expect(try shadows.memory.read(UInt64.self, at: root + 256 * 8) == monitorEntry)
    #expect(shadows.handleFault(linear: 0xFFFF_8000_0000_1000, kind: .read) == .monitorRegion)
    // A guest mapping of a shadow-pool frame is refused.
    try tables.map(Self.page, to: 0xC_1000, leaf: PTE.rw | PTE.us)
    #expect(shadows.handleFault(linear: Self.page, kind: .read) == .forbiddenFrame(physicalAddress: 0xC_1000))
    #expect(shadows.shadowLeaf(Self.page) == nil)
  }

  @Test func changingWhatTheRightsDependOnFlushesEveryShadow() throws {
    let (_, tables, shadows) = try makeGuest()
    try tables.map(Self.page, to: 0x8_1000, leaf: PTE.us)
    try shadows.activate(control: guestControl(root: tables.root, wp: true), mode: .kernel)
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_1000))
    let before = shadows.statistics.flushes
    try shadows.activate(control: guestControl(root: tables.root, wp: false), mode: .kernel)
    #expect(shadows.statistics.flushes == before + 1)
    #expect(shadows.shadowLeaf(Self.page) == nil)
    // With WP clear the guest kernel writes its read-only page.
    #expect(shadowAccess(Self.page, kind: .write, shadows: shadows) == .ok(physical: 0x8_1000))
  }

  @Test func pagingModesTheShadowsLackAreRefused() throws {
    let (_, tables, shadows) = try makeGuest()
    var control = guestControl(root: tables.root)
    control.cr4 |= CR4.smap
    #expect(throws: ShadowPagingError.unsupported("CR4.SMAP")) {
      try shadows.activate(control: control, mode: .kernel)
    }
    control = guestControl(root: tables.root)
    control.efer = 0
    #expect(throws: ShadowPagingError.self) { try shadows.activate(control: control, mode: .kernel) }
    #expect(throws: ShadowPagingError.poolTooSmall(frames: 3)) {
      try ShadowPageTables(memory: tables.memory, pool: ShadowFramePool(range: 0xC_0000..<0xC_3000))
    }
  }
}

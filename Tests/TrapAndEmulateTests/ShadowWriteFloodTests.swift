import Testing
import TrapAndEmulate
import VMM
import X86

/// The write-flood policy of the shadow page tables: a write-protected frame that keeps taking
/// emulated stores with no walk through it in between stops being shadowed (the reference
/// kernel's `sort` benchmark stored into the freed root table of an exited task, whose shadow was
/// still cached, and every store trapped); a table in use, or the active root, stays shadowed.
@Suite struct ShadowWriteFloodTests {
  static let page: UInt64 = 0x0000_4000_0020_0000
  static let dataPage: UInt64 = 0x0000_4000_0040_0000

  @Test func theFreedRootOfACachedAddressSpaceIsUnshadowedAfterAFloodOfDataStores() throws {
    let (memory, tables, shadows) = try makeGuest()
    // Address space B runs and exits; its shadow stays cached, its root frame write-protected.
    let exited = try GuestTables(memory: memory, tableBase: 0x40000)
    try exited.map(Self.page, to: 0x8_5000, leaf: PTE.rw | PTE.us)
    try shadows.activate(control: guestControl(root: exited.root), mode: .user)
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_5000))
    try shadows.activate(control: guestControl(root: tables.root), mode: .user)
    #expect(shadows.cachedContexts == 2)
    #expect(shadows.isPageTableFrame(exited.root))
    // The guest frees B's tables and maps B's root frame as a data page of A.
    try tables.map(Self.dataPage, to: exited.root, leaf: PTE.rw | PTE.us | PTE.d)
    for store in 0..<shadows.floodThreshold {
      let linear = Self.dataPage + UInt64(store) * 0x18
      #expect(
        shadowAccess(linear, kind: .write, shadows: shadows, writeValue: 0xDA7A)
          == .ok(physical: exited.root + UInt64(store) * 0x18))
      #expect(shadows.statistics.pageTableWrites == UInt64(store + 1), "each store so far was emulated")
    }
    #expect(shadows.statistics.unshadowedFrames == 1)
    #expect(!shadows.isPageTableFrame(exited.root), "the frame is an ordinary page again")
    #expect(shadows.cachedContexts == 1, "the shadow rooted at the freed frame is gone")
    #expect(try memory.read(UInt64.self, at: exited.root + 0x18) == 0xDA7A, "the emulated stores landed")
    // From now on the real CPU stores natively: the leaf turns writable once, then no more faults.
    #expect(
      shadowAccess(Self.dataPage + 0x100, kind: .write, shadows: shadows, writeValue: 7, store: true)
        == .ok(physical: exited.root + 0x100))
    #expect(try #require(shadows.shadowLeaf(Self.dataPage)) & ShadowEntry.writable != 0)
    let faults = shadows.statistics.shadowFaults
    #expect(
      shadowAccess(Self.dataPage + 0x108, kind: .write, shadows: shadows, writeValue: 8, store: true)
        == .ok(physical: exited.root + 0x108))
    #expect(shadows.statistics.shadowFaults == faults)
    #expect(shadows.statistics.pageTableWrites == UInt64(shadows.floodThreshold))
  }

  @Test func aTableWalkedBetweenItsWritesStaysShadowedAndCoherent() throws {
    let (_, tables, shadows) = try makeGuest()
    let window = Self.page + 0x1000
    try tables.map(Self.page, to: 0x8_1000, leaf: PTE.rw | PTE.us)
    let pte = try tables.entryAddress(Self.page, level: 1)
    // The guest maps its own page table at `window` and toggles the entry through it, using the
    // page after each change (the ptemod pattern): the walks show the table is in use.
    try tables.map(window, to: pte & ~0xFFF, leaf: PTE.rw | PTE.us | PTE.d)
    try shadows.activate(control: guestControl(root: tables.root), mode: .user)
    for round in 0..<(4 * shadows.floodThreshold) {
      let frame: UInt64 = round % 2 == 0 ? 0x8_7000 : 0x8_1000
      let store = window + (pte & 0xFFF)
      #expect(
        shadowAccess(store, kind: .write, shadows: shadows, writeValue: frame | PTE.p | PTE.rw | PTE.us)
          == .ok(physical: pte))
      #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: frame))
    }
    #expect(shadows.statistics.unshadowedFrames == 0)
    #expect(shadows.isPageTableFrame(pte))
    #expect(try #require(shadows.shadowLeaf(window)) & ShadowEntry.writable == 0)
  }

  @Test func aFloodedTableInUseIsProtectedAgainByItsNextWalk() throws {
    let (_, tables, shadows) = try makeGuest()
    let window: UInt64 = 0x0000_5000_0000_0000  // mapped through other tables than the page's
    try tables.map(Self.page, to: 0x8_1000, leaf: PTE.rw | PTE.us)
    let pte = try tables.entryAddress(Self.page, level: 1)
    try tables.map(window, to: pte & ~0xFFF, leaf: PTE.rw | PTE.us | PTE.d)
    try shadows.activate(control: guestControl(root: tables.root), mode: .user)
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_1000))
    // The monitor's own writes (event frames, emulated pushes) count as well: a burst with no walk
    // in between unshadows the table, and the leaf built through it goes with it.
    for i in 0..<UInt64(shadows.floodThreshold) {
      let slot = (pte & ~0xFFF) + 0x800 + i * 8
      shadows.noteGuestWrites([slot..<slot + 8])
    }
    #expect(shadows.statistics.unshadowedFrames == 1)
    #expect(!shadows.isPageTableFrame(pte))
    #expect(shadows.shadowLeaf(Self.page) == nil)
    // The guest changes the entry with a native store through its now writable window ...
    #expect(
      shadowAccess(
        window + (pte & 0xFFF), kind: .write, shadows: shadows, writeValue: 0x8_7000 | PTE.p | PTE.rw | PTE.us,
        store: true) == .ok(physical: pte))
    // ... and the next use of the page walks the table, sees the new entry and protects it again.
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_7000))
    #expect(shadows.isPageTableFrame(pte))
    #expect(try #require(shadows.shadowLeaf(window)) & ShadowEntry.writable == 0)
  }

  @Test func theActiveRootIsNeverUnshadowed() throws {
    let (_, tables, shadows) = try makeGuest()
    try tables.map(Self.page, to: 0x8_1000, leaf: PTE.rw | PTE.us)
    try shadows.activate(control: guestControl(root: tables.root), mode: .kernel)
    #expect(shadowAccess(Self.page, kind: .read, shadows: shadows) == .ok(physical: 0x8_1000))
    for i in 0..<UInt64(3 * shadows.floodThreshold) {
      let slot = tables.root + 0x900 + i * 8
      shadows.noteGuestWrites([slot..<slot + 8])
    }
    #expect(!shadows.unshadow(tables.root))
    #expect(shadows.statistics.unshadowedFrames == 0)
    #expect(shadows.isPageTableFrame(tables.root))
    #expect(shadows.shadowLeaf(Self.page) != nil, "the active shadow keeps its leaves")
  }
}

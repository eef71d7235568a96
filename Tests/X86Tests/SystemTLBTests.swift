import Testing

@testable import X86

@Suite struct SystemTLBTests {
  let host = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 4096)

  func translation(_ physical: UInt64, global: Bool = false, shift: UInt8 = 12, dirty: Bool = true) -> Translation {
    Translation(
      physicalAddress: physical, pageShift: shift, writable: true, user: true, executable: true, global: global,
      dirty: dirty)
  }

  let control = PagingControl(cr0: CR0.pe | CR0.pg, cr3: 0x1000, cr4: CR4.pae | CR4.pge, efer: EFER.lme | EFER.lma)

  /// A user stack page and a data page 1 MiB below it (the reference kernel's stack top and clock
  /// page) used to share a set and evict each other on every access.
  @Test func pagesOneMiBApartKeepTheirOwnEntries() {
    #expect(SoftTLB.set(0x80_001F_F000) != SoftTLB.set(0x80_000F_F000))
    #expect(Set((0..<256).map { SoftTLB.set(0x40_0000 + UInt64($0) << 12) }).count == 256)
    let tlb = SoftTLB()
    tlb.fill(0x80_001F_F000, kind: .read, user: true, translation: translation(0x7000), host: host, control: control)
    tlb.fill(0x80_000F_F000, kind: .read, user: true, translation: translation(0x8000), host: host, control: control)
    #expect(tlb.hostPointer(0x80_001F_FFA8, kind: .read, user: true) == host + 0xFA8)
    tlb.invalidate(0x80_001F_F000)
    #expect(tlb.hostPointer(0x80_001F_FFA8, kind: .read, user: true) == nil)
    #expect(tlb.hostPointer(0x80_000F_F010, kind: .read, user: true) == host + 0x10)
  }

  /// The translator's inline lookup makes an access that crosses into the next page miss by
  /// comparing the slot of its first byte's page with the tag of its last byte's: only sound if
  /// two neighbouring pages never share a set (with an XOR fold, pages 0x7FFF and 0x8000 did).
  @Test func neighbouringPagesNeverShareASet() {
    for page in UInt64(0)..<(1 << 20) {
      #expect(SoftTLB.set(page << 12) != SoftTLB.set((page + 1) << 12), "page \(page)")
      if SoftTLB.set(page << 12) == SoftTLB.set((page + 1) << 12) { return }
    }
    #expect(SoftTLB.set(0x7FFF_FFFF_F000) != SoftTLB.set(0x8000_0000_0000))
    #expect(SoftTLB.set(0xFFFF_FFFF_FFFF_F000) != SoftTLB.set(0))
  }

  @Test func hitsMissesAndAccessKinds() {
    let tlb = SoftTLB()
    #expect(tlb.hostPointer(0x40_1234, kind: .read, user: true) == nil)
    tlb.fill(0x40_1234, kind: .read, user: true, translation: translation(0x7000), host: host, control: control)
    #expect(tlb.hostPointer(0x40_1234, kind: .read, user: true) == host + 0x234)
    #expect(tlb.hostPointer(0x40_1234, kind: .write, user: true) == nil)
    #expect(tlb.hostPointer(0x40_1234, kind: .read, user: false) == nil)
    #expect(tlb.hostPointer(0x50_1234, kind: .read, user: true) == nil)  // another page
    // A write entry is only cached once the page is dirty.
    tlb.fill(
      0x40_1000, kind: .write, user: true, translation: translation(0x7000, dirty: false), host: host, control: control)
    #expect(tlb.hostPointer(0x40_1000, kind: .write, user: true) == nil)
    // MMIO pages are cached with a nil host pointer.
    tlb.fill(0x60_0000, kind: .read, user: false, translation: translation(0xFEE0_0000), host: nil, control: control)
    #expect(tlb.hostPointer(0x60_0010, kind: .read, user: false) == nil)
    #expect(tlb.entry(0x60_0010, kind: .read, user: false)?.physicalPage == 0xFEE0_0000)
  }

  @Test func smapDependentEntriesAreNotCached() {
    let tlb = SoftTLB()
    var smap = control
    smap.cr4 |= CR4.smap
    tlb.fill(0x40_0000, kind: .read, user: false, translation: translation(0x7000), host: host, control: smap)
    #expect(tlb.hostPointer(0x40_0000, kind: .read, user: false) == nil)
  }

  @Test func flushRules() {
    let tlb = SoftTLB()
    tlb.fill(0x1000, kind: .read, user: false, translation: translation(0x7000), host: host, control: control)
    tlb.fill(
      0x2000, kind: .read, user: false, translation: translation(0x8000, global: true), host: host, control: control)
    tlb.apply(.flushNonGlobalTLB)  // MOV CR3
    #expect(tlb.hostPointer(0x1000, kind: .read, user: false) == nil)
    #expect(tlb.hostPointer(0x2000, kind: .read, user: false) != nil)
    tlb.invalidate(0x2FFF)  // INVLPG drops global entries too
    #expect(tlb.hostPointer(0x2000, kind: .read, user: false) == nil)
    tlb.fill(
      0x2000, kind: .read, user: false, translation: translation(0x8000, global: true), host: host, control: control)
    tlb.apply(.flushTLB)  // CR4.PGE toggle, CR0.PG/WP change
    #expect(tlb.hostPointer(0x2000, kind: .read, user: false) == nil)
  }

  @Test func invlpgOfALargePageDropsAllItsSmallEntries() {
    let tlb = SoftTLB()
    let large = translation(0x20_0000, shift: 21)
    tlb.fill(0x20_0000, kind: .read, user: true, translation: large, host: host, control: control)
    var other = large
    other.physicalAddress = 0x20_5000
    tlb.fill(0x20_5000, kind: .read, user: true, translation: other, host: host, control: control)
    tlb.fill(0x60_5000, kind: .read, user: true, translation: translation(0x9000), host: host, control: control)
    tlb.invalidate(0x3F_F000)  // last 4 KiB of the same 2 MiB page
    #expect(tlb.hostPointer(0x20_0000, kind: .read, user: true) == nil)
    #expect(tlb.hostPointer(0x20_5000, kind: .read, user: true) == nil)
    #expect(tlb.hostPointer(0x60_5000, kind: .read, user: true) != nil)
  }

  @Test func translateWalksAndCaches() throws {
    let tables = SparseTableMemory()
    tables.entries[0x1000] = 0x2000 | 7
    tables.entries[0x2000] = 0x3000 | 7
    tables.entries[0x3000] = 0x4000 | 7
    tables.entries[0x4000 + 5 * 8] = 0x7_5000 | 7
    let tlb = SoftTLB()
    var asked: [UInt64] = []
    let r = try tlb.translate(0x5123, kind: .write, user: true, control: control, tables: tables) { page in
      asked.append(page)
      return host
    }
    #expect(r.physical == 0x7_5123 && r.host == host + 0x123 && asked == [0x7_5000])
    #expect(tlb.hostPointer(0x5FFF, kind: .write, user: true) == host + 0xFFF)
    #expect(throws: PageFault.self) {
      _ = try tlb.translate(0x9000, kind: .read, user: true, control: control, tables: tables) { _ in host }
    }
  }
}

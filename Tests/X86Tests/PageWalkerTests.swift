import Testing

@testable import X86

/// Sparse guest-physical memory for page-table tests.
final class SparseTableMemory: PageTableMemory {
  var entries: [UInt64: UInt64] = [:]
  var writes = 0
  func readEntry(_ physical: UInt64, size: Int) -> UInt64? {
    if physical >= 0x1000_0000 { return nil }
    let v = entries[physical] ?? 0
    return size == 4 ? v & 0xFFFF_FFFF : v
  }
  func writeEntry(_ physical: UInt64, value: UInt64, size: Int) {
    writes += 1
    entries[physical] = value
  }
}

private let P: UInt64 = 1
private let W: UInt64 = 2
private let U: UInt64 = 4
private let A: UInt64 = 0x20
private let D: UInt64 = 0x40
private let PS: UInt64 = 0x80
private let G: UInt64 = 0x100
private let NX: UInt64 = 1 << 63

/// Builds a 4-level hierarchy: PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000, PT at 0x4000.
private func longModeTables(leafFlags: UInt64, upperFlags: UInt64 = P | W | U) -> SparseTableMemory {
  let m = SparseTableMemory()
  m.entries[0x1000] = 0x2000 | upperFlags
  m.entries[0x2000] = 0x3000 | upperFlags
  m.entries[0x3000] = 0x4000 | upperFlags
  m.entries[0x4000 + 5 * 8] = 0x7_5000 | leafFlags  // linear 0x5000 -> physical 0x75000
  return m
}

private func longControl(cr0: UInt64 = CR0.pe | CR0.pg, cr4: UInt64 = CR4.pae, nxe: Bool = true) -> PagingControl {
  PagingControl(cr0: cr0, cr3: 0x1000, cr4: cr4, efer: EFER.lme | EFER.lma | (nxe ? EFER.nxe : 0))
}

@Suite struct PageWalkerTests {
  @Test func translatesA4KPageAndSetsAccessedAndDirty() throws {
    let m = longModeTables(leafFlags: P | W | U)
    let t = try PageWalker.translate(0x5123, kind: .write, user: true, control: longControl(), memory: m)
    #expect(t.physicalAddress == 0x7_5123)
    #expect(t.pageShift == 12)
    #expect(m.entries[0x1000]! & A != 0)
    #expect(m.entries[0x3000]! & A != 0)
    #expect(m.entries[0x4000 + 40]! & (A | D) == A | D)
    // A read sets accessed but never dirty.
    let m2 = longModeTables(leafFlags: P | W | U)
    _ = try PageWalker.translate(0x5000, kind: .read, user: true, control: longControl(), memory: m2)
    #expect(m2.entries[0x4000 + 40]! & (A | D) == A)
  }

  /// Every level's accessed bit gets set, written only where it was clear; a second walk writes
  /// nothing.
  @Test func setsTheAccessedBitOfEveryLevelOnlyWhereClear() throws {
    let m = longModeTables(leafFlags: P | W | U)
    m.entries[0x2000]! |= A
    _ = try PageWalker.translate(0x5000, kind: .read, user: true, control: longControl(), memory: m)
    for address: UInt64 in [0x1000, 0x2000, 0x3000, 0x4000 + 40] { #expect(m.entries[address]! & A != 0) }
    #expect(m.writes == 3)  // PML4E, PDE and the leaf: the PDPTE had its bit
    _ = try PageWalker.translate(0x5000, kind: .read, user: true, control: longControl(), memory: m)
    #expect(m.writes == 3)
  }

  @Test func notPresentFaultsCarryAccessKindAndPrivilege() {
    let m = longModeTables(leafFlags: P | W | U)
    #expect(throws: PageFault(address: 0x6000, errorCode: 0)) {
      try PageWalker.translate(0x6000, kind: .read, user: false, control: longControl(), memory: m)
    }
    #expect(throws: PageFault(address: 0x6000, errorCode: 0b110)) {
      try PageWalker.translate(0x6000, kind: .write, user: true, control: longControl(), memory: m)
    }
    #expect(throws: PageFault(address: 0x6000, errorCode: 0b10100)) {
      try PageWalker.translate(0x6000, kind: .execute, user: true, control: longControl(), memory: m)
    }
    // A failed walk sets no accessed bits.
    #expect(m.writes == 0)
  }

  @Test func userCannotTouchSupervisorPages() {
    let m = longModeTables(leafFlags: P | W)
    #expect(throws: PageFault(address: 0x5000, errorCode: 0b101)) {
      try PageWalker.translate(0x5000, kind: .read, user: true, control: longControl(), memory: m)
    }
    // U/S must be set at every level.
    let m2 = longModeTables(leafFlags: P | W | U, upperFlags: P | W)
    #expect(throws: PageFault(address: 0x5000, errorCode: 0b111)) {
      try PageWalker.translate(0x5000, kind: .write, user: true, control: longControl(), memory: m2)
    }
  }

  @Test func writeProtectGovernsSupervisorWrites() throws {
    let m = longModeTables(leafFlags: P | U)
    _ = try PageWalker.translate(0x5000, kind: .write, user: false, control: longControl(), memory: m)
    let wp = longControl(cr0: CR0.pe | CR0.pg | CR0.wp)
    #expect(throws: PageFault(address: 0x5000, errorCode: 0b011)) {
      try PageWalker.translate(0x5000, kind: .write, user: false, control: wp, memory: m)
    }
    #expect(throws: PageFault(address: 0x5000, errorCode: 0b111)) {
      try PageWalker.translate(0x5000, kind: .write, user: true, control: longControl(), memory: m)
    }
  }

  @Test func noExecuteOnlyWhenEFERNXEIsSet() throws {
    let m = longModeTables(leafFlags: P | W | U | NX)
    #expect(throws: PageFault(address: 0x5000, errorCode: 0b10101)) {
      try PageWalker.translate(0x5000, kind: .execute, user: true, control: longControl(), memory: m)
    }
    // With NXE clear, bit 63 is reserved.
    #expect(throws: PageFault(address: 0x5000, errorCode: 0b1101)) {
      try PageWalker.translate(0x5000, kind: .read, user: true, control: longControl(nxe: false), memory: m)
    }
  }

  @Test func reservedPhysicalBitsFault() {
    let m = longModeTables(leafFlags: P | W | U)
    m.entries[0x4000 + 40] = (1 << 45) | 0x7_5000 | P | W | U
    #expect(throws: PageFault(address: 0x5000, errorCode: 0b1001)) {
      try PageWalker.translate(0x5000, kind: .read, user: false, control: longControl(), memory: m)
    }
  }

  @Test func largePages() throws {
    let m = SparseTableMemory()
    m.entries[0x1000] = 0x2000 | P | W
    m.entries[0x2000] = 0x4000_0000 | P | W | PS | G  // 1 GiB at linear 0
    m.entries[0x2008] = 0x3000 | P | W
    m.entries[0x3000 + 8] = 0x60_0000 | P | W | PS  // linear 1 GiB + 2 MiB -> 6 MiB
    let c = longControl(cr4: CR4.pae | CR4.pge)
    let g = try PageWalker.translate(0x1234_5678, kind: .read, user: false, control: c, memory: m)
    #expect(g.physicalAddress == 0x5234_5678)
    #expect(g.pageShift == 30)
    #expect(g.global)
    let t = try PageWalker.translate(0x4020_1234, kind: .write, user: false, control: c, memory: m)
    #expect(t.physicalAddress == 0x60_1234)
    #expect(t.pageShift == 21)
    #expect(m.entries[0x3008]! & D != 0)
    // Reserved bits 20:13 of a 2 MiB entry.
    m.entries[0x3000 + 8] = 0x60_0000 | P | W | PS | (1 << 13)
    #expect(throws: PageFault(address: 0x4020_0000, errorCode: 0b1001)) {
      try PageWalker.translate(0x4020_0000, kind: .read, user: false, control: c, memory: m)
    }
    // A PML4E with PS set is reserved.
    m.entries[0x1000] = 0x2000 | P | W | PS
    #expect(throws: PageFault(address: 0, errorCode: 0b1001)) {
      try PageWalker.translate(0, kind: .read, user: false, control: c, memory: m)
    }
  }

  @Test func smepAndSmap() throws {
    let m = longModeTables(leafFlags: P | W | U)
    let c = longControl(cr4: CR4.pae | CR4.smep | CR4.smap)
    #expect(throws: PageFault(address: 0x5000, errorCode: 0b10001)) {
      try PageWalker.translate(0x5000, kind: .execute, user: false, control: c, memory: m)
    }
    #expect(throws: PageFault(address: 0x5000, errorCode: 0b00001)) {
      try PageWalker.translate(0x5000, kind: .read, user: false, control: c, memory: m)
    }
    // RFLAGS.AC lifts SMAP for explicit accesses but not for implicit ones.
    _ = try PageWalker.translate(0x5000, kind: .read, user: false, control: c, memory: m, alignmentCheckFlag: true)
    #expect(throws: PageFault.self) {
      try PageWalker.translate(
        0x5000, kind: .read, user: true, control: c, memory: m, alignmentCheckFlag: true, implicitSupervisor: true)
    }
  }

  @Test func legacyTwoLevelAndPSEPages() throws {
    let m = SparseTableMemory()
    m.entries[0x1000] = 0x2000 | P | W | U  // PDE 0 -> PT at 0x2000
    m.entries[0x2000 + 3 * 4] = 0x9000 | P | U  // linear 0x3000 -> 0x9000, read-only
    m.entries[0x1000 + 4] = 0x0080_0000 | P | W | PS  // linear 4 MiB -> 8 MiB (4 MiB page)
    let c = PagingControl(cr0: CR0.pe | CR0.pg | CR0.wp, cr3: 0x1000, cr4: CR4.pse, efer: 0)
    #expect(try PageWalker.translate(0x3ABC, kind: .read, user: true, control: c, memory: m).physicalAddress == 0x9ABC)
    #expect(throws: PageFault(address: 0x3000, errorCode: 0b111)) {
      try PageWalker.translate(0x3000, kind: .write, user: true, control: c, memory: m)
    }
    let big = try PageWalker.translate(0x0041_2345, kind: .read, user: false, control: c, memory: m)
    #expect(big.physicalAddress == 0x0081_2345)
    #expect(big.pageShift == 22)
    // No I/D bit in the error code without PAE/NX.
    #expect(throws: PageFault(address: 0x0100_0000, errorCode: 0b100)) {
      try PageWalker.translate(0x0100_0000, kind: .execute, user: true, control: c, memory: m)
    }
  }

  @Test func paeThreeLevel() throws {
    let m = SparseTableMemory()
    m.entries[0x1000 + 8] = 0x2000 | P  // PDPTE 1 (linear 1 GiB..2 GiB)
    m.entries[0x2000] = 0x3000 | P | W
    m.entries[0x3000 + 2 * 8] = 0xAB000 | P | W | NX
    let c = PagingControl(cr0: CR0.pe | CR0.pg, cr3: 0x1000, cr4: CR4.pae, efer: EFER.nxe)
    let t = try PageWalker.translate(0x4000_2010, kind: .write, user: false, control: c, memory: m)
    #expect(t.physicalAddress == 0xAB010)
    #expect(!t.executable)
    // PDPTEs with reserved bits (R/W is reserved in PAE PDPTEs) fault.
    m.entries[0x1000 + 8] = 0x2000 | P | W
    #expect(throws: PageFault(address: 0x4000_2010, errorCode: 0b1001)) {
      try PageWalker.translate(0x4000_2010, kind: .read, user: false, control: c, memory: m)
    }
  }

  @Test func pagingOffIsIdentity() throws {
    let m = SparseTableMemory()
    let c = PagingControl(cr0: CR0.pe, cr3: 0, cr4: 0, efer: 0)
    #expect(
      try PageWalker.translate(0x1_2345_6789, kind: .write, user: true, control: c, memory: m).physicalAddress
        == 0x2345_6789)
  }
}

import Testing

@testable import X86

@Suite struct SystemMMUTests {
  /// 4-level tables in TestRAM: PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000; linear 0x40_0000
  /// (PD index 2) -> PT; PT entry 0 -> physical 0x10_0000 (user, writable), entry 1 -> 0x10_1000
  /// (supervisor only), entry 2 not present.
  func makeMachine() -> (CPUState, TestRAM, MMU) {
    let ram = TestRAM()
    func put(_ address: Int, _ value: UInt64) {
      ram.load((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }, at: address)
    }
    put(0x1000, 0x2000 | 7)
    put(0x2000, 0x3000 | 7)
    put(0x3000 + 2 * 8, 0x4000 | 7)
    put(0x4000, 0x10_0000 | 7)
    put(0x4008, 0x10_1000 | 3)
    let s = CPUState()
    s.cr0 = CR0.pe | CR0.pg
    s.cr3 = 0x1000
    s.cr4 = CR4.pae
    s.efer = EFER.lme | EFER.lma
    return (s, ram, MMU(memory: ram))
  }

  @Test func translatesCachesAndSetsCR2() throws {
    let (s, ram, mmu) = makeMachine()
    let r = try mmu.translate(0x40_0123, kind: .write, user: true, state: s)
    #expect(r.physical == 0x10_0123 && r.host == ram.bytes + 0x10_0123)
    #expect(mmu.tlb.hostPointer(0x40_0FFF, kind: .write, user: true) == ram.bytes + 0x10_0FFF)
    #expect(ram.qword(0x4000) & 0x60 == 0x60)  // accessed and dirty
    #expect(
      faultOf { () throws(Fault) in _ = try mmu.translate(0x40_1000, kind: .read, user: true, state: s) }
        == .exception(vector: 14, errorCode: 5))
    #expect(s.cr2 == 0x40_1000)
    #expect(
      faultOf { () throws(Fault) in _ = try mmu.translate(0x40_2008, kind: .write, user: false, state: s) }
        == .exception(vector: 14, errorCode: 2))
    #expect(s.cr2 == 0x40_2008)
  }

  /// The walk the translator calls when its inline lookup misses: it caches and sets the accessed
  /// bit as a read would, and where a read would fault it only answers false (no CR2, nothing
  /// cached), the access being left to the interpreter.
  @Test func cacheTranslationWalksWithoutFaulting() {
    let (s, ram, mmu) = makeMachine()
    s.cr2 = 0xDEAD
    #expect(mmu.cacheTranslation(0x40_0123, kind: .read, user: true, state: s))
    #expect(mmu.tlb.hostPointer(0x40_0123, kind: .read, user: true) == ram.bytes + 0x10_0123)
    #expect(ram.qword(0x4000) & 0x60 == 0x20)  // accessed, not dirty
    #expect(!mmu.cacheTranslation(0x40_2000, kind: .read, user: true, state: s))  // not present
    #expect(!mmu.cacheTranslation(0x40_1000, kind: .read, user: true, state: s))  // supervisor page
    #expect(mmu.tlb.entry(0x40_2000, kind: .read, user: true) == nil)
    #expect(s.cr2 == 0xDEAD)
  }

  @Test func systemMemorySplitsAtPageBoundaries() throws {
    let (s, ram, mmu) = makeMachine()
    let sys = MMUSystemMemory(mmu: mmu, state: s)
    try sys.writeLinear(0x40_0FFC, size: 8, value: 0x1122_3344_5566_7788, supervisor: true)
    #expect(ram.qword(0x10_0FFC) & 0xFFFF_FFFF == 0x5566_7788)
    #expect(ram.qword(0x10_1000) & 0xFFFF_FFFF == 0x1122_3344)
    #expect(try sys.readLinear(0x40_0FFC, size: 8, supervisor: true) == 0x1122_3344_5566_7788)
    // A user access to the supervisor page faults without writing the first page.
    #expect(
      faultOf { () throws(Fault) in try sys.writeLinear(0x40_0FFE, size: 4, value: 0, supervisor: false) }
        == .exception(vector: 14, errorCode: 7))
    #expect(ram.word(0x10_0FFE) == 0x5566)
  }

  /// Accesses within one page take one load or store of their width (odd widths and unaligned
  /// addresses too): the same bytes as the byte-wise split path.
  @Test func systemMemoryAccessesWithinAPageKeepTheirBytes() throws {
    let (s, ram, mmu) = makeMachine()
    let sys = MMUSystemMemory(mmu: mmu, state: s)
    for (offset, size) in [(0x101, 1), (0x203, 2), (0x305, 4), (0x407, 8), (0x509, 6), (0xFF8, 8)] {
      let value: UInt64 = 0x8877_6655_4433_2211
      let mask: UInt64 = size == 8 ? .max : (1 << UInt64(8 * size)) - 1
      ram.load(Array(repeating: 0xEE, count: size + 2), at: 0x10_0000 + offset - 1)
      try sys.writeLinear(0x40_0000 + UInt64(offset), size: size, value: value, supervisor: true)
      #expect(ram.byte(0x10_0000 + offset - 1) == 0xEE && ram.byte(0x10_0000 + offset + size) == 0xEE)
      #expect(try sys.readLinear(0x40_0000 + UInt64(offset), size: size, supervisor: true) == value & mask)
      #expect(try sys.readLinear(0x40_0000 + UInt64(offset) - 1, size: 1, supervisor: true) == 0xEE)
    }
  }

  @Test func exceptionDeliveryThroughPagedMemory() {
    let (s, ram, mmu) = makeMachine()
    // IDT at linear 0x40_0000 (physical 0x10_0000), GDT at 0x40_0800; stack in the same page.
    let base = 0x10_0000
    func put(_ address: Int, _ value: UInt64) {
      ram.load((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }, at: address)
    }
    put(base + 0x800 + 8, 0x00AF_9B00_0000_FFFF)
    let gate = GateDescriptor(offset: 0x1234, selector: 0x08, type: 0xE, dpl: 0)
    put(base + 3 * 16, gate.low)
    put(base + 3 * 16 + 8, gate.high)
    s.gdtr = (0x40_0800, 0xF)
    s.idtr = (0x40_0000, 0xFFF)
    s.setSegment(.cs, SegmentCache(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA09B))
    s.setGPR(4, 0x40_0F00)
    let outcome = InterruptDelivery.deliver(
      vector: 3, kind: .software(.int3), returnRIP: 0x777, state: s, memory: MMUSystemMemory(mmu: mmu, state: s))
    #expect(outcome == .delivered)
    #expect(s.rip == 0x1234 && s.gpr(4) == 0x40_0F00 - 40)
    #expect(ram.qword(base + 0xF00 - 40) == 0x777)
  }
}

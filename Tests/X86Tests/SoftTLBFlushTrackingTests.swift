import Testing

@testable import X86

/// Flushes clear exactly what was filled, whether the TLB tracked its filled slots or overflowed
/// the tracking and scans everything.
@Suite struct SoftTLBFlushTrackingTests {
  let host = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
  let control = PagingControl(cr0: CR0.pe | CR0.pg, cr3: 0x1000, cr4: CR4.pae | CR4.pge, efer: EFER.lme | EFER.lma)

  func fill(
    _ linear: UInt64, in tlb: SoftTLB, global: Bool = false, kind: MemoryAccessKind = .read, pageShift: UInt8 = 12
  ) {
    let t = Translation(
      physicalAddress: linear, pageShift: pageShift, writable: true, user: true, executable: true, global: global,
      dirty: true)
    tlb.fill(linear, kind: kind, user: false, translation: t, host: host, control: control)
  }

  func fill(_ tlb: SoftTLB, _ linear: UInt64, global: Bool = false, kind: MemoryAccessKind = .read) {
    fill(linear, in: tlb, global: global, kind: kind)
  }

  /// INVLPG of an address in a 2 MiB page drops every 4 KiB entry cached from that page (in any
  /// set and table) and nothing else, whether the TLB tracks its large entries or has more than it
  /// tracks (then it scans everything); after a non-global flush that keeps global large entries
  /// too.
  @Test(arguments: [8, 700])
  func invalidateDropsEveryEntryOfALargePage(largeFills: Int) {
    let tlb = SoftTLB()
    let large: UInt64 = 0x4000_0000  // a 2 MiB page
    let inside = (0..<largeFills).map { large + UInt64($0 % 512) << 12 }
    for (i, linear) in inside.enumerated() {
      fill(linear, in: tlb, global: i % 3 == 0, kind: i % 2 == 0 ? .read : .execute, pageShift: 21)
    }
    let others: [UInt64] = [0x1000, 0x3000_0000, large + 0x20_0000]  // the next 2 MiB page too
    for linear in others { fill(linear, in: tlb, pageShift: linear == 0x1000 ? 12 : 21) }
    tlb.invalidate(large + 0x1_2345)
    for (i, linear) in inside.enumerated() {
      #expect(tlb.entry(linear, kind: i % 2 == 0 ? .read : .execute, user: false) == nil)
    }
    for linear in others where (linear >> 12) & 0xFF != (large >> 12) & 0xFF {
      #expect(tlb.entry(linear, kind: .read, user: false) != nil)
    }
    // Kept (global) large entries are still found by INVLPG after a non-global flush.
    fill(large, in: tlb, global: true, pageShift: 21)
    fill(large + 0x5000, in: tlb, global: true, kind: .execute, pageShift: 21)
    tlb.flushNonGlobal()
    tlb.invalidate(large + 0x1F_F000)
    #expect(tlb.entry(large, kind: .read, user: false) == nil)
    #expect(tlb.entry(large + 0x5000, kind: .execute, user: false) == nil)
  }

  @Test(arguments: [10, 5000])
  func flushAllAndNonGlobalClearWhatWasFilled(fills: Int) {
    let tlb = SoftTLB()
    for i in 0..<fills { fill(tlb, UInt64(i) << 12, kind: i % 2 == 0 ? .read : .write) }
    fill(tlb, 0x7F_F000, global: true)
    tlb.flushNonGlobal()
    #expect(tlb.entry(0x7F_F000, kind: .read, user: false) != nil)
    for i in 0..<min(fills, 300) where (UInt64(i) << 12) & 0xFF000 != 0x7F_F000 & 0xFF000 {
      #expect(tlb.entry(UInt64(i) << 12, kind: i % 2 == 0 ? .read : .write, user: false) == nil)
    }
    fill(tlb, 0x1000)
    tlb.flushAll()
    #expect(tlb.entry(0x7F_F000, kind: .read, user: false) == nil)
    #expect(tlb.entry(0x1000, kind: .read, user: false) == nil)
    fill(tlb, 0x2000)
    tlb.flushNonGlobal()
    #expect(tlb.entry(0x2000, kind: .read, user: false) == nil)
  }

  /// Slots listed more than once (refilled) count once, and a non-global flush forgets what it
  /// saw: the next one still drops what was filled again in the same slots.
  @Test func repeatedNonGlobalFlushesDropRefilledSlots() {
    let tlb = SoftTLB()
    fill(tlb, 0x7F_F000, global: true)
    fill(tlb, 0x7F_F000, global: true)
    for _ in 0..<3 {
      fill(tlb, 0x3000)
      fill(tlb, 0x3000)
      tlb.flushNonGlobal()
      #expect(tlb.entry(0x3000, kind: .read, user: false) == nil)
      #expect(tlb.entry(0x7F_F000, kind: .read, user: false) != nil)
    }
    tlb.flushAll()
    #expect(tlb.entry(0x7F_F000, kind: .read, user: false) == nil)
  }
}

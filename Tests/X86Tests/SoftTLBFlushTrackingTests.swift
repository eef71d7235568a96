import Testing

@testable import X86

/// Flushes clear exactly what was filled, whether the TLB tracked its filled slots or overflowed
/// the tracking and scans everything.
@Suite struct SoftTLBFlushTrackingTests {
  let host = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
  let control = PagingControl(cr0: CR0.pe | CR0.pg, cr3: 0x1000, cr4: CR4.pae | CR4.pge, efer: EFER.lme | EFER.lma)

  func fill(_ tlb: SoftTLB, _ linear: UInt64, global: Bool = false, kind: MemoryAccessKind = .read) {
    let t = Translation(
      physicalAddress: linear, pageShift: 12, writable: true, user: true, executable: true, global: global,
      dirty: true)
    tlb.fill(linear, kind: kind, user: false, translation: t, host: host, control: control)
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
}

import Testing

@testable import X86

@Suite struct SystemIOAndCPUIDTests {
  @Test func ioPermissionFollowsIOPLAndTheBitmap() {
    let (s, m) = makeLongMode()
    // 64-bit TSS limit covering a bitmap of ports 0-0x3FF at TSS+0x68.
    s.setSegment(
      .tr, SegmentCache(selector: LM.tssSelector, base: UInt64(LM.tss), limit: 0x68 + 0x80, attributes: 0x8B))
    m.bytes[LM.tss + 0x68 + (0x3F8 >> 3)] = 0x00  // 0x3F8-0x3FF allowed
    m.bytes[LM.tss + 0x68 + (0x60 >> 3)] = 0x01  // 0x60 denied, 0x61-0x67 allowed
    func check(_ port: UInt16, _ size: Int) -> Fault? {
      faultOf { () throws(Fault) in try IOPermission.check(port: port, size: size, state: s, memory: m) }
    }
    #expect(check(0x60, 1) == nil)  // CPL 0 <= IOPL 0
    s.cpl = 3
    #expect(check(0x3F8, 1) == nil)
    #expect(check(0x3FC, 4) == nil)
    #expect(check(0x60, 1) == .gp(0))
    #expect(check(0x61, 1) == nil)
    #expect(check(0x5F, 2) == .gp(0))  // a word access covering 0x60
    #expect(check(0x400, 1) == .gp(0))  // beyond the TSS limit
    s.rflags |= Flags.iopl
    #expect(check(0x60, 1) == nil)
    // Virtual-8086 mode always consults the bitmap.
    let (p, pm) = makeProtectedMode()
    p.setSegment(.tr, SegmentCache(selector: 0x28, base: UInt64(PM.tss), limit: 0x67, attributes: 0x8B))
    pm.put16(PM.tss + 0x66, 0x68)
    p.rflags = Flags.vm | Flags.iopl | 2
    p.cpl = 3
    #expect(faultOf { () throws(Fault) in try IOPermission.check(port: 0x80, size: 1, state: p, memory: pm) } == .gp(0))
  }

  /// Leaf 0BH: each vCPU a package of one core and one thread, its x2APIC ID in EDX of every
  /// subleaf, and the level list ending at subleaf 2.
  @Test func cpuidDescribesTheTopology() {
    let cpuid = CPUIDTable(features: .systemBaseline, apicID: 3)
    let smt = cpuid.query(leaf: 0xB, subleaf: 0)
    #expect(smt.eax == 0 && smt.ebx == 1 && smt.ecx == 0x100 && smt.edx == 3)
    let core = cpuid.query(leaf: 0xB, subleaf: 1)
    #expect(core.eax == 0 && core.ebx == 1 && core.ecx == 0x201 && core.edx == 3)
    let end = cpuid.query(leaf: 0xB, subleaf: 2)
    #expect(end.ebx == 0 && end.ecx == 2 && end.ecx & 0xFF00 == 0 && end.edx == 3)
    // Leaf 1: one logical processor per package, the same initial APIC ID.
    #expect(cpuid.query(leaf: 1, subleaf: 0).ebx >> 16 == 0x0301)
  }

  @Test func cpuidAdvertisesTheFeatureSet() {
    var features = CPUFeatures.systemBaseline
    features.insert(.cmov)
    let cpuid = CPUIDTable(features: features)
    let l0 = cpuid.query(leaf: 0, subleaf: 0)
    #expect(l0.eax == 0xD)
    #expect([l0.ebx, l0.edx, l0.ecx] == [0x756E_6547, 0x4965_6E69, 0x6C65_746E])  // "GenuineIntel"
    let l1 = cpuid.query(leaf: 1, subleaf: 0)
    #expect(l1.edx & 1 << 15 != 0 && l1.edx & 1 << 11 != 0 && l1.edx & 1 << 6 != 0)
    #expect(l1.edx & 1 << 9 == 0)  // no APIC advertised by default
    #expect(l1.ecx & 1 << 17 == 0)  // no PCID by default
    let l7 = cpuid.query(leaf: 7, subleaf: 0)
    #expect(l7.ebx == 1 << 7 | 1 << 20 && l7.ecx == 1 << 2)
    let e1 = cpuid.query(leaf: 0x8000_0001, subleaf: 0)
    #expect(e1.edx == 1 << 11 | 1 << 20 | 1 << 26 | 1 << 27 | 1 << 29)
    #expect(cpuid.query(leaf: 0x8000_0008, subleaf: 0).eax == 0x3028)
    let brand = (0x8000_0002...0x8000_0004).flatMap { leaf -> [UInt32] in
      let r = cpuid.query(leaf: UInt32(leaf), subleaf: 0)
      return [r.eax, r.ebx, r.ecx, r.edx]
    }
    let text = String(
      decoding: brand.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }.filter { $0 != 0 },
      as: UTF8.self)
    #expect(text == "Trivisor Virtual CPU")
    #expect(features.allowedCR4 & CR4.smep != 0 && features.allowedCR4 & CR4.pcide == 0)
  }
}

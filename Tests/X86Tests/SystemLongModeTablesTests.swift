import Testing

@testable import X86

@Suite struct SystemLongModeTablesTests {
  @Test func sixteenByteLDTAndTSSDescriptors() throws {
    let (s, m) = makeLongMode()
    // LDT at 0xFFFF8000_00005000 in GDT slots 0x40/0x48, TSS at 0xFFFF8000_00003000 in 0x30/0x38.
    m.put64(LM.gdt + 0x40, SegmentDescriptor(base: 0x5000, limit: 0x1F, attributes: 0x82).raw)
    m.put64(LM.gdt + 0x48, 0xFFFF_8000)
    m.put64(LM.gdt + 0x38, 0xFFFF_8000)
    s.gdtr = (UInt64(LM.gdt), 0x4F)
    try DescriptorTableInstructions.loadLDTR(0x40, state: s, memory: m)
    #expect(
      s.segment(.ldtr) == SegmentCache(selector: 0x40, base: 0xFFFF_8000_0000_5000, limit: 0x1F, attributes: 0x82))
    try DescriptorTableInstructions.loadTR(0x30, state: s, memory: m)
    #expect(s.segment(.tr).base == 0xFFFF_8000_0000_3000 && s.segment(.tr).attributes == 0x8B)
    // A non-canonical base or a non-zero upper type is #GP(selector).
    m.put64(LM.gdt + 0x48, 0x0000_8000)
    #expect(
      faultOf { () throws(Fault) in try DescriptorTableInstructions.loadLDTR(0x40, state: s, memory: m) } == .gp(0x40))
    m.put64(LM.gdt + 0x48, 0xFFFF_8000 | 1 << 40)
    #expect(
      faultOf { () throws(Fault) in try DescriptorTableInstructions.loadLDTR(0x40, state: s, memory: m) } == .gp(0x40))
    // The upper half must be inside the GDT limit.
    s.gdtr = (UInt64(LM.gdt), 0x47)
    #expect(
      faultOf { () throws(Fault) in try DescriptorTableInstructions.loadLDTR(0x40, state: s, memory: m) } == .gp(0x40))
  }

  @Test func farReturnIn64BitMode() throws {
    let (s, m) = makeLongMode()
    // RETF (REX.W) to ring 3 64-bit code: RIP, CS, RSP, SS, 8 bytes each.
    for (i, v) in [0x40_0000, 0x2B, 0x7_0000, 0x23].enumerated() { m.put64(0x8000 + 8 * i, UInt64(v)) }
    s.setGPR(4, 0x8000)
    try ReturnInstructions.farReturn(operandSize: 8, state: s, memory: m)
    #expect(s.cpl == 3 && s.rip == 0x40_0000 && s.gpr(4) == 0x7_0000 && s.codeMode == .bits64)
    // RETF (32-bit) at the same level into compatibility-mode code.
    let (t, tm) = makeLongMode()
    tm.put64(LM.gdt + 0x18, 0x00CF_9B00_0000_FFFF)  // ring-0 code32
    tm.put32(0x8000, 0x1234)
    tm.put32(0x8004, 0x18)
    t.setGPR(4, 0x8000)
    try ReturnInstructions.farReturn(operandSize: 4, state: t, memory: tm)
    #expect(t.rip == 0x1234 && t.gpr(4) == 0x8008 && t.codeMode == .bits32 && OperatingMode(t) == .compatibility)
  }

  @Test func segmentLoadsIn64BitMode() throws {
    let (s, m) = makeLongMode()
    try SegmentLoader.loadData(.ds, selector: 0x10, state: s, memory: m)
    #expect(s.segment(.ds).attributes == 0xC093)
    try SegmentLoader.loadData(.fs, selector: 0, state: s, memory: m)
    #expect(s.segment(.fs) == SegmentCache(selector: 0, base: 0, limit: 0, attributes: 0))
    s.cpl = 3
    #expect(faultOf { () throws(Fault) in try SegmentLoader.loadData(.ss, selector: 0, state: s, memory: m) } == .gp(0))
    #expect(
      faultOf { () throws(Fault) in try SegmentLoader.loadData(.ss, selector: 0x10, state: s, memory: m) } == .gp(0x10))
    try SegmentLoader.loadData(.ss, selector: 0x23, state: s, memory: m)
    #expect(s.segment(.ss).selector == 0x23)
  }
}

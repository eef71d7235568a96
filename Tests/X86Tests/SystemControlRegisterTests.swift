import Testing

@testable import X86

@Suite struct SystemControlRegisterTests {
  let features = CPUFeatures.systemBaseline

  func write(_ n: Int, _ v: UInt64, _ s: CPUState) -> Fault? {
    faultOf { () throws(Fault) in _ = try ControlRegisters.write(n, value: v, state: s, features: features) }
  }

  @Test func cr0Checks() {
    let s = CPUState()
    s.cr0 = CR0.et
    #expect(write(0, CR0.pg, s) == .gp(0))  // PG without PE
    #expect(write(0, CR0.pe | CR0.nw, s) == .gp(0))  // NW without CD
    #expect(write(0, 1 << 32 | CR0.pe, s) == .gp(0))  // bits 63:32
    #expect(write(1, 0, s) == .ud)
    #expect(write(0, CR0.pe | 1 << 6, s) == nil)  // reserved low bits are ignored
    #expect(s.cr0 == CR0.pe | CR0.et)
    s.cpl = 3
    #expect(write(0, CR0.pe, s) == .gp(0))
    #expect(faultOf { () throws(Fault) in _ = try ControlRegisters.read(3, state: s) } == .gp(0))
  }

  @Test func enablingPagingWithLMEActivatesLongMode() throws {
    let s = CPUState()
    s.cr0 = CR0.pe | CR0.et
    s.efer = EFER.lme
    s.setSegment(.cs, SegmentCache(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC09B))
    #expect(write(0, CR0.pe | CR0.pg, s) == .gp(0))  // LME without PAE
    #expect(write(4, CR4.pae, s) == nil)
    let effects = try ControlRegisters.write(0, value: CR0.pe | CR0.pg, state: s, features: features)
    #expect(effects.contains(.flushTLB) && effects.contains(.modeChanged))
    #expect(s.efer & EFER.lma != 0)
    #expect(write(4, 0, s) == .gp(0))  // PAE cannot be cleared in IA-32e mode
    // Paging off from 64-bit code is #GP; from compatibility mode it leaves IA-32e mode.
    s.setSegment(.cs, SegmentCache(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA09B))
    #expect(write(0, CR0.pe, s) == .gp(0))
    s.setSegment(.cs, SegmentCache(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC09B))
    #expect(write(0, CR0.pe, s) == nil)
    #expect(s.efer & EFER.lma == 0)
  }

  @Test func cr3AndCR4Rules() throws {
    let (s, _) = makeLongMode()
    #expect(write(3, 1 << 45, s) == .gp(0))  // above MAXPHYADDR (40)
    let e3 = try ControlRegisters.write(3, value: 0x5000, state: s, features: features)
    #expect(e3 == .flushNonGlobalTLB && s.cr3 == 0x5000)
    #expect(write(4, CR4.pae | CR4.vme, s) == .gp(0))  // VME not advertised
    #expect(write(4, CR4.pae | CR4.pcide, s) == .gp(0))  // PCID not advertised
    var withPCID = features
    withPCID.insert(.pcid)
    s.cr3 = 0x5001
    #expect(
      faultOf { () throws(Fault) in
        _ = try ControlRegisters.write(4, value: CR4.pae | CR4.pcide, state: s, features: withPCID)
      } == .gp(0))  // CR3[11:0] must be 0
    s.cr3 = 0x5000
    #expect(try ControlRegisters.write(4, value: CR4.pae | CR4.pcide, state: s, features: withPCID) == .flushTLB)
    _ = try ControlRegisters.write(3, value: 1 << 63 | 0x6000, state: s, features: withPCID)
    #expect(s.cr3 == 0x6000)  // the no-flush bit is not stored
    #expect(
      try ControlRegisters.write(4, value: CR4.pae | CR4.pcide | CR4.pge, state: s, features: withPCID) == .flushTLB)
    #expect(
      try ControlRegisters.write(4, value: CR4.pae | CR4.pcide | CR4.pge | CR4.tsd, state: s, features: withPCID) == [])
    #expect(write(8, 16, s) == .gp(0))
    #expect(write(8, 15, s) == nil)
    #expect(try ControlRegisters.read(8, state: s) == 15)
  }

  @Test func cltsLmswSmswAndUMIP() throws {
    let s = CPUState()
    s.cr0 = CR0.pe | CR0.ts | CR0.et
    try ControlRegisters.clts(state: s)
    #expect(s.cr0 == CR0.pe | CR0.et)
    try ControlRegisters.lmsw(0xE, state: s)  // cannot clear PE
    #expect(s.cr0 == CR0.pe | CR0.et | 0xE)
    s.cpl = 3
    #expect(try ControlRegisters.smsw(state: s) == s.cr0)
    s.cr4 = CR4.umip
    #expect(faultOf { () throws(Fault) in _ = try ControlRegisters.smsw(state: s) } == .gp(0))
    #expect(faultOf { () throws(Fault) in _ = try DescriptorTableInstructions.store(.gdt, state: s) } == .gp(0))
    #expect(faultOf { () throws(Fault) in try ControlRegisters.clts(state: s) } == .gp(0))
  }

  @Test func debugRegisters() throws {
    let s = CPUState()
    try ControlRegisters.writeDebug(5, value: 0x1, state: s)  // DR5 aliases DR7 without CR4.DE
    #expect(try ControlRegisters.readDebug(7, state: s) == 0x401)
    try ControlRegisters.writeDebug(6, value: 0x0, state: s)
    #expect(try ControlRegisters.readDebug(4, state: s) == 0xFFFF_0FF0)
    #expect(faultOf { () throws(Fault) in try ControlRegisters.writeDebug(7, value: 1 << 32, state: s) } == .gp(0))
    s.cr4 = CR4.de
    #expect(faultOf { () throws(Fault) in _ = try ControlRegisters.readDebug(4, state: s) } == .ud)
    s.cpl = 3
    #expect(faultOf { () throws(Fault) in _ = try ControlRegisters.readDebug(0, state: s) } == .gp(0))
  }

  @Test func descriptorTableRegisters() throws {
    let (s, m) = makeLongMode()
    try DescriptorTableInstructions.load(.idt, limit: 0xFFF, base: 0xFFFF_8000_0000_0000, operandSize: 8, state: s)
    #expect(s.idtr.base == 0xFFFF_8000_0000_0000 && s.idtr.limit == 0xFFF)
    #expect(
      faultOf { () throws(Fault) in
        try DescriptorTableInstructions.load(.gdt, limit: 0, base: 1 << 47, operandSize: 8, state: s)
      } == .gp(0))
    // LTR marks the TSS busy in the GDT and loads TR.
    m.put64(LM.gdt + 0x30, SegmentDescriptor(base: UInt32(LM.tss), limit: 0x67, attributes: 0x89).raw)
    try DescriptorTableInstructions.loadTR(0x30, state: s, memory: m)
    #expect(m.bytes[LM.gdt + 0x35] == 0x8B)
    #expect(s.segment(.tr) == SegmentCache(selector: 0x30, base: UInt64(LM.tss), limit: 0x67, attributes: 0x8B))
    #expect(try DescriptorTableInstructions.storeTR(state: s) == 0x30)
    // A busy TSS cannot be loaded again.
    #expect(
      faultOf { () throws(Fault) in try DescriptorTableInstructions.loadTR(0x30, state: s, memory: m) } == .gp(0x30))
    #expect(faultOf { () throws(Fault) in try DescriptorTableInstructions.loadTR(0, state: s, memory: m) } == .gp(0))
    #expect(
      faultOf { () throws(Fault) in try DescriptorTableInstructions.loadTR(0x08, state: s, memory: m) } == .gp(0x08))
    #expect(
      faultOf { () throws(Fault) in try DescriptorTableInstructions.loadLDTR(0x30, state: s, memory: m) } == .gp(0x30))
    try DescriptorTableInstructions.loadLDTR(0, state: s, memory: m)
    s.cpl = 3
    #expect(faultOf { () throws(Fault) in try DescriptorTableInstructions.loadTR(0x30, state: s, memory: m) } == .gp(0))
    #expect(
      faultOf { () throws(Fault) in
        try DescriptorTableInstructions.load(.gdt, limit: 0, base: 0, operandSize: 8, state: s)
      } == .gp(0))
  }
}

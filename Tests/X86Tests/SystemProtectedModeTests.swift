import Testing

@testable import X86

/// Layout of the 32-bit protected-mode test machine.
enum PM {
  static let gdt = 0x1000
  static let idt = 0x2000
  static let tss = 0x3000
  static let ldt = 0x4000
}

/// A 32-bit protected-mode machine at CPL 0 with a varied GDT (see the selectors in the tests).
func makeProtectedMode() -> (CPUState, SystemTestMemory) {
  let s = CPUState()
  let m = SystemTestMemory()
  m.state = s
  m.put64(PM.gdt + 0x08, 0x00CF_9B00_0000_FFFF)  // ring-0 code32
  m.put64(PM.gdt + 0x10, 0x00CF_9300_0000_FFFF)  // ring-0 data32
  m.put64(PM.gdt + 0x18, 0x00CF_FB00_0000_FFFF)  // ring-3 code32
  m.put64(PM.gdt + 0x20, 0x00CF_F200_0000_FFFF)  // ring-3 data32, accessed bit clear
  m.put64(PM.gdt + 0x28, SegmentDescriptor(base: UInt32(PM.tss), limit: 0x67, attributes: 0x89).raw)
  m.put64(PM.gdt + 0x30, SegmentDescriptor(base: 0, limit: 0xFFF, attributes: 0x4097).raw)  // expand-down
  m.put64(PM.gdt + 0x38, SegmentDescriptor(base: 0, limit: 0xFFFFF, attributes: 0xC013).raw)  // not present
  m.put64(PM.gdt + 0x40, SegmentDescriptor(base: 0, limit: 0xFFFFF, attributes: 0xC09F).raw)  // conforming
  m.put64(PM.gdt + 0x48, SegmentDescriptor(base: 0, limit: 0xFFFFF, attributes: 0xC098).raw)  // execute-only
  m.put64(PM.gdt + 0x50, SegmentDescriptor(base: UInt32(PM.ldt), limit: 0xF, attributes: 0x82).raw)  // LDT
  m.put64(PM.ldt + 0x08, 0x00CF_F300_0000_FFFF)  // LDT entry 1: ring-3 data
  m.put32(PM.tss + 4, 0x9000)  // ESP0
  m.put16(PM.tss + 8, 0x10)  // SS0
  s.cr0 = CR0.pe | CR0.et
  s.gdtr = (UInt64(PM.gdt), 0x57)
  s.idtr = (UInt64(PM.idt), 0x7FF)
  s.setSegment(.cs, SegmentCache(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC09B))
  s.setSegment(.ss, SegmentCache(selector: 0x10, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC093))
  s.setSegment(.tr, SegmentCache(selector: 0x28, base: UInt64(PM.tss), limit: 0x67, attributes: 0x8B))
  s.cpl = 0
  s.codeMode = .bits32
  s.rflags = Flags.reserved1
  s.setGPR(4, 0x8000)
  return (s, m)
}

func enterUser32(_ s: CPUState, eip: UInt64, esp: UInt64) {
  s.setSegment(.cs, SegmentCache(selector: 0x1B, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC0FB))
  s.setSegment(.ss, SegmentCache(selector: 0x23, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC0F3))
  s.cpl = 3
  s.rip = eip
  s.setGPR(4, esp)
  s.rflags = 0x202
}

@Suite struct SystemProtectedModeTests {
  @Test func descriptorEncodingRoundTrips() {
    let d = SegmentDescriptor(base: 0x1234_5678, limit: 0xABCDE, attributes: 0xC09B)
    #expect(d.raw == 0x12CA_9B34_5678_BCDE)
    #expect(d.base == 0x1234_5678)
    #expect(d.rawLimit == 0xABCDE)
    #expect(d.limit == 0xABCD_EFFF)
    #expect(d.isCode && d.readable && !d.conforming && d.present && d.dpl == 0 && d.defaultBig)
    let flat64 = SegmentDescriptor(raw: 0x00AF_9B00_0000_FFFF)
    #expect(flat64.long && !flat64.defaultBig && flat64.attributes == 0xA09B && flat64.limit == 0xFFFF_FFFF)
    let sel = SegmentSelector(0x2F)
    #expect(sel.index == 5 && sel.isLocal && sel.rpl == 3 && !sel.isNull)
    #expect(SegmentSelector(3).isNull && !SegmentSelector(4).isNull)
    let gate = GateDescriptor(offset: 0xFFFF_8000_1234_5678, selector: 0x08, type: 0xE, dpl: 3, ist: 2)
    #expect(gate.low == 0x1234_EE02_0008_5678)
    #expect(gate.high == 0xFFFF_8000)
    #expect(gate.offset == 0xFFFF_8000_1234_5678 && gate.ist == 2 && gate.dpl == 3 && gate.present)
    let tss = SystemDescriptor(
      low: SegmentDescriptor(base: 0x0030_0000, limit: 0x67, attributes: 0x89).raw, high: 0xFFFF_8000)
    #expect(tss.base == 0xFFFF_8000_0030_0000 && tss.type == 9 && tss.upperTypeIsZero)
  }

  @Test func dataSegmentLoadsAndTheirFaults() throws {
    let (s, m) = makeProtectedMode()
    try SegmentLoader.loadData(.ds, selector: 0x23, state: s, memory: m)
    #expect(s.segment(.ds) == SegmentCache(selector: 0x23, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC0F3))
    #expect(m.bytes[PM.gdt + 0x25] == 0xF3)  // accessed bit set in memory
    try SegmentLoader.loadData(.es, selector: 0x08, state: s, memory: m)  // readable code is fine
    try SegmentLoader.loadData(.fs, selector: 0, state: s, memory: m)  // null
    #expect(s.segment(.fs).attributes & SegmentAttributes.present == 0)
    func load(_ r: SegmentRegister, _ sel: UInt16) -> Fault? {
      faultOf { () throws(Fault) in try SegmentLoader.loadData(r, selector: sel, state: s, memory: m) }
    }
    #expect(load(.ds, 0x48) == .gp(0x48))  // execute-only code
    #expect(load(.ds, 0x38) == .np(0x38))  // not present
    #expect(load(.ds, 0x58) == .gp(0x58))  // beyond the GDT limit
    #expect(load(.ds, 0x28) == .gp(0x28))  // a TSS
    #expect(load(.ds, 0x13) == .gp(0x10))  // RPL 3 > DPL 0
    #expect(load(.ds, 0x0C) == .gp(0x0C))  // LDT selector with no LDT
    #expect(load(.ss, 0) == .gp(0))
    #expect(load(.ss, 0x08) == .gp(0x08))  // code
    #expect(load(.ss, 0x23) == .gp(0x20))  // RPL != CPL
    #expect(load(.ss, 0x38) == .ss(0x38))  // not present stack
    s.cpl = 3
    #expect(load(.ds, 0x10) == .gp(0x10))  // DPL 0 < CPL 3
    #expect(load(.ds, 0x43) == nil)  // conforming readable code: no privilege check
    #expect(load(.ss, 0x23) == nil)
    // LDT lookups once LDTR is loaded.
    s.cpl = 0
    try DescriptorTableInstructions.loadLDTR(0x50, state: s, memory: m)
    #expect(load(.gs, 0x0F) == nil)
    #expect(s.segment(.gs).selector == 0x0F)
    #expect(load(.gs, 0x17) == .gp(0x14))  // LDT index 2 is beyond its limit
  }

  @Test func realAndVirtual8086LoadsUseSelectorTimes16() throws {
    let s = CPUState()
    let m = SystemTestMemory()
    try SegmentLoader.loadData(.ds, selector: 0x1234, state: s, memory: m)
    #expect(s.segment(.ds).base == 0x12340)
    let (p, pm) = makeProtectedMode()
    p.rflags |= Flags.vm
    try SegmentLoader.loadData(.es, selector: 0xB800, state: p, memory: pm)
    #expect(p.segment(.es) == SegmentCache(selector: 0xB800, base: 0xB8000, limit: 0xFFFF, attributes: 0xF3))
  }

  @Test func nullStackSegmentIn64BitModeAtRing0() throws {
    let (s, m) = makeLongMode()
    try SegmentLoader.loadData(.ss, selector: 0, state: s, memory: m)
    #expect(s.segment(.ss).selector == 0)
    #expect(faultOf { () throws(Fault) in try SegmentLoader.loadData(.ss, selector: 3, state: s, memory: m) } == .gp(0))
  }

  @Test func expandDownStackLimits() throws {
    let m = SystemTestMemory()
    let cache = SegmentCache(selector: 0x30, base: 0, limit: 0xFFF, attributes: 0x4097)
    var stack = SystemStack(cache: cache, pointer: 0x1004, long64: false, supervisor: true, faultCode: 0x30)
    try stack.push(0xAABB_CCDD, size: 4, memory: m)
    #expect(stack.pointer == 0x1000)
    #expect(faultOf { () throws(Fault) in try stack.push(1, size: 4, memory: m) } == .ss(0x30))
    // The top of the expand-down range is valid (B=1: up to 0xFFFFFFFF); at or below the limit is not.
    #expect(try stack.linear(0xFFFF_FFFC, size: 4) == 0xFFFF_FFFC)
    #expect(faultOf { () throws(Fault) in _ = try stack.linear(0xFFE, size: 4) } == .ss(0x30))
  }

  @Test func ring3ToRing0Interrupt32BitFrame() {
    let (s, m) = makeProtectedMode()
    m.put64(PM.idt + 13 * 8, GateDescriptor(offset: 0x0012_3456, selector: 0x08, type: 0xE, dpl: 0).low)
    enterUser32(s, eip: 0x40_1000, esp: 0x7000)
    let outcome = InterruptDelivery.deliver(
      vector: 13, errorCode: 0x28, kind: .exception, returnRIP: 0x40_1000, state: s, memory: m)
    #expect(outcome == .delivered)
    let expected = SystemTestMemory.frame([0x28, 0x40_1000, 0x1B, 0x1_0202, 0x7000, 0x23], size: 4)
    #expect(m.slice(0x8FE8, 24) == expected)
    #expect(s.gpr(4) == 0x8FE8)
    #expect(s.segment(.ss).selector == 0x10 && s.segment(.cs).selector == 0x08 && s.cpl == 0)
    #expect(s.rip == 0x12_3456 && s.rflags == 0x2 && s.codeMode == .bits32)
  }

  @Test func samePrivilege16BitTrapGateFrame() {
    let (s, m) = makeProtectedMode()
    m.put64(PM.idt + 0x21 * 8, GateDescriptor(offset: 0x5678, selector: 0x08, type: 0x7, dpl: 0).low)
    s.rflags = 0x246
    let outcome = InterruptDelivery.deliver(
      vector: 0x21, kind: .software(.intN), returnRIP: 0x1_2345, state: s, memory: m)
    #expect(outcome == .delivered)
    #expect(m.slice(0x8000 - 6, 6) == SystemTestMemory.frame([0x2345, 0x08, 0x246], size: 2))
    #expect(s.rflags == 0x246 && s.rip == 0x5678)
  }

  @Test func badStackInTSSIsInvalidTSS() {
    let (s, m) = makeProtectedMode()
    m.put64(PM.idt + 0x30 * 8, GateDescriptor(offset: 0x1000, selector: 0x08, type: 0xE, dpl: 3).low)
    m.put16(PM.tss + 8, 0x18)  // SS0 = a code segment
    enterUser32(s, eip: 0x40_1000, esp: 0x7000)
    #expect(
      faultOf { () throws(Fault) in
        try InterruptDelivery.deliverOnce(
          vector: 0x30, errorCode: nil, kind: .software(.intN), returnRIP: 0, state: s, memory: m)
      } == .ts(0x18))
    m.put16(PM.tss + 8, 0x38)  // not present
    m.put64(PM.gdt + 0x38, SegmentDescriptor(base: 0, limit: 0xFFFFF, attributes: 0xC013).raw)
    #expect(
      faultOf { () throws(Fault) in
        try InterruptDelivery.deliverOnce(
          vector: 0x30, errorCode: nil, kind: .external, returnRIP: 0, state: s, memory: m)
      } == .ss(0x39))
  }

  @Test func iretAndFarReturnToOuterLevel() throws {
    let (s, m) = makeProtectedMode()
    // IRETD frame: EIP, CS, EFLAGS, ESP, SS.
    for (i, v) in [0x40_2000, 0x1B, 0x3202, 0x7100, 0x23].enumerated() { m.put32(0x8000 + 4 * i, UInt32(v)) }
    s.rflags = 0x2
    try ReturnInstructions.iret(operandSize: 4, state: s, memory: m)
    #expect(s.cpl == 3 && s.rip == 0x40_2000 && s.gpr(4) == 0x7100)
    #expect(s.segment(.cs).selector == 0x1B && s.segment(.ss).selector == 0x23)
    #expect(s.rflags == 0x3202)  // IOPL changed at CPL 0
    // Far RET 8 from ring 0 to ring 3: EIP, CS, 8 bytes of parameters, ESP, SS.
    let (t, tm) = makeProtectedMode()
    for (i, v) in [0x40_3000, 0x1B, 0, 0, 0x7200, 0x23].enumerated() { tm.put32(0x8000 + 4 * i, UInt32(v)) }
    try ReturnInstructions.farReturn(operandSize: 4, release: 8, state: t, memory: tm)
    #expect(t.cpl == 3 && t.rip == 0x40_3000 && t.gpr(4) == 0x7208)
    // Returning to an inner level is #GP(CS).
    enterUser32(t, eip: 0, esp: 0x7000)
    tm.put32(0x7000, 0x1000)
    tm.put32(0x7004, 0x08)
    #expect(
      faultOf { () throws(Fault) in try ReturnInstructions.farReturn(operandSize: 4, state: t, memory: tm) }
        == .gp(0x08))
  }

  @Test func iretAtCPL3CannotChangeIOPLOrIF() throws {
    let (s, m) = makeProtectedMode()
    enterUser32(s, eip: 0, esp: 0x7000)
    for (i, v) in [0x40_2000, 0x1B, 0x3000 | 0x2 | 0x1].enumerated() { m.put32(0x7000 + 4 * i, UInt32(v)) }
    try ReturnInstructions.iret(operandSize: 4, state: s, memory: m)
    #expect(s.rflags == 0x203)  // CF taken; IOPL kept 0; IF kept 1 (CPL 3 > IOPL 0)
    #expect(s.gpr(4) == 0x700C)
  }

  /// Real-mode IRET through the system layer pops IP, CS and FLAGS (delivery through the IVT is
  /// the core's: RealModeDeliveryTests).
  @Test func realModeIRETPopsTheInterruptFrame() {
    let s = CPUState()
    let m = SystemTestMemory()
    s.setSegment(.cs, .real(0xF000, code: true))
    s.setSegment(.ss, .real(0))
    s.setGPR(4, 0x0FFA)
    s.rip = 0x1234
    s.rflags = 0x2
    for (i, byte) in [0x00, 0x01, 0x00, 0x07, 0x02, 0x02].enumerated() { m.bytes[0x0FFA + i] = UInt8(byte) }
    #expect(faultOf { () throws(Fault) in try ReturnInstructions.iret(operandSize: 2, state: s, memory: m) } == nil)
    #expect(s.segment(.cs).selector == 0x0700 && s.rip == 0x100 && s.rflags == 0x202 && s.gpr(4) == 0x1000)
  }

  @Test func farJumpChecks() throws {
    let (s, m) = makeProtectedMode()
    let cs = try SegmentLoader.checkFarTransfer(selector: 0x08, offset: 0x1000, state: s, memory: m)
    #expect(cs.selector == 0x08 && cs.attributes == 0xC09B)
    func jump(_ sel: UInt16, _ off: UInt64 = 0) -> Fault? {
      faultOf { () throws(Fault) in
        _ = try SegmentLoader.checkFarTransfer(selector: sel, offset: off, state: s, memory: m)
      }
    }
    #expect(jump(0) == .gp(0))
    #expect(jump(0x10) == .gp(0x10))  // data
    #expect(jump(0x1B) == .gp(0x18))  // DPL 3 non-conforming from CPL 0
    #expect(jump(0x28) == .notImplemented(.taskSwitch))
    enterUser32(s, eip: 0, esp: 0x7000)
    #expect(jump(0x43) == nil)  // conforming DPL 0 from CPL 3
    #expect(jump(0x08) == .gp(0x08))
  }
}

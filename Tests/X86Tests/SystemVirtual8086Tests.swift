import Testing

@testable import X86

@Suite struct SystemVirtual8086Tests {
  /// Enters virtual-8086 mode with IRETD from ring 0, then takes an interrupt back to ring 0.
  @Test func iretToVirtual8086AndInterruptBack() throws {
    let (s, m) = makeProtectedMode()
    // IRETD frame for a VM86 return: EIP, CS, EFLAGS(VM, IOPL 3), ESP, SS, ES, DS, FS, GS.
    let frame: [UInt32] = [0x0100, 0x2000, 0x2_3202, 0x0FFE, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000]
    for (i, v) in frame.enumerated() { m.put32(0x8000 + 4 * i, v) }
    let effects = try ReturnInstructions.iret(operandSize: 4, state: s, memory: m)
    #expect(effects.contains(.modeChanged))
    #expect(OperatingMode(s) == .virtual8086 && s.cpl == 3 && s.codeMode == .bits16)
    #expect(s.segment(.cs) == SegmentCache(selector: 0x2000, base: 0x2_0000, limit: 0xFFFF, attributes: 0xF3))
    #expect(s.segment(.gs).base == 0x7_0000 && s.segment(.ss).base == 0x3_0000 && s.gpr(4) == 0x0FFE)
    #expect(s.rip == 0x100)

    // An interrupt from virtual-8086 mode: ring-0 stack from the TSS, GS FS DS ES SS ESP EFLAGS CS EIP.
    m.put64(PM.idt + 0x20 * 8, GateDescriptor(offset: 0x4321, selector: 0x08, type: 0xE, dpl: 0).low)
    let outcome = InterruptDelivery.deliver(vector: 0x20, kind: .external, returnRIP: 0x102, state: s, memory: m)
    #expect(outcome == .delivered)
    let expected = SystemTestMemory.frame(
      [0x102, 0x2000, 0x2_3202, 0x0FFE, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000], size: 4)
    #expect(m.slice(0x9000 - 36, 36) == expected)
    #expect(OperatingMode(s) == .protected && s.cpl == 0 && s.rip == 0x4321 && s.codeMode == .bits32)
    #expect(s.segment(.ds).selector == 0 && s.segment(.ds).attributes == 0)
  }

  @Test func ioplSensitiveInstructionsInVirtual8086Mode() throws {
    let (s, m) = makeProtectedMode()
    s.rflags = Flags.vm | 2  // IOPL 0
    s.cpl = 3
    s.setSegment(.ss, SegmentCache.real(0))
    s.setGPR(4, 0x1000)
    m.put64(PM.idt + 13 * 8, GateDescriptor(offset: 0x4321, selector: 0x08, type: 0xE, dpl: 0).low)
    // INT n with IOPL < 3 is #GP(0), delivered to the ring-0 handler.
    #expect(
      faultOf { () throws(Fault) in
        try InterruptDelivery.deliverOnce(
          vector: 0x21, errorCode: nil, kind: .software(.intN), returnRIP: 0, state: s, memory: m)
      } == .gp(0))
    #expect(faultOf { () throws(Fault) in try ReturnInstructions.iret(operandSize: 2, state: s, memory: m) } == .gp(0))
    // With IOPL 3, a 16-bit IRET works like real mode but cannot change IOPL.
    s.rflags = Flags.vm | Flags.iopl | 2
    m.put16(0x1000, 0x0200)
    m.put16(0x1002, 0x1234)
    m.put16(0x1004, 0x0046)
    try ReturnInstructions.iret(operandSize: 2, state: s, memory: m)
    #expect(s.rip == 0x200 && s.segment(.cs).base == 0x12340 && s.rflags == Flags.vm | Flags.iopl | 0x46)
  }
}

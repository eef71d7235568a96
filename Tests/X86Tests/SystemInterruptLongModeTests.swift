import Testing

@testable import X86

@Suite struct SystemInterruptLongModeTests {
  @Test func ring3ToRing0FrameWithErrorCodeAndStackSwitch() {
    let (s, m) = makeLongMode()
    setGate64(m, vector: 13, offset: 0xFFFF_8000_0000_1234)
    enterUser64(s, rip: 0x40_1000, rsp: 0x7_0008)
    let outcome = InterruptDelivery.deliver(
      vector: 13, errorCode: 0x10, kind: .exception, returnRIP: 0x40_1000, state: s, memory: m)
    #expect(outcome == .delivered)
    // SS, RSP, RFLAGS (RF set for a fault), CS, RIP, error code from RSP0 = 0x9000 downwards.
    let expected = SystemTestMemory.frame([0x10, 0x40_1000, 0x2B, 0x1_0202, 0x7_0008, 0x23], size: 8)
    #expect(m.slice(0x8FD0, 48) == expected)
    #expect(s.gpr(4) == 0x8FD0)
    #expect(s.rip == 0xFFFF_8000_0000_1234)
    #expect(s.segment(.cs).selector == 0x08)
    #expect(s.segment(.ss).selector == 0)  // null SS with RPL = new CPL 0
    #expect(s.cpl == 0)
    #expect(s.codeMode == .bits64)
    #expect(s.rflags == 0x2)  // IF cleared by the interrupt gate, RF cleared
    #expect(m.userAccesses.isEmpty)
  }

  @Test func samePrivilegeFrameIsAlignedAndKeepsSS() {
    let (s, m) = makeLongMode()
    setGate64(m, vector: 0x80, offset: 0x5000, type: 0xF)  // trap gate keeps IF
    s.setGPR(4, 0x8008)
    s.rflags = 0x246
    let outcome = InterruptDelivery.deliver(
      vector: 0x80, kind: .external, returnRIP: 0x1111, state: s, memory: m)
    #expect(outcome == .delivered)
    // Aligned down to 0x8000 first; no error code; RF not set for an interrupt.
    let expected = SystemTestMemory.frame([0x1111, 0x08, 0x246, 0x8008, 0x10], size: 8)
    #expect(m.slice(0x7FD8, 40) == expected)
    #expect(s.gpr(4) == 0x7FD8)
    #expect(s.segment(.ss).selector == 0x10)
    #expect(s.rflags == 0x246)
  }

  @Test func istStackIsUsedEvenWithoutPrivilegeChange() {
    let (s, m) = makeLongMode()
    setGate64(m, vector: 8, offset: 0x6000, ist: 1)
    s.setGPR(4, 0x8000)
    let outcome = InterruptDelivery.deliver(
      vector: 8, errorCode: 0, kind: .exception, returnRIP: 0x2222, state: s, memory: m)
    #expect(outcome == .delivered)
    // IST1 = 0xA008 aligned to 0xA000.
    let expected = SystemTestMemory.frame([0, 0x2222, 0x08, 0x2, 0x8000, 0x10], size: 8)
    #expect(m.slice(0xA000 - 48, 48) == expected)
    #expect(s.gpr(4) == 0xA000 - 48)
  }

  @Test func softwareInterruptChecksGateDPL() {
    let (s, m) = makeLongMode()
    setGate64(m, vector: 0x21, offset: 0x5000, dpl: 0)
    setGate64(m, vector: 13, offset: 0x6000)
    enterUser64(s, rip: 0x40_0002, rsp: 0x7_0000)
    // INT 21h from ring 3 through a DPL-0 gate: #GP(21h*8+2), delivered through vector 13.
    let outcome = InterruptDelivery.deliver(
      vector: 0x21, kind: .software(.intN), returnRIP: 0x40_0002, instructionRIP: 0x40_0000, state: s, memory: m)
    #expect(outcome == .delivered)
    #expect(s.rip == 0x6000)
    #expect(m.get64(Int(s.gpr(4))) == 0x21 * 8 + 2)  // error code, EXT = 0
    #expect(m.get64(Int(s.gpr(4)) + 8) == 0x40_0000)  // the faulting INT instruction
  }

  @Test func badGateTypeIsGPWithIDTAndEXTBits() {
    let (s, m) = makeLongMode()
    setGate64(m, vector: 0x30, offset: 0x5000, type: 0x6)  // a 16-bit gate is invalid in IA-32e mode
    #expect(
      expectFault(.gp(0x30 * 8 + 3)) { () throws(Fault) in
        try InterruptDelivery.deliverOnce(
          vector: 0x30, errorCode: nil, kind: .external, returnRIP: 0, state: s, memory: m)
      })
    setGate64(m, vector: 0x31, offset: 0x5000, present: false)
    #expect(
      expectFault(.np(0x31 * 8 + 2)) { () throws(Fault) in
        try InterruptDelivery.deliverOnce(
          vector: 0x31, errorCode: nil, kind: .software(.intN), returnRIP: 0, state: s, memory: m)
      })
    setGate64(m, vector: 0x32, offset: 0x5000, selector: LM.kernelData)
    #expect(
      expectFault(.gp(0x11)) { () throws(Fault) in
        try InterruptDelivery.deliverOnce(
          vector: 0x32, errorCode: nil, kind: .exception, returnRIP: 0, state: s, memory: m)
      })
    setGate64(m, vector: 0x33, offset: 0x5000, selector: 0)
    #expect(
      expectFault(.gp(1)) { () throws(Fault) in
        try InterruptDelivery.deliverOnce(
          vector: 0x33, errorCode: nil, kind: .external, returnRIP: 0, state: s, memory: m)
      })
    // Beyond the IDT limit.
    s.idtr = (UInt64(LM.idt), 0x10 * 16 - 1)
    #expect(
      expectFault(.gp(0x10 * 8 + 3)) { () throws(Fault) in
        try InterruptDelivery.deliverOnce(
          vector: 0x10, errorCode: nil, kind: .exception, returnRIP: 0, state: s, memory: m)
      })
  }

  @Test func contributoryDuringContributoryBecomesDoubleFault() {
    let (s, m) = makeLongMode()
    // #NP (vector 11) handler not present -> #NP(11*8+2+1) while delivering #NP -> #DF(0).
    setGate64(m, vector: 11, offset: 0x5000, present: false)
    setGate64(m, vector: 8, offset: 0x7000, ist: 1)
    let outcome = InterruptDelivery.deliver(
      vector: 11, errorCode: 0x18, kind: .exception, returnRIP: 0x3333, state: s, memory: m)
    #expect(outcome == .delivered)
    #expect(s.rip == 0x7000)
    #expect(m.get64(Int(s.gpr(4))) == 0)  // #DF error code
    #expect(m.get64(Int(s.gpr(4)) + 8) == 0x3333)
  }

  @Test func pageFaultDuringDeliveryOfPageFaultIsDoubleFault() {
    let (s, m) = makeLongMode()
    setGate64(m, vector: 14, offset: 0x5000)
    setGate64(m, vector: 8, offset: 0x7000, ist: 1)
    m.unmappedPages = [0x7]  // the current stack page
    s.setGPR(4, 0x8000)
    let outcome = InterruptDelivery.deliver(
      vector: 14, errorCode: 2, pageFaultAddress: 0xDEAD_0000, kind: .exception, returnRIP: 0x4444, state: s,
      memory: m)
    #expect(outcome == .delivered)
    #expect(s.rip == 0x7000)
    #expect(s.cr2 == 0x7FF8)  // the nested #PF's address, set by the memory interface
  }

  @Test func benignFirstEventDeliversTheSecondSerially() {
    let (s, m) = makeLongMode()
    setGate64(m, vector: 0x40, offset: 0x5000, present: false)
    setGate64(m, vector: 11, offset: 0x6000)
    s.setGPR(4, 0x8000)
    let outcome = InterruptDelivery.deliver(vector: 0x40, kind: .external, returnRIP: 0x99, state: s, memory: m)
    #expect(outcome == .delivered)
    #expect(s.rip == 0x6000)
    #expect(m.get64(Int(s.gpr(4))) == 0x40 * 8 + 3)
  }

  @Test func faultWhileDeliveringDoubleFaultIsTripleFault() {
    let (s, m) = makeLongMode()
    s.idtr = (UInt64(LM.idt), 0)  // every gate is beyond the limit
    let outcome = InterruptDelivery.deliver(
      vector: 13, errorCode: 0, kind: .exception, returnRIP: 0, state: s, memory: m)
    #expect(outcome == .tripleFault)
  }

  @Test func iretqReturnsToRing3AndRestoresEverything() throws {
    let (s, m) = makeLongMode()
    setGate64(m, vector: 0x80, offset: 0x5000, dpl: 3)
    enterUser64(s, rip: 0x40_0002, rsp: 0x7_0000, flags: 0x202 | Flags.cf)
    #expect(
      InterruptDelivery.deliver(vector: 0x80, kind: .software(.intN), returnRIP: 0x40_0002, state: s, memory: m)
        == .delivered)
    #expect(s.cpl == 0)
    try ReturnInstructions.iret(operandSize: 8, state: s, memory: m)
    #expect(s.cpl == 3)
    #expect(s.rip == 0x40_0002)
    #expect(s.gpr(4) == 0x7_0000)
    #expect(s.segment(.cs).selector == LM.userCode64)
    #expect(s.segment(.ss).selector == LM.userData)
    #expect(s.rflags == 0x203)
    #expect(s.codeMode == .bits64)
  }

  @Test func iretqChecksTheReturnSelectors() {
    let (s, m) = makeLongMode()
    func push(_ values: [UInt64]) {
      // RIP, CS, RFLAGS, RSP, SS at 0x8000.
      for (i, v) in values.enumerated() { m.put64(0x8000 + 8 * i, v) }
      s.setGPR(4, 0x8000)
    }
    // Return CS RPL 3 but DPL 0 code: #GP(sel).
    push([0x1000, 0x0B, 0x2, 0x7000, 0x23])
    #expect(
      expectFault(.gp(0x08)) { () throws(Fault) in try ReturnInstructions.iret(operandSize: 8, state: s, memory: m) })
    // SS RPL mismatch: #GP(SS).
    push([0x1000, 0x2B, 0x2, 0x7000, 0x20])
    #expect(
      expectFault(.gp(0x20)) { () throws(Fault) in try ReturnInstructions.iret(operandSize: 8, state: s, memory: m) })
    // Null SS to ring 3: #GP(0).
    push([0x1000, 0x2B, 0x2, 0x7000, 0x03])
    #expect(
      expectFault(.gp(0)) { () throws(Fault) in try ReturnInstructions.iret(operandSize: 8, state: s, memory: m) })
    // Non-canonical RIP: #GP(0).
    push([0x8000_0000_0000, 0x2B, 0x2, 0x7000, 0x23])
    #expect(
      expectFault(.gp(0)) { () throws(Fault) in try ReturnInstructions.iret(operandSize: 8, state: s, memory: m) })
    // Same-level IRETQ with null SS at CPL 0 is fine and pops SS:RSP.
    push([0x1000, 0x08, 0x2, 0x7000, 0x0])
    #expect(faultOf { () throws(Fault) in try ReturnInstructions.iret(operandSize: 8, state: s, memory: m) } == nil)
    #expect(s.gpr(4) == 0x7000)
    #expect(s.rip == 0x1000)
    // NT set in IA-32e mode: #GP(0).
    s.rflags |= Flags.nt
    #expect(
      expectFault(.gp(0)) { () throws(Fault) in try ReturnInstructions.iret(operandSize: 8, state: s, memory: m) })
  }

  @Test func returnToRing3NullsDataSegmentsWithLowerDPL() throws {
    let (s, m) = makeLongMode()
    s.setSegment(.ds, SegmentCache(selector: 0x10, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC093))
    s.setSegment(.fs, SegmentCache(selector: 0x10, base: 0x1234, limit: 0xFFFF_FFFF, attributes: 0xC093))
    s.setSegment(.es, SegmentCache(selector: 0x23, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC0F3))
    for (i, v) in [0x1000, 0x2B, 0x2, 0x7000, 0x23].enumerated() { m.put64(0x8000 + 8 * i, UInt64(v)) }
    s.setGPR(4, 0x8000)
    try ReturnInstructions.iret(operandSize: 8, state: s, memory: m)
    #expect(s.segment(.ds).selector == 0 && s.segment(.ds).attributes == 0)
    #expect(s.segment(.fs).selector == 0 && s.segment(.fs).base == 0x1234)
    #expect(s.segment(.es).selector == 0x23)
  }

}

import Testing

@testable import X86

@Suite struct SystemFarTransferTests {
  @Test func callGateToRing0CopiesParametersAndSwitchesStack() throws {
    let (s, m) = makeProtectedMode()
    // GDT 0x58: 32-bit call gate, DPL 3, 2 parameters, to 0x08:0x5000.
    var gate = GateDescriptor(offset: 0x5000, selector: 0x08, type: 0xC, dpl: 3)
    gate.low |= 2 << 32
    m.put64(PM.gdt + 0x58, gate.low)
    s.gdtr = (UInt64(PM.gdt), 0x5F)
    enterUser32(s, eip: 0x40_1000, esp: 0x7000)
    m.put32(0x7000, 0xAAAA_0001)  // last pushed parameter
    m.put32(0x7004, 0xBBBB_0002)
    try FarTransfers.call(selector: 0x5B, offset: 0, operandSize: 4, returnRIP: 0x40_1007, state: s, memory: m)
    #expect(s.cpl == 0 && s.rip == 0x5000 && s.segment(.cs).selector == 0x08 && s.segment(.ss).selector == 0x10)
    // New stack from ESP0 = 0x9000: SS, ESP, parameters in caller order, CS, EIP.
    let expected = SystemTestMemory.frame([0x40_1007, 0x1B, 0xAAAA_0001, 0xBBBB_0002, 0x7000, 0x23], size: 4)
    #expect(m.slice(0x9000 - 24, 24) == expected)
    #expect(s.gpr(4) == 0x9000 - 24)
    // RETF 8 returns to ring 3 past the parameters.
    try ReturnInstructions.farReturn(operandSize: 4, release: 8, state: s, memory: m)
    #expect(s.cpl == 3 && s.rip == 0x40_1007 && s.gpr(4) == 0x7008 && s.segment(.ss).selector == 0x23)
  }

  @Test func callGateChecks() {
    let (s, m) = makeProtectedMode()
    m.put64(PM.gdt + 0x58, GateDescriptor(offset: 0x5000, selector: 0x08, type: 0xC, dpl: 0).low)
    s.gdtr = (UInt64(PM.gdt), 0x5F)
    enterUser32(s, eip: 0, esp: 0x7000)
    func call(_ sel: UInt16) -> Fault? {
      faultOf { () throws(Fault) in
        try FarTransfers.call(selector: sel, offset: 0, operandSize: 4, returnRIP: 0, state: s, memory: m)
      }
    }
    #expect(call(0x5B) == .gp(0x58))  // gate DPL 0 < CPL 3
    m.put64(PM.gdt + 0x58, GateDescriptor(offset: 0x5000, selector: 0x08, type: 0xC, dpl: 3, present: false).low)
    #expect(call(0x5B) == .np(0x58))
    m.put64(PM.gdt + 0x58, GateDescriptor(offset: 0x5000, selector: 0x10, type: 0xC, dpl: 3).low)
    #expect(call(0x5B) == .gp(0x10))  // target is data
    // JMP through a gate cannot change privilege.
    m.put64(PM.gdt + 0x58, GateDescriptor(offset: 0x5000, selector: 0x08, type: 0xC, dpl: 3).low)
    #expect(
      faultOf { () throws(Fault) in
        try FarTransfers.jump(selector: 0x5B, offset: 0, operandSize: 4, state: s, memory: m)
      }
        == .gp(0x08))
  }

  @Test func longModeCallGateAndDirectFarCall() throws {
    let (s, m) = makeLongMode()
    // 16-byte call gate at GDT 0x40, DPL 3, to the 64-bit kernel code.
    let gate = GateDescriptor(offset: 0xFFFF_8000_0000_5000, selector: 0x08, type: 0xC, dpl: 3)
    m.put64(LM.gdt + 0x40, gate.low)
    m.put64(LM.gdt + 0x48, gate.high)
    s.gdtr = (UInt64(LM.gdt), 0x4F)
    enterUser64(s, rip: 0x40_1000, rsp: 0x7_0008)
    try FarTransfers.call(selector: 0x43, offset: 0, operandSize: 8, returnRIP: 0x40_1007, state: s, memory: m)
    #expect(s.cpl == 0 && s.rip == 0xFFFF_8000_0000_5000 && s.segment(.ss).selector == 0)
    let expected = SystemTestMemory.frame([0x40_1007, 0x2B, 0x7_0008, 0x23], size: 8)
    #expect(m.slice(Int(LM.rsp0) - 32, 32) == expected)
    // A direct far call at the same level pushes CS:RIP with the operand size.
    let (t, tm) = makeLongMode()
    t.setGPR(4, 0x8000)
    try FarTransfers.call(selector: 0x08, offset: 0x1234, operandSize: 8, returnRIP: 0x99, state: t, memory: tm)
    #expect(t.rip == 0x1234 && t.gpr(4) == 0x7FF0 && tm.get64(0x7FF0) == 0x99 && tm.get64(0x7FF8) == 0x08)
  }
}

@Suite struct SystemDescriptorQueryTests {
  @Test func larLslVerrVerw() throws {
    let (s, m) = makeProtectedMode()
    let lar = try DescriptorQueries.lar(0x23, operandSize: 4, state: s, memory: m)
    #expect(lar == .init(valid: true, value: 0x00C0_F200))  // G, D/B; P, DPL 3, data read/write
    #expect(try DescriptorQueries.lsl(0x28, state: s, memory: m) == .init(valid: true, value: 0x67))
    #expect(try DescriptorQueries.lsl(0x1B, state: s, memory: m) == .init(valid: true, value: 0xFFFF_FFFF))
    #expect(try DescriptorQueries.lsl(0x98, state: s, memory: m) == .invalid)  // beyond the GDT
    #expect(try DescriptorQueries.verify(0x48, write: false, state: s, memory: m) == false)  // execute-only
    #expect(try DescriptorQueries.verify(0x08, write: false, state: s, memory: m))
    #expect(try DescriptorQueries.verify(0x08, write: true, state: s, memory: m) == false)
    #expect(try DescriptorQueries.verify(0x10, write: true, state: s, memory: m))
    s.cpl = 3
    #expect(try DescriptorQueries.lar(0x10, operandSize: 4, state: s, memory: m) == .invalid)  // DPL 0
    #expect(try DescriptorQueries.lar(0x43, operandSize: 2, state: s, memory: m) == .init(valid: true, value: 0x9F00))
    #expect(try DescriptorQueries.lsl(0x28, state: s, memory: m) == .invalid)  // TSS DPL 0
  }

  @Test func timeStampCounterAndINVLPGPrivilege() throws {
    let s = CPUState()
    s.cr0 = CR0.pe
    s[offset: CPUStateLayout.tscOffset] = 100
    #expect(try SystemInstructions.rdtsc(state: s, hostTSC: 5) == 105)
    s.cpl = 3
    s.cr4 = CR4.tsd
    #expect(faultOf { () throws(Fault) in _ = try SystemInstructions.rdtsc(state: s, hostTSC: 5) } == .gp(0))
    #expect(faultOf { () throws(Fault) in try SystemInstructions.invlpg(0, state: s, tlb: SoftTLB()) } == .gp(0))
  }
}

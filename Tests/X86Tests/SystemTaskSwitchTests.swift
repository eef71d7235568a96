import Testing

@testable import X86

/// A protected-mode machine with the current task in TSS 0x28 (busy) and a second task in TSS
/// 0x60 at 0x5000, reachable through the task gate 0x58 and IDT vector 8.
func makeTwoTasks() -> (CPUState, SystemTestMemory) {
  let (s, m) = makeProtectedMode()
  m.put64(PM.gdt + 0x28, SegmentDescriptor(base: UInt32(PM.tss), limit: 0x67, attributes: 0x8B).raw)
  m.put64(PM.gdt + 0x58, GateDescriptor(offset: 0, selector: 0x60, type: 5, dpl: 0).low)
  m.put64(PM.gdt + 0x60, SegmentDescriptor(base: 0x5000, limit: 0x67, attributes: 0x89).raw)
  s.gdtr = (UInt64(PM.gdt), 0x67)
  m.put64(PM.idt + 8 * 8, GateDescriptor(offset: 0, selector: 0x60, type: 5, dpl: 0).low)
  m.put32(0x5000 + 0x20, 0x7777)  // EIP
  m.put32(0x5000 + 0x24, 0x2)  // EFLAGS
  m.put32(0x5000 + 0x28, 0x1111)  // EAX
  m.put32(0x5000 + 0x38, 0x6800)  // ESP
  m.put16(0x5000 + 0x4C, 0x08)  // CS
  m.put16(0x5000 + 0x50, 0x10)  // SS
  m.put16(0x5000 + 0x54, 0x10)  // DS
  s.setGPR(0, 0xAAAA)
  s.rip = 0x1000
  return (s, m)
}

@Suite struct SystemTaskSwitchTests {
  @Test func callToATaskAndIretBack() throws {
    let (s, m) = makeTwoTasks()
    let effects = try FarTransfers.call(
      selector: 0x60, offset: 0, operandSize: 4, returnRIP: 0x1007, state: s, memory: m)
    #expect(effects.contains(.modeChanged))
    #expect(s.segment(.tr).selector == 0x60 && s.segment(.tr).attributes & 0xF == 0xB)
    #expect(m.bytes[PM.gdt + 0x65] == 0x8B)  // new TSS busy
    #expect(m.bytes[PM.gdt + 0x2D] == 0x8B)  // old TSS stays busy (nested)
    #expect(m.get64(0x5000) & 0xFFFF == 0x28)  // back link
    #expect(s.rip == 0x7777 && s.gpr(0) == 0x1111 && s.gpr(4) == 0x6800)
    #expect(s.rflags & Flags.nt != 0 && s.cr0 & CR0.ts != 0)
    #expect(s.segment(.cs).selector == 0x08 && s.segment(.ss).selector == 0x10 && s.segment(.ds).selector == 0x10)
    // The outgoing task's state is in its TSS.
    #expect(m.get64(PM.tss + 0x20) & 0xFFFF_FFFF == 0x1007)
    #expect(m.get64(PM.tss + 0x28) & 0xFFFF_FFFF == 0xAAAA)
    #expect(m.get64(PM.tss + 0x4C) & 0xFFFF == 0x08)

    s.setGPR(0, 0x2222)
    try ReturnInstructions.iret(operandSize: 4, returnRIP: 0x7780, state: s, memory: m)
    #expect(s.segment(.tr).selector == 0x28)
    #expect(s.rip == 0x1007 && s.gpr(0) == 0xAAAA && s.rflags & Flags.nt == 0)
    #expect(m.bytes[PM.gdt + 0x65] == 0x89)  // the nested task is no longer busy
    #expect(m.get64(0x5000 + 0x20) & 0xFFFF_FFFF == 0x7780)
    #expect(m.get64(0x5000 + 0x24) & Flags.nt == 0)  // NT cleared in the saved image
  }

  @Test func doubleFaultThroughATaskGatePushesTheErrorCode() {
    let (s, m) = makeTwoTasks()
    let outcome = InterruptDelivery.deliver(
      vector: 8, errorCode: 0, kind: .exception, returnRIP: 0x1000, state: s, memory: m)
    #expect(outcome == .taskSwitched)
    #expect(s.segment(.tr).selector == 0x60 && s.rip == 0x7777)
    #expect(s.gpr(4) == 0x67FC && m.get64(0x67FC) & 0xFFFF_FFFF == 0)
  }

  @Test func taskSwitchFaults() {
    let (s, m) = makeTwoTasks()
    func jump(_ sel: UInt16) -> Fault? {
      faultOf { () throws(Fault) in
        try FarTransfers.jump(selector: sel, offset: 0, operandSize: 4, state: s, memory: m)
      }
    }
    #expect(jump(0x28) == .gp(0x28))  // the busy current task
    enterUser32(s, eip: 0, esp: 0x7000)
    #expect(jump(0x5B) == .gp(0x58))  // task gate DPL 0 from CPL 3
    #expect(jump(0x63) == .gp(0x60))  // TSS DPL 0 from CPL 3
    // A bad CS in the new task faults in the new task's context.
    let (t, tm) = makeTwoTasks()
    tm.put16(0x5000 + 0x4C, 0x10)
    #expect(
      faultOf { () throws(Fault) in
        try FarTransfers.jump(selector: 0x60, offset: 0, operandSize: 4, state: t, memory: tm)
      } == .ts(0x10))
    #expect(t.segment(.tr).selector == 0x60)
    #expect(tm.bytes[PM.gdt + 0x2D] == 0x89)  // JMP released the old task
  }

  /// makeTwoTasks plus a 16-bit TSS at 0x5800 (selector 0x68, available) whose task starts at
  /// 0x08:0x4444 with AX = 0x1234, SP = 0x6000, ZF set.
  func makeSixteenBitTask() -> (CPUState, SystemTestMemory) {
    let (s, m) = makeTwoTasks()
    m.put64(PM.gdt + 0x68, SegmentDescriptor(base: 0x5800, limit: 0x2B, attributes: 0x81).raw)
    s.gdtr = (UInt64(PM.gdt), 0x6F)
    m.put16(0x5800 + 0x0E, 0x4444)  // IP
    m.put16(0x5800 + 0x10, 0x0042)  // FLAGS: ZF
    m.put16(0x5800 + 0x12, 0x1234)  // AX
    m.put16(0x5800 + 0x1A, 0x6000)  // SP
    m.put16(0x5800 + 0x22, 0x10)  // ES
    m.put16(0x5800 + 0x24, 0x08)  // CS
    m.put16(0x5800 + 0x26, 0x10)  // SS
    m.put16(0x5800 + 0x28, 0x10)  // DS
    return (s, m)
  }

  @Test func jumpToA16BitTaskAndBackToA32BitOne() throws {
    let (s, m) = makeSixteenBitTask()
    let fs = s.segment(.fs).selector
    try FarTransfers.jump(selector: 0x68, offset: 0, operandSize: 4, returnRIP: 0x1007, state: s, memory: m)
    #expect(s.segment(.tr).selector == 0x68 && s.segment(.tr).attributes & 0xF == 3)  // busy 16-bit TSS
    #expect(m.bytes[PM.gdt + 0x6D] == 0x83)
    #expect(m.bytes[PM.gdt + 0x2D] == 0x89)  // the 32-bit task we left is no longer busy
    #expect(s.rip == 0x4444 && s.rflags == 0x42)
    #expect(s.gpr(0) & 0xFFFF == 0x1234 && s.gpr(4) & 0xFFFF == 0x6000)
    #expect(s.segment(.cs).selector == 0x08 && s.segment(.ss).selector == 0x10 && s.segment(.es).selector == 0x10)
    #expect(s.segment(.fs).selector == fs)  // a 16-bit TSS has no FS/GS: they stay
    #expect(m.get64(PM.tss + 0x20) & 0xFFFF_FFFF == 0x1007)  // the 32-bit TSS got the outgoing EIP

    // Back to the 32-bit task: the 16-bit TSS keeps the low halves only.
    s.setGPR(0, 0xABCD_5678)
    s.setGPR(3, 0x1111_2222)
    try FarTransfers.jump(selector: 0x28, offset: 0, operandSize: 4, returnRIP: 0x4450, state: s, memory: m)
    #expect(s.segment(.tr).selector == 0x28 && s.rip == 0x1007 && s.gpr(0) == 0xAAAA)
    #expect(m.get64(0x5800 + 0x0E) & 0xFFFF == 0x4450)  // IP
    #expect(m.get64(0x5800 + 0x12) & 0xFFFF == 0x5678)  // AX
    #expect(m.get64(0x5800 + 0x18) & 0xFFFF == 0x2222)  // BX
    #expect(m.get64(0x5800 + 0x24) & 0xFFFF == 0x08)  // CS
    #expect(m.bytes[PM.gdt + 0x6D] == 0x81)  // available again
  }

  @Test func callToA16BitTaskNestsAndIretReturns() throws {
    let (s, m) = makeSixteenBitTask()
    try FarTransfers.call(selector: 0x68, offset: 0, operandSize: 4, returnRIP: 0x1007, state: s, memory: m)
    #expect(s.rflags & Flags.nt != 0 && m.get64(0x5800) & 0xFFFF == 0x28)  // back link
    try ReturnInstructions.iret(operandSize: 2, returnRIP: 0x4446, state: s, memory: m)
    #expect(s.segment(.tr).selector == 0x28 && s.rip == 0x1007 && s.gpr(0) == 0xAAAA)
    #expect(m.get64(0x5800 + 0x10) & Flags.nt == 0)  // NT cleared in the saved FLAGS
  }

  @Test func a16BitTSSBelowItsMinimumLimitIsInvalid() {
    let (s, m) = makeSixteenBitTask()
    m.put64(PM.gdt + 0x68, SegmentDescriptor(base: 0x5800, limit: 0x2A, attributes: 0x81).raw)
    #expect(
      faultOf { () throws(Fault) in
        try FarTransfers.jump(selector: 0x68, offset: 0, operandSize: 4, state: s, memory: m)
      } == .ts(0x68))
    #expect(s.segment(.tr).selector == 0x28)
  }
}

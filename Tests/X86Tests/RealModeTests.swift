import Testing
import X86

@Suite struct RealModeTests {
  @Test func pushSPDiffersBetween8086And286() {
    let (c86, r86) = makeCPUReal(.i8086, [0x54])
    #expect(c86.step() == nil)
    #expect(r86.word(0xFFE) == 0xFFE)
    let (c286, r286) = makeCPUReal(.i80286, [0x54])
    #expect(c286.step() == nil)
    #expect(r286.word(0xFFE) == 0x1000)
  }

  @Test func sixteenBitOffsetsWrap() {
    // mov ax, [bx+si] with bx+si = 0x1_0001 -> offset 0x0001.
    let (cpu, ram) = makeCPUReal(.i8086, [0x8B, 0x00])
    ram.load([0x34, 0x12], at: 0x1)
    cpu.state.setGPR(Reg.rbx, 0xFFFF)
    cpu.state.setGPR(Reg.rsi, 0x0002)
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rax) & 0xFFFF == 0x1234)
  }

  @Test func aamZeroRaisesDivideErrorThroughTheIVT() {
    let (cpu, ram) = makeCPUReal(.i80286, [0xD4, 0x00])
    ram.load([0x00, 0x20, 0x00, 0x00], at: 0)  // vector 0 -> 0000:2000
    cpu.state.rflags |= Flags.if
    #expect(cpu.step() == nil)
    #expect(cpu.state.rip == 0x2000)
    #expect(ram.word(0xFFA) == 0x100)  // IP of the faulting AAM on the 286
    #expect(cpu.state.rflags & Flags.if == 0)
  }

  @Test func softwareInterruptFrameAndIret() {
    let (cpu, ram) = makeCPUReal(.i8086, [0xCD, 0x21])
    ram.load([0x00, 0x30, 0x00, 0x00], at: 0x21 * 4)
    ram.load([0xCF], at: 0x3000)  // iret
    #expect(cpu.step() == nil)
    #expect(cpu.state.rip == 0x3000)
    #expect(ram.word(0xFFA) == 0x102 && ram.word(0xFFC) == 0 && ram.word(0xFFE) & 0xF000 == 0xF000)
    #expect(cpu.step() == nil)
    #expect(cpu.state.rip == 0x102 && cpu.state.gpr(Reg.rsp) == 0x1000)
  }

  @Test func shiftCountsAreMaskedFrom286On() {
    let code: [UInt8] = [0xD2, 0xE0]  // shl al, cl with cl = 33
    let (c86, _) = makeCPUReal(.i8086, code)
    c86.state.setGPR(Reg.rax, 1)
    c86.state.setGPR(Reg.rcx, 33)
    #expect(c86.step() == nil)
    #expect(c86.state.gpr(Reg.rax) & 0xFF == 0)
    let (c286, _) = makeCPUReal(.i80286, code)
    c286.state.setGPR(Reg.rax, 1)
    c286.state.setGPR(Reg.rcx, 33)
    #expect(c286.step() == nil)
    #expect(c286.state.gpr(Reg.rax) & 0xFF == 2)
  }

  @Test func stiAndMovSSOpenAnInterruptShadow() {
    // cli; sti; nop; mov ss, ax; nop
    let (cpu, _) = makeCPUReal(.i80386, [0xFA, 0xFB, 0x90, 0x8E, 0xD0, 0x90])
    #expect(cpu.step() == nil && !cpu.interruptShadow)
    #expect(cpu.step() == nil && cpu.interruptShadow)
    #expect(cpu.step() == nil && !cpu.interruptShadow)
    #expect(cpu.step() == nil && cpu.interruptShadow)
    #expect(cpu.step() == nil && !cpu.interruptShadow)
  }
}

@Test func a20GateWrapsAtOneMiB() {
  // mov al, [0x10] with DS = 0xFFFF: physical 0x100000, or 0 with the gate closed.
  let (cpu, ram) = makeCPUReal(.host64, [0xA0, 0x10, 0x00, 0xA0, 0x10, 0x00])
  ram.load([0x11], at: 0)
  ram.load([0x22], at: 0x10_0000)
  cpu.state.setSegment(.ds, .real(0xFFFF))
  #expect(cpu.step() == nil)
  #expect(cpu.state.gpr(Reg.rax) & 0xFF == 0x22)
  cpu.a20Enabled = false
  #expect(cpu.step() == nil)
  #expect(cpu.state.gpr(Reg.rax) & 0xFF == 0x11)
}

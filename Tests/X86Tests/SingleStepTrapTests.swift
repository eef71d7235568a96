import Testing
import X86

/// RFLAGS.TF: a #DB trap (DR6.BS) after each instruction that started with TF set, not after
/// software interrupts (which clear TF), held back one instruction by MOV SS, and never skipped by
/// the interpreter's fast loop.
@Suite struct SingleStepTrapTests {
  static let dr6 = CPUStateLayout.debugRegisters + 6 * 8

  @Test func trapsAfterEachInstructionInTheFastLoopToo() {
    // A loop of fast forms: add eax, 1; jmp back.
    let (cpu, _) = makeCPU64([0x83, 0xC0, 0x01, 0xEB, 0xFB])
    _ = cpu.run(budget: 10)  // cached and warm
    cpu.state.rip = 0x1000
    cpu.state.setGPR(Reg.rax, 0)
    cpu.state.rflags |= Flags.tf
    #expect(cpu.run(budget: 10) == .exception(vector: 1, errorCode: nil))
    #expect(cpu.state.rip == 0x1003)
    #expect(cpu.state.gpr(Reg.rax) == 1)
    #expect(cpu.state[offset: Self.dr6] & DebugStatus.singleStep != 0)
  }

  @Test func popfThatSetsTFTrapsOnlyAfterTheNextInstruction() {
    // push 0x302 (IF, TF); popf; nop; nop
    let (cpu, _) = makeCPU64([0x68, 0x02, 0x03, 0x00, 0x00, 0x9D, 0x90, 0x90])
    #expect(cpu.step() == nil)
    #expect(cpu.step() == nil)  // POPF: TF was clear when it started
    #expect(cpu.state.rflags & Flags.tf != 0)
    #expect(cpu.step() == .exception(vector: 1, errorCode: nil))
    #expect(cpu.state.rip == 0x1007)
  }

  /// Real mode with IVT[1] and IVT[0x21] pointing at handlers at 0x200 and 0x300.
  func makeRealModeCPU(_ code: [UInt8]) -> (CPU, TestRAM) {
    let (cpu, ram) = makeCPUReal(.host64, code)
    ram.load([0x00, 0x02, 0x00, 0x00], at: 1 * 4)
    ram.load([0x00, 0x03, 0x00, 0x00], at: 0x21 * 4)
    ram.load([0xF4], at: 0x200)  // hlt
    ram.load([0x90, 0xCF], at: 0x300)  // nop; iret
    cpu.state.rflags |= Flags.tf
    return (cpu, ram)
  }

  @Test func movSSHoldsTheTrapBackOneInstruction() {
    // mov ss, ax; nop; nop
    let (cpu, ram) = makeRealModeCPU([0x8E, 0xD0, 0x90, 0x90])
    #expect(cpu.step() == nil)  // MOV SS: no trap at this boundary
    #expect(cpu.state.rip == 0x102)
    #expect(cpu.step() == nil)  // NOP retires, then #DB is delivered through the IVT
    #expect(cpu.state.rip == 0x200)
    #expect(cpu.state.rflags & Flags.tf == 0)
    let sp = Int(cpu.state.gpr(Reg.rsp) & 0xFFFF)
    #expect(ram.word(sp) == 0x103)  // return IP: the next instruction
    #expect(UInt64(ram.word(sp + 4)) & Flags.tf != 0)  // pushed FLAGS keep TF
  }

  @Test func softwareInterruptsClearTFWithoutATrap() {
    // int 0x21; nop   (the handler: nop; iret)
    let (cpu, _) = makeRealModeCPU([0xCD, 0x21, 0x90])
    #expect(cpu.step() == nil)  // INT: into the handler, TF cleared, no #DB
    #expect(cpu.state.rip == 0x300)
    #expect(cpu.step() == nil)  // handler's NOP: TF is clear
    #expect(cpu.step() == nil)  // IRET restores TF (no trap: TF was clear when IRET started)
    #expect(cpu.state.rip == 0x102)
    #expect(cpu.step() == nil)  // the NOP after INT traps: #DB delivered
    #expect(cpu.state.rip == 0x200)
  }
}

import Testing

@testable import X86

/// NMI delivery in the model: vector 2 whatever RFLAGS.IF says, NMIs blocked from the delivery
/// until the next IRET, held back for one instruction by a MOV SS shadow, and unblocked by RESET.
@Suite struct NMIDeliveryTests {
  @Test func anNMIIsBlockedUntilTheHandlersIRET() {
    let (cpu, ram) = makeCPUReal(.host64, [0x90, 0x90])
    ram.load([0x40, 0x00, 0x00, 0x20], at: 2 * 4)  // vector 2 -> 2000:0040
    ram.load([0x90, 0xCF], at: 0x20040)  // nop; iret
    #expect(cpu.state.rflags & Flags.if == 0)
    #expect(cpu.canAcceptNMI)  // IF=0 does not hold an NMI back
    #expect(cpu.deliverNMI() == nil)
    #expect(cpu.state.segment(.cs).selector == 0x2000 && cpu.state.rip == 0x40)
    #expect(ram.word(0x0FFA) == 0x0100)  // the return IP
    #expect(cpu.nmiBlocked && !cpu.canAcceptNMI)
    #expect(cpu.step() == nil)  // nop: still blocked
    #expect(!cpu.canAcceptNMI)
    #expect(cpu.step() == nil)  // iret
    #expect(cpu.state.segment(.cs).selector == 0 && cpu.state.rip == 0x100)
    #expect(!cpu.nmiBlocked && cpu.canAcceptNMI)
  }

  @Test func aMOVSSShadowHoldsAnNMIBackForOneInstruction() {
    let (cpu, _) = makeCPUReal(.host64, [0x8E, 0xD0, 0x90])  // mov ss, ax; nop
    #expect(cpu.step() == nil)
    #expect(!cpu.canAcceptNMI)
    #expect(cpu.step() == nil)
    #expect(cpu.canAcceptNMI)
  }

  @Test func resetUnblocksNMIs() {
    let (cpu, ram) = makeCPUReal(.host64, [0x90])
    ram.load([0x40, 0x00, 0x00, 0x20], at: 2 * 4)
    _ = cpu.deliverNMI()
    #expect(cpu.nmiBlocked)
    cpu.powerOnReset()
    #expect(!cpu.nmiBlocked)
  }
}

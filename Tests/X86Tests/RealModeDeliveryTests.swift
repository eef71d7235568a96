import Testing

@testable import X86

/// Real mode has one interrupt-delivery routine, the core's: the system layer refuses real-mode
/// events instead of delivering them its own way.
@Suite struct RealModeDeliveryTests {
  @Test func theSystemLayerLeavesRealModeToTheCore() {
    let s = CPUState()
    let m = SystemTestMemory()
    m.state = s
    s.cr0 = 0
    s.setSegment(.cs, .real(0x0700, code: true))
    s.setSegment(.ss, .real(0))
    s.setGPR(4, 0x1000)
    let outcome = InterruptDelivery.deliver(vector: 0x20, kind: .external, returnRIP: 0x10, state: s, memory: m)
    #expect(outcome == .unimplemented(.realModeDelivery))
    #expect(s.gpr(4) == 0x1000 && s.segment(.cs).selector == 0x0700)
  }

  /// INT 20h on each model goes through the IVT: FLAGS, CS, IP pushed, CS:IP from the vector.
  @Test(arguments: [CPUModel.i8086, .i80286, .i80386, .host64])
  func theCoreDeliversThroughTheIVT(_ model: CPUModel) {
    let (cpu, ram) = makeCPUReal(model, [0xCD, 0x20])
    ram.load([0x40, 0x00, 0x00, 0x20], at: 0x20 * 4)  // vector 20h -> 2000:0040
    cpu.state.rflags |= Flags.if
    #expect(cpu.step() == nil)
    #expect(cpu.state.segment(.cs).selector == 0x2000 && cpu.state.rip == 0x0040)
    #expect(cpu.state.gpr(Reg.rsp) == 0x0FFA && cpu.state.rflags & Flags.if == 0)
    #expect(ram.word(0x0FFA) == 0x0102 && ram.word(0x0FFC) == 0x0000)
    #expect(ram.word(0x0FFE) & UInt16(Flags.if) != 0)
  }
}

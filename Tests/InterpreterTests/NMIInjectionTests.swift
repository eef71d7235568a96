import TestHostSupport
import Testing
import VMM

@testable import Interpreter

/// The interpreter's NMI input: an NMI ends HLT with interrupts disabled, and one injected while
/// the handler runs waits for its IRET and is taken right at that instruction boundary.
@Suite(.requires(.guestToolchain)) struct NMIInjectionTests {
  @Test func anNMIWakesHLTAndASecondWaitsForTheHandlersIRET() throws {
    let m = try GuestMachine(
      code: """
          cli
          hlt
          out 0x11, al
          hlt
        .org 0x100
          out 0x10, al
          iretq
        """)
    try m.setGate(2, GuestMachine.codeBase + 0x100)
    #expect(try m.vcpu.run(budget: 100) == .shutdown(.haltWithInterruptsDisabled))
    try m.vcpu.injectNMI()
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: 0)))
    try m.vcpu.complete(.none)
    try m.vcpu.injectNMI()  // blocked: the handler has not returned
    // The IRET unblocks NMIs and the latched one is taken before `out 0x11`.
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: 0)))
    try m.vcpu.complete(.none)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x11, size: 1, isWrite: true, value: 0)))
  }
}

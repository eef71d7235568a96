import TestHostSupport
import Testing
import VMM

@testable import Interpreter

/// Random code in ring 0 and ring 3 of a paged long-mode machine: whatever it does to control
/// registers, descriptor tables, MSRs or the stack, the engine answers with exits, never a crash.
@Suite(.requires(.guestToolchain)) struct RandomGuestTests {
  @Test(arguments: [0, 3])
  func randomCodeOnlyEverExits(ring: Int) throws {
    let m = try GuestMachine(
      code: """
          hlt
        .org 0x100
          hlt
        """, userAccessible: true)
    for vector in 0..<256 { try m.setGate(UInt8(vector), GuestMachine.codeBase + 0x100, dpl: 3) }
    let initialSregs = try m.vcpu.specialRegisters()
    var rng = Xorshift64(seed: 0x9E37_79B9_7F4A_7C15 &+ UInt64(ring))
    var exits: [String: Int] = [:]
    let codeAddress = GuestMachine.codeBase + 0x1000
    for _ in 0..<1500 {
      let bytes = (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      try m.memory.write(codeAddress, bytes: bytes)
      m.vcpu.cpu.noteGuestMemoryWritten(physical: codeAddress, length: 32)
      var sregs = initialSregs
      if ring == 3 {
        sregs.cs = Segment(
          selector: GuestMachine.userCode, base: 0, limit: 0xFFFF_FFFF, type: 11, dpl: 3, l: true, g: true)
        sregs.ss = Segment(
          selector: GuestMachine.userData, base: 0, limit: 0xFFFF_FFFF, type: 3, dpl: 3, db: true, g: true)
      }
      try m.vcpu.setSpecialRegisters(sregs)
      var regs = Registers()
      for r in 0..<16 { regs[encoding: r] = rng.next() & (rng.next() & 1 == 0 ? 0xFFFF : ~0) }
      regs.rsp = GuestMachine.userStackTop
      regs.rip = codeAddress
      regs.rflags = 0x2
      try m.vcpu.setRegisters(regs)
      for _ in 0..<6 {
        let exit = try m.vcpu.run(budget: 4)
        exits[exit.reasonName, default: 0] += 1
        guard try m.vcpu.answerNeutrally(exit) else { break }
        if case .halt = exit { break }
      }
    }
    #expect(exits.values.reduce(0, +) > 0)
  }

  /// Ring 0 keeps running random code: every exception lands in a handler that jumps to more
  /// random code, HLT is woken by an interrupt, so system instructions see garbage state.
  @Test func randomRing0CodeRunsOnThroughFaults() throws {
    let m = try GuestMachine(
      code: """
          hlt
        .org 0x100
          mov rsp, 0x7F000
          mov eax, 0x102000
          jmp rax
        """, userAccessible: true)
    for vector in 0..<256 { try m.setGate(UInt8(vector), GuestMachine.codeBase + 0x100, dpl: 3) }
    let initialSregs = try m.vcpu.specialRegisters()
    var rng = Xorshift64(seed: 0xDEAD_BEEF_1234_5678)
    var exits: [String: Int] = [:]
    var retired: UInt64 = 0
    for _ in 0..<300 {
      let bytes = (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      try m.memory.write(0x10_2000, bytes: bytes)
      m.vcpu.cpu.noteGuestMemoryWritten(physical: 0x10_2000, length: 4096)
      try m.vcpu.setSpecialRegisters(initialSregs)
      var regs = Registers()
      for r in 0..<16 { regs[encoding: r] = rng.next() & (rng.next() & 1 == 0 ? 0xFFFF : ~0) }
      regs.rsp = 0x7F000
      regs.rip = 0x10_2000 + (rng.next() & 0xFFF)
      regs.rflags = 0x2
      try m.vcpu.setRegisters(regs)
      let before = m.vcpu.instructionsRetired ?? 0
      for _ in 0..<40 {
        let exit = try m.vcpu.run(budget: 50)
        exits[exit.reasonName, default: 0] += 1
        guard try m.vcpu.answerNeutrally(exit) else { break }
        if case .halt = exit {
          if m.vcpu.readyForInterruptInjection { try m.vcpu.injectInterrupt(vector: 0x40) } else { break }
        }
      }
      retired += (m.vcpu.instructionsRetired ?? 0) - before
    }
    #expect(retired > 10_000)
    #expect(exits["internal-error"] == nil)
  }
}

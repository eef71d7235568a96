import Testing
import VMM

@testable import Interpreter

/// Real-mode random code (host64 model): exceptions go through an IVT of random bytes, so the
/// guest wanders through mode switches and faults; the engine only ever exits.
@Suite struct RealModeRandomGuestTests {
  @Test func realModeRandomCodeOnlyEverExits() throws {
    var state: UInt64 = 0x5555_1234_9876_4321
    func next() -> UInt64 {
      state ^= state << 13
      state ^= state >> 7
      state ^= state << 17
      return state
    }
    let memory = try GuestMemory(ramSize: 4 << 20)
    let vcpu = InterpreterVirtualCPU(memory: memory, deterministic: true)
    var exits: [String: Int] = [:]
    var retired: UInt64 = 0
    for _ in 0..<40 {
      let bytes = (0..<0x20000).map { _ in UInt8(truncatingIfNeeded: next()) }
      try memory.write(0, bytes: bytes)
      vcpu.cpu.invalidateTLB()
      var sregs = SpecialRegisters()
      let real = Segment(selector: 0x1000, base: 0x10000, limit: 0xFFFF, type: 3)
      sregs.cs = Segment(selector: 0x1000, base: 0x10000, limit: 0xFFFF, type: 11)
      (sregs.ds, sregs.es, sregs.ss, sregs.fs, sregs.gs) = (real, real, real, real, real)
      sregs.idt = DescriptorTable(base: 0, limit: 0x3FF)
      try vcpu.setSpecialRegisters(sregs)
      var regs = Registers()
      for r in 0..<16 { regs[encoding: r] = next() & 0xFFFF }
      regs.rip = next() & 0xFFFF
      regs.rflags = 0x2
      try vcpu.setRegisters(regs)
      let before = vcpu.instructionsRetired ?? 0
      for _ in 0..<40 {
        let exit = try vcpu.run(budget: 100)
        exits[exit.reasonName, default: 0] += 1
        guard try vcpu.answerNeutrally(exit) else { break }
        if case .halt = exit {
          if vcpu.readyForInterruptInjection { try vcpu.injectInterrupt(vector: 8) } else { break }
        }
      }
      retired += (vcpu.instructionsRetired ?? 0) - before
    }
    #expect(retired > 1000)
    #expect(exits["internal-error"] == nil)
  }
}

@Suite struct FaultLoopTests {
  @Test func aGuestThatOnlyReFaultsStillEndsItsBudget() throws {
    let memory = try GuestMemory(ramSize: 1 << 20)
    try memory.write(0x500, bytes: [0x0F, 0x0B])  // UD2
    try memory.write(UInt32(0x500), at: 6 * 4)  // IVT[6] = 0000:0500: #UD re-raises #UD forever
    let vcpu = InterpreterVirtualCPU(memory: memory, deterministic: true)
    var sregs = SpecialRegisters()
    let real = Segment(selector: 0, base: 0, limit: 0xFFFF, type: 3)
    sregs.cs = Segment(selector: 0, base: 0, limit: 0xFFFF, type: 11)
    (sregs.ds, sregs.es, sregs.ss, sregs.fs, sregs.gs) = (real, real, real, real, real)
    sregs.idt = DescriptorTable(base: 0, limit: 0x3FF)
    try vcpu.setSpecialRegisters(sregs)
    var regs = Registers()
    regs.rip = 0x500
    regs.rsp = 0x8000
    try vcpu.setRegisters(regs)
    #expect(try vcpu.run(budget: 1000) == .budgetExhausted)
    #expect(vcpu.instructionsRetired == 0)
  }
}

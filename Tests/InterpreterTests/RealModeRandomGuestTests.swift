import TestHostSupport
import Testing
import VMM

@testable import Interpreter

/// Real-mode random code (host64 model): exceptions go through an IVT of random bytes, so the
/// guest wanders through mode switches and faults; the engine only ever exits.
@Suite struct RealModeRandomGuestTests {
  @Test func realModeRandomCodeOnlyEverExits() throws {
    var rng = Xorshift64(seed: 0x5555_1234_9876_4321)
    func next() -> UInt64 { rng.next() }
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

/// Random code run twice, with the interpreter's fast forms and without (`CPU.fastPathEnabled`):
/// in real mode and in flat 32-bit protected mode, through whatever faults, mode switches and
/// segment loads the bytes make, both runs must see the same exits, registers, retired counts
/// and memory.
@Suite struct RandomGuestPathParityTests {
  struct Run {
    var exits: [String] = []
    var registers: [UInt64] = []
    var retired: UInt64 = 0
    var memory: [UInt8] = []
    var fastRetired: UInt64 = 0
  }

  func run(protectedMode: Bool, seed: UInt64, fastPath: Bool) throws -> Run {
    var rng = Xorshift64(seed: seed)
    func next() -> UInt64 { rng.next() }
    let memory = try GuestMemory(ramSize: 1 << 20)
    let vcpu = InterpreterVirtualCPU(memory: memory, deterministic: true)
    vcpu.cpu.fastPathEnabled = fastPath
    var result = Run()
    for _ in 0..<12 {
      var bytes = (0..<0x20000).map { _ in UInt8(truncatingIfNeeded: next()) }
      if protectedMode {
        // A flat GDT (code 08h, data 10h) at 1000h and an IDT at 0 whose 256 interrupt gates
        // lead into more random code, so faults keep the guest running until it trashes them.
        func put(_ value: UInt64, at address: Int) {
          for k in 0..<8 { bytes[address + k] = UInt8(truncatingIfNeeded: value >> (8 * k)) }
        }
        put(0, at: 0x1000)
        put(0x00CF_9B00_0000_FFFF, at: 0x1008)
        put(0x00CF_9300_0000_FFFF, at: 0x1010)
        for vector in 0..<256 {
          let offset = UInt64(0x4000 + vector * 64)
          put((offset & 0xFFFF) | 0x08 << 16 | 0x8E00 << 32 | (offset >> 16) << 48, at: vector * 8)
        }
      }
      try memory.write(0, bytes: bytes)
      vcpu.cpu.invalidateTLB()
      var sregs = SpecialRegisters()
      if protectedMode {
        sregs.cr0 = 0x11
        let data = Segment(selector: 0x10, base: 0, limit: 0xFFFF_FFFF, type: 3, db: true, g: true)
        sregs.cs = Segment(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, type: 11, db: true, g: true)
        (sregs.ds, sregs.es, sregs.ss, sregs.fs, sregs.gs) = (data, data, data, data, data)
        sregs.gdt = DescriptorTable(base: 0x1000, limit: 0x17)
        sregs.idt = DescriptorTable(base: 0, limit: 0x7FF)
      } else {
        let real = Segment(selector: 0x1000, base: 0x10000, limit: 0xFFFF, type: 3)
        sregs.cs = Segment(selector: 0x1000, base: 0x10000, limit: 0xFFFF, type: 11)
        (sregs.ds, sregs.es, sregs.ss, sregs.fs, sregs.gs) = (real, real, real, real, real)
        sregs.idt = DescriptorTable(base: 0, limit: 0x3FF)
      }
      try vcpu.setSpecialRegisters(sregs)
      var regs = Registers()
      for r in 0..<8 { regs[encoding: r] = next() & (protectedMode ? 0x1_FFFF : 0xFFFF) }
      regs.rip = protectedMode ? 0x2000 + next() & 0xFFFF : next() & 0xFFFF
      regs.rflags = 0x2
      if protectedMode { regs.rsp = 0x1_F000 }
      try vcpu.setRegisters(regs)
      for _ in 0..<30 {
        let exit = try vcpu.run(budget: 200)
        result.exits.append(exit.reasonName)
        guard try vcpu.answerNeutrally(exit) else { break }
        if case .halt = exit { break }
      }
      let final = try vcpu.registers()
      result.registers += (0..<8).map { final[encoding: $0] } + [final.rip, final.rflags]
    }
    result.retired = vcpu.instructionsRetired ?? 0
    result.memory = try memory.read(0, count: 0x20000)
    result.fastRetired = vcpu.cpu.fastPathRetired
    return result
  }

  @Test(arguments: [false, true])
  func bothPathsAgree(protectedMode: Bool) throws {
    for seed: UInt64 in [0x1234_5678_9ABC_DEF1, 0x0F0F_1234_5555_AAAB, 0x7777_1111_2222_3333] {
      let fast = try run(protectedMode: protectedMode, seed: seed, fastPath: true)
      let general = try run(protectedMode: protectedMode, seed: seed, fastPath: false)
      #expect(fast.exits == general.exits, "seed \(seed)")
      #expect(fast.registers == general.registers, "seed \(seed)")
      #expect(fast.retired == general.retired, "seed \(seed)")
      #expect(fast.memory == general.memory, "seed \(seed)")
      #expect(fast.retired > 100, "seed \(seed): only \(fast.retired) instructions retired")
      #expect(fast.fastRetired > 0 && general.fastRetired == 0, "seed \(seed): \(fast.fastRetired) fast")
    }
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

import Testing
import X86

/// Random bytes must never crash the decoder, the disassembler or the CPU.
@Suite struct RobustnessTests {
  struct Xorshift {
    var state: UInt64
    mutating func next() -> UInt64 {
      state ^= state << 13
      state ^= state >> 7
      state ^= state << 17
      return state
    }
  }

  @Test(arguments: [CPUModel.host64, .i8086, .i80286, .i80386])
  func randomCodeNeverCrashes(model: CPUModel) {
    var rng = Xorshift(state: 0x1234_5678_9ABC_DEF1)
    let ram = TestRAM(size: 1 << 21)
    let cpu = CPU(model: model, memory: ram)
    var events = 0
    for round in 0..<1500 {
      var bytes = [UInt8](repeating: 0, count: 16)
      for i in 0..<16 { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
      for mode in [CodeMode.bits16, .bits32, .bits64] {
        _ = Decoder.decode(bytes, mode: mode, model: model)
        _ = Disassembler.disassemble(bytes, mode: mode, model: model)
      }
      ram.load(bytes, at: 0x1000)
      cpu.invalidateTLB()
      if model == .host64 && round % 2 == 0 {
        cpu.configureFlatUser64()
        cpu.state.rip = 0x1000
      } else {
        cpu.resetReal(cs: 0x100, ip: 0)
        cpu.reportExceptions = false
      }
      for r in 0..<16 { cpu.state.setGPR(r, r == 4 ? 0x8000 : rng.next() & (model == .host64 ? ~0 : 0xFFFF)) }
      for _ in 0..<4 {
        switch cpu.step() {
        case .portIn, .mmioRead, .msrRead:
          events += 1
          cpu.complete(value: 0)
        case .exception, .tripleFault, .halt:
          events += 1
        default: break
        }
      }
    }
    #expect(events > 0)
  }
}

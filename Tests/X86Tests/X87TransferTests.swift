import Testing

@testable import X86

/// The x87 compares, stores, constants, BCD and environment (`CPU+X87Transfer.swift`,
/// `CPU+X87Environment.swift`, `X87Conversions.swift`). Expected values were produced on the AMD
/// host by running the same instruction bytes natively (fninit; fldcw; fld tword; the
/// instruction; fnstsw) and reading FSW and memory.
@Suite struct X87TransferTests {
  func run(_ code: [UInt8], memory: [UInt8], steps: Int) -> (CPU, TestRAM) {
    let (cpu, ram) = makeCPU64([0xDB, 0xE3] + code)
    cpu.state.setGPR(3, 0x2000)
    ram.load(memory, at: 0x2000)
    for _ in 0..<(steps + 1) { #expect(cpu.step() == nil) }
    return (cpu, ram)
  }

  func tb(_ se: UInt16, _ sig: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: sig >> UInt64(8 * $0)) } + [UInt8(se & 0xFF), UInt8(se >> 8)]
  }

  @Test func fstpM32TininessAfterRoundingAndC1() {
    // fld tword [rbx]; fstp dword [rbx+16]. Host: 0x1.ffffffp-127 rounds to 2^-126 with PE and C1,
    // no UE (tininess after rounding); 0x1.fffffe00000001p-127 gives UE as well.
    var (cpu, ram) = run([0xDB, 0x2B, 0xD9, 0x5B, 0x10], memory: tb(0x3F80, 0xFFFF_FF80_0000_0000), steps: 2)
    #expect(cpu.x87StatusWord == 0x0220)
    #expect(ram.word(0x2012) == 0x0080 && ram.word(0x2010) == 0)
    (cpu, ram) = run([0xDB, 0x2B, 0xD9, 0x5B, 0x10], memory: tb(0x3F80, 0xFFFF_FF00_0000_0001), steps: 2)
    #expect(cpu.x87StatusWord == 0x0230)
  }

  @Test func unmaskedOverflowStoresNothingAndDoesNotPop() {
    // fldcw [rbx+32] (0x0377: OE unmasked); fld tword [rbx]; fstp dword [rbx+16]. Host FSW 0xB888.
    let mem = tb(0x3FFF + 200, 1 << 63) + [UInt8](repeating: 0, count: 22) + [0x77, 0x03]
    let (cpu, ram) = run([0xD9, 0x6B, 0x20, 0xDB, 0x2B, 0xD9, 0x5B, 0x10], memory: mem, steps: 3)
    #expect(cpu.x87StatusWord == 0xB888)
    #expect(ram.word(0x2010) == 0 && ram.word(0x2012) == 0)
  }

  @Test func fistInvalidAndRounding() {
    // 32767.75 to m16: host IE (no PE), integer indefinite 0x8000. 1.5 to m16: 2, PE and C1.
    var (cpu, ram) = run([0xDB, 0x2B, 0xDF, 0x5B, 0x10], memory: tb(0x3FFF + 14, 0xFFFF_8000_0000_0000), steps: 2)
    #expect(cpu.x87StatusWord == 0x0001 && ram.word(0x2010) == 0x8000)
    (cpu, ram) = run([0xDB, 0x2B, 0xDF, 0x5B, 0x10], memory: tb(0x3FFF, 0xC000_0000_0000_0000), steps: 2)
    #expect(cpu.x87StatusWord == 0x0220 && ram.word(0x2010) == 2)
  }

  @Test func comparesAndFXAM() {
    // fld tword [rbx+16] (QNaN); fld1; fcom st1: host FSW 0x7501 (unordered, IE); fucom: 0x7500.
    let qnan = [UInt8](repeating: 0, count: 16) + tb(0x7FFF, 0xC000_0000_0000_0000)
    var (cpu, _) = run([0xDB, 0x6B, 0x10, 0xD9, 0xE8, 0xD8, 0xD1], memory: qnan, steps: 3)
    #expect(cpu.x87StatusWord == 0x3501 | 0x4000)
    (cpu, _) = run([0xDB, 0x6B, 0x10, 0xD9, 0xE8, 0xDD, 0xE1], memory: qnan, steps: 3)
    #expect(cpu.x87StatusWord == 0x7500)
    // fcomi st1 with the QNaN: ZF PF CF set.
    (cpu, _) = run([0xDB, 0x6B, 0x10, 0xD9, 0xE8, 0xDB, 0xF1], memory: qnan, steps: 3)
    #expect(cpu.state.rflags & 0x8D5 == 0x45)
    // FXAM of a negative denormal: host FSW 0x7E00 (C3 C2 C1).
    (cpu, _) = run([0xDB, 0x2B, 0xD9, 0xE5], memory: tb(0x8000, 1), steps: 2)
    #expect(cpu.x87StatusWord == 0x7E00)
  }

  @Test func constantsFollowRoundingControl() {
    // fldcw [rbx]; fldpi. Host: nearest ...c235, down ...c234, up ...c235, zero ...c234.
    for (rc, low) in [(0, 0x35), (1, 0x34), (2, 0x35), (3, 0x34)] as [(UInt16, UInt64)] {
      let cw = 0x037F | rc << 10
      let (cpu, _) = run([0xD9, 0x2B, 0xD9, 0xEB], memory: [UInt8(cw & 0xFF), UInt8(cw >> 8)], steps: 2)
      #expect(
        cpu.x87Register(physical: 7) == X87Extended(significand: 0xC90F_DAA2_2168_C200 | low, signExponent: 0x4000))
      #expect(cpu.x87StatusWord == 0x3800)
    }
  }

  @Test func bcdLoadAndStore() {
    // fbld [rbx]; fbstp [rbx+16]: 87654321 round trips; the host loads digit nibbles A-F as 10-15.
    let bcd: [UInt8] = [0x21, 0x43, 0x65, 0x87, 0, 0, 0, 0, 0, 0x80]
    let (cpu, ram) = run([0xDF, 0x23, 0xDF, 0x73, 0x10], memory: bcd, steps: 2)
    #expect((0..<10).map { ram.byte(0x2010 + $0) } == bcd)
    #expect(cpu.x87StatusWord == 0)
    let (cpu2, _) = run([0xDF, 0x23], memory: [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0], steps: 1)
    #expect(cpu2.x87Register(physical: 7) == X87Extended(significand: 0xC800_0000_0000_0000, signExponent: 0x4005))
  }

  @Test func fnsaveStoresStackOrderAndReinitializes() {
    // fld1; fldz; fnsave [rbx]: host image: FCW 037F, FSW 0x3000, FTW 0x1FFF, ST0 = +0, ST1 = 1.0.
    let (cpu, ram) = run([0xD9, 0xE8, 0xD9, 0xEE, 0xDD, 0x33], memory: [], steps: 3)
    #expect(ram.word(0x2000) == 0x037F && ram.word(0x2004) == 0x3000 && ram.word(0x2008) == 0x1FFF)
    #expect(ram.word(0x2002) == 0xFFFF, "reserved halves 0xFFFF as on the host")
    #expect(ram.word(0x2012) == 0x01EE, "FOP of FLDZ")
    #expect((0..<10).map { ram.byte(0x201C + $0) } == tb(0, 0))
    #expect((0..<10).map { ram.byte(0x2026 + $0) } == tb(0x3FFF, 1 << 63))
    #expect(cpu.x87StatusWord == 0 && cpu.x87ControlWord == 0x037F)
  }
}

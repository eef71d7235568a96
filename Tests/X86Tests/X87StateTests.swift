import Testing

@testable import X86

/// The x87 foundations (`CPU+X87.swift`, `CPU+X87State.swift`, `X87Extended.swift`): FNINIT, the
/// register stack (TOP, tags, the physical slots and FXSAVE's stack-order image), exact loads
/// checked against the host's Float80 (the host x87), stack faults and the #NM/#MF rules.
@Suite struct X87StateTests {
  /// A CPU running `code` with RBX = 0x2000 (the memory operand of the `[rbx]` forms).
  func cpu(_ code: [UInt8]) -> (CPU, TestRAM) {
    let (cpu, ram) = makeCPU64(code)
    cpu.state.setGPR(3, 0x2000)
    return (cpu, ram)
  }

  func run(_ cpu: CPU, _ steps: Int) {
    for _ in 0..<steps { #expect(cpu.step() == nil) }
  }

  func fsw(_ cpu: CPU) -> UInt16 { UInt16(cpu.fxsaveImage()[2]) | UInt16(cpu.fxsaveImage()[3]) << 8 }

  /// The 10 bytes of a host Float80.
  func bytes(_ v: Float80) -> [UInt8] {
    var x = v
    return withUnsafeBytes(of: &x) { Array($0.prefix(10)) }
  }

  func tenBytes(_ ram: TestRAM, _ address: Int) -> [UInt8] { (0..<10).map { ram.byte(address + $0) } }

  func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> UInt64(8 * $0)) } }

  @Test func fninitSetsTheDefaultControlWordAndEmptiesEverything() {
    let (cpu, _) = cpu([0xDB, 0xE3])
    var image = [UInt8](repeating: 0xAA, count: 512)
    image[24] = 0x80
    image[25] = 0x1F
    image[26] = 0
    image[27] = 0
    cpu.loadFXSAVEImage(image)
    run(cpu, 1)
    let after = cpu.fxsaveImage()
    #expect(after[0] == 0x7F && after[1] == 0x03, "FCW 0x037F")
    #expect(after[2] == 0 && after[3] == 0 && after[4] == 0, "FSW 0, every register empty")
    #expect(after[6..<24].allSatisfy { $0 == 0 }, "FOP, FIP, FDP 0")
    #expect(after[24] == 0x80 && after[25] == 0x1F, "MXCSR untouched")
  }

  @Test func fldM32ThenFstpM80IsTheExactHostConversion() {
    let values: [Float] = [
      1.5, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, -.greatestFiniteMagnitude, 0x1.fffffep-127,
    ]
    for f in values {
      let (cpu, ram) = cpu([0xDB, 0xE3, 0xD9, 0x03, 0xDB, 0x7B, 0x10])  // fninit; fld dword [rbx]; fstp tword [rbx+16]
      ram.load(le(UInt64(f.bitPattern), 4), at: 0x2000)
      run(cpu, 3)
      #expect(tenBytes(ram, 0x2010) == bytes(Float80(f)), "\(f)")
      #expect(fsw(cpu) & 0x3F == (f.isSubnormal ? 0x02 : 0), "DE only for a denormal operand")
      #expect(cpu.fxsaveImage()[4] == 0 && fsw(cpu) & 0x3800 == 0, "the pop leaves the stack empty")
    }
  }

  @Test func fldM64ThenFstpM80IsTheExactHostConversion() {
    let values: [Double] = [
      0.1, -2.5e-300, .infinity, .leastNonzeroMagnitude, 0x1.ffffffffffffep-1023, .greatestFiniteMagnitude,
    ]
    for d in values {
      let (cpu, ram) = cpu([0xDB, 0xE3, 0xDD, 0x03, 0xDB, 0x7B, 0x10])
      ram.load(le(d.bitPattern, 8), at: 0x2000)
      run(cpu, 3)
      #expect(tenBytes(ram, 0x2010) == bytes(Float80(d)), "\(d)")
      #expect(fsw(cpu) & 0x3F == (d.isSubnormal ? 0x02 : 0))
    }
  }

  @Test func loadingASignalingNaNQuietsItAndRaisesInvalid() {
    // SDM: an SNaN operand is converted to a QNaN (quiet bit set) with IE; the payload is kept.
    let (cpu, ram) = cpu([0xDB, 0xE3, 0xD9, 0x03, 0xDB, 0x7B, 0x10])
    ram.load(le(0xFF80_0001, 4), at: 0x2000)
    run(cpu, 3)
    let significand: UInt64 = (1 << 63) | (1 << 62) | (1 << 40)
    #expect(tenBytes(ram, 0x2010) == le(significand, 8) + [0xFF, 0xFF])
    #expect(fsw(cpu) & 0xFF == 0x01, "IE, masked: no ES")
  }

  @Test func fldM80AndFstpM80CopyAnyEncodingUnchanged() {
    let patterns: [[UInt8]] = [
      [1, 2, 3, 4, 5, 6, 7, 0x80, 0xFF, 0x3F], [0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0],  // pseudo-denormal
      [9, 0, 0, 0, 0, 0, 0, 0x40, 0x34, 0x12],  // unnormal
    ]
    for p in patterns {
      let (cpu, ram) = cpu([0xDB, 0xE3, 0xDB, 0x2B, 0xDB, 0x7B, 0x10])
      ram.load(p, at: 0x2000)
      run(cpu, 3)
      #expect(tenBytes(ram, 0x2010) == p)
    }
  }

  @Test func fildLoadsIntegersExactly() {
    let cases: [(UInt8, UInt8, Int, Int64)] = [
      (0xDF, 0x03, 2, -32768), (0xDF, 0x03, 2, 12345), (0xDB, 0x03, 4, Int64(Int32.min)),
      (0xDF, 0x2B, 8, Int64.min), (0xDF, 0x2B, 8, Int64.max), (0xDF, 0x2B, 8, 0),
    ]
    for (op, modrm, size, v) in cases {
      let (cpu, ram) = cpu([0xDB, 0xE3, op, modrm, 0xDB, 0x7B, 0x10])
      ram.load(le(UInt64(bitPattern: v), size), at: 0x2000)
      run(cpu, 3)
      #expect(tenBytes(ram, 0x2010) == bytes(Float80(v)), "\(v)")
    }
  }

  @Test func pushesMoveTOPAndTheTagAndFXSAVEStoresStackOrder() {
    // fninit; fld1; fldz; fxsave [rbx]
    let (cpu, ram) = cpu([0xDB, 0xE3, 0xD9, 0xE8, 0xD9, 0xEE, 0x0F, 0xAE, 0x03])
    run(cpu, 4)
    #expect(ram.word(0x2002) == 0x3000, "TOP = 6")
    #expect(ram.byte(0x2004) == 0xC0, "R6 and R7 in use")
    #expect((0..<10).map { ram.byte(0x2020 + $0) } == bytes(0), "image slot 0 is ST0 = +0")
    #expect((0..<10).map { ram.byte(0x2030 + $0) } == bytes(1), "image slot 1 is ST1 = 1.0")
    #expect(cpu.x87Register(physical: 7) == X87Extended(significand: 1 << 63, signExponent: 0x3FFF), "1.0 is R7")
    #expect(cpu.x87FullTagWord == 0x1FFF, "R6 zero (01 in bits 13-12), R7 valid (00), R0-R5 empty (11)")
    // FXRSTOR of the same image puts every register back in its physical slot.
    let image = cpu.fxsaveImage()
    cpu.loadFXSAVEImage(image)
    #expect(cpu.fxsaveImage() == image)
    #expect(cpu.x87Register(physical: 6) == X87Extended.zero)
  }

  @Test func fxchFincstpFdecstpAndFfreeMoveOnlyWhatTheySay() {
    // fninit; fld1; fldz; fxch st1; fincstp; fdecstp; ffree st0
    let (cpu, _) = cpu([0xDB, 0xE3, 0xD9, 0xE8, 0xD9, 0xEE, 0xD9, 0xC9, 0xD9, 0xF7, 0xD9, 0xF6, 0xDD, 0xC0])
    run(cpu, 4)
    #expect(cpu.x87Register(physical: 6) == X87Extended.one && cpu.x87Register(physical: 7) == X87Extended.zero)
    run(cpu, 1)
    #expect(fsw(cpu) & 0x3800 == 0x3800, "FINCSTP: TOP 7, no tag change")
    #expect(cpu.fxsaveImage()[4] == 0xC0)
    run(cpu, 2)
    #expect(fsw(cpu) & 0x3800 == 0x3000 && cpu.fxsaveImage()[4] == 0x80, "FFREE empties R6 only")
  }

  @Test func stackOverflowSetsIESFAndC1AndPushesTheIndefinite() {
    var code: [UInt8] = [0xDB, 0xE3]
    for _ in 0..<9 { code += [0xD9, 0xE8] }  // fld1 x9
    code += [0xDB, 0x7B, 0x10]  // fstp tword [rbx+16]
    let (cpu, ram) = cpu(code)
    run(cpu, 9)
    #expect(fsw(cpu) == 0x0000, "eight pushes fit: TOP = 0")
    run(cpu, 1)
    #expect(fsw(cpu) == 0x3800 | 0x0200 | 0x0041, "TOP 7, C1, SF, IE; masked so no ES")
    run(cpu, 1)
    #expect(tenBytes(ram, 0x2010) == le(0xC000_0000_0000_0000, 8) + [0xFF, 0xFF], "the QNaN indefinite")
  }

  @Test func stackUnderflowClearsC1AndAnUnmaskedOneRaisesMFOnTheNextWaitingInstruction() {
    // fninit; fxch st1 (both empty, masked): both get the indefinite.
    var (cpu, ram) = cpu([0xDB, 0xE3, 0xD9, 0xC9])
    run(cpu, 2)
    #expect(fsw(cpu) == 0x0041, "IE and SF, C1 clear for underflow")
    #expect(cpu.fxsaveImage()[4] == 0x03)
    // Unmasked: fninit; fldcw [rbx] (IM clear); fxch st1; fnstsw ax; fnop
    (cpu, ram) = self.cpu([0xDB, 0xE3, 0xD9, 0x2B, 0xD9, 0xC9, 0xDF, 0xE0, 0xD9, 0xD0])
    ram.load([0x7E, 0x03], at: 0x2000)
    run(cpu, 3)
    #expect(fsw(cpu) == 0x80C1, "B, ES, SF, IE")
    #expect(cpu.fxsaveImage()[4] == 0, "an unmasked fault changes no register")
    run(cpu, 1)
    #expect(cpu.state.gpr(Reg.rax) & 0xFFFF == 0x80C1, "FNSTSW does not wait")
    #expect(cpu.step() == .exception(vector: 16, errorCode: nil), "FNOP waits: #MF")
  }

  @Test func cr0EMAndTSRaiseNMAndWaitChecksTSOnlyWithMP() {
    var (cpu, _) = cpu([0xD9, 0xE8])
    cpu.state.cr0 |= CR0.em
    #expect(cpu.step() == .exception(vector: 7, errorCode: nil))
    (cpu, _) = self.cpu([0xDB, 0xE3])
    cpu.state.cr0 |= CR0.ts
    #expect(cpu.step() == .exception(vector: 7, errorCode: nil), "even FNINIT")
    (cpu, _) = self.cpu([0x9B])
    cpu.state.cr0 = cpu.state.cr0 & ~CR0.mp | CR0.ts
    #expect(cpu.step() == nil, "WAIT ignores TS without MP")
    (cpu, _) = self.cpu([0x9B])
    cpu.state.cr0 |= CR0.ts | CR0.mp
    #expect(cpu.step() == .exception(vector: 7, errorCode: nil))
  }

  @Test func controlAndStatusStoresAndFNCLEX() {
    // fninit; fldcw [rbx]; fnstcw [rbx+2]; fxch st1 (masked underflow); fnclex; fnstsw [rbx+4]
    let (cpu, ram) = cpu([0xDB, 0xE3, 0xD9, 0x2B, 0xD9, 0x7B, 0x02, 0xD9, 0xC9, 0xDB, 0xE2, 0xDD, 0x7B, 0x04])
    ram.load([0x7F, 0x0C], at: 0x2000)  // RC = toward zero
    run(cpu, 6)
    #expect(ram.word(0x2002) == 0x0C7F)
    #expect(ram.word(0x2004) == 0, "FNCLEX clears IE and SF")
  }

  @Test func withCR0NEClearAPendingErrorFreezesTheNextWaitingInstructionUntilIGNNE() {
    // fldcw [0x2000] (ZE unmasked); fld1; fldz; fdivp st(1), st (1 / 0: ZE pending); fwait;
    // fnclex; fdivp again (a new error); fwait
    let code: [UInt8] = [
      0xD9, 0x2C, 0x25, 0x00, 0x20, 0x00, 0x00, 0xD9, 0xE8, 0xD9, 0xEE, 0xDE, 0xF9, 0x9B, 0xDB, 0xE2, 0xDE, 0xF9, 0x9B,
    ]
    for ne in [false, true] {
      let (cpu, ram) = makeCPU64(code)
      ram.load([0x7B, 0x03], at: 0x2000)
      cpu.state.cr0 = ne ? cpu.state.cr0 | CR0.ne : cpu.state.cr0 & ~CR0.ne
      cpu.reportExceptions = true
      for _ in 0..<4 { #expect(cpu.step() == nil) }
      let rip = cpu.state.rip
      if ne {
        #expect(cpu.step() == .exception(vector: 16, errorCode: nil), "#MF with CR0.NE set")
        continue
      }
      #expect(cpu.step() == .floatingPointError, "FERR#: frozen before FWAIT")
      #expect(cpu.state.rip == rip && cpu.step() == .floatingPointError, "still frozen")
      cpu.ignoreNumericErrors = true  // IGNNE#
      #expect(cpu.step() == nil && cpu.state.rip == rip + 1, "FWAIT ran")
      #expect(cpu.step() == nil && cpu.step() == nil, "FNCLEX, then a new error")
      #expect(cpu.step() == .floatingPointError, "IGNNE# fell with FERR#: frozen again")
    }
  }
}

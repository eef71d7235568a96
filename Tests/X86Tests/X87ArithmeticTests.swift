import Testing

@testable import X86

/// The x87 arithmetic (`CPU+X87Arithmetic.swift`, `X87SoftFloat.swift`) against the host's own
/// x87 through Swift's Float80 (round to nearest, 64-bit precision: the FNINIT default). The
/// differential test (`difftest --class x87`) covers every rounding and precision control, the
/// exceptions and the special operands.
@Suite struct X87ArithmeticTests {
  /// Runs `fninit; fld tbyte [rbx]; fld tbyte [rbx+16]; <op>; fstp tbyte [rbx+32]` with a at
  /// [rbx] and b at [rbx+16], and returns the stored ten bytes and FSW.
  func compute(_ a: Float80, _ b: Float80, _ op: [UInt8]) -> ([UInt8], UInt16) {
    let code: [UInt8] = [0xDB, 0xE3, 0xDB, 0x2B, 0xDB, 0x6B, 0x10] + op + [0xDB, 0x7B, 0x20]
    let (cpu, ram) = makeCPU64(code)
    cpu.state.setGPR(Reg.rbx, 0x2000)
    ram.load(bytes(a), at: 0x2000)
    ram.load(bytes(b), at: 0x2010)
    for _ in 0..<5 { #expect(cpu.step() == nil) }
    let image = cpu.fxsaveImage()
    return ((0..<10).map { ram.byte(0x2020 + $0) }, UInt16(image[2]) | UInt16(image[3]) << 8)
  }

  func bytes(_ v: Float80) -> [UInt8] {
    var x = v
    return withUnsafeBytes(of: &x) { Array($0.prefix(10)) }
  }

  @Test(arguments: [
    (Float80(1), Float80(3)), (Float80(2).squareRoot(), Float80(-7.25)), (Float80(1e300), Float80(-1e-300)),
    (Float80.leastNormalMagnitude, Float80(0.5)), (Float80(123456789), Float80(0.001)),
  ])
  func theFourOperationsRoundLikeTheHost(_ a: Float80, _ b: Float80) {
    // ST(0) = b, ST(1) = a: D8 C1 adds ST(1) to ST(0), D8 E1/E9 subtract, D8 C9 multiplies,
    // D8 F1/F9 divide (ST(0) op ST(1)).
    #expect(compute(a, b, [0xD8, 0xC1]).0 == bytes(b + a))
    #expect(compute(a, b, [0xD8, 0xC9]).0 == bytes(b * a))
    #expect(compute(a, b, [0xD8, 0xE1]).0 == bytes(b - a))
    #expect(compute(a, b, [0xD8, 0xE9]).0 == bytes(a - b))
    #expect(compute(a, b, [0xD8, 0xF1]).0 == bytes(b / a))
    #expect(compute(a, b, [0xD8, 0xF9]).0 == bytes(a / b))
    #expect(compute(a, b, [0xD9, 0xFA]).0 == bytes(b.magnitude.squareRoot()) || b < 0)
  }

  @Test func divisionByZeroAndInvalidOperationsWithTheDefaultMasks() {
    let (quotient, fsw) = compute(1, 0, [0xD8, 0xF9])  // 1 / 0: ZE, +infinity
    #expect(quotient == bytes(.infinity))
    #expect(fsw & 0x04 != 0 && fsw & 0x80 == 0, "ZE set, masked: no ES")
    let (root, rootFSW) = compute(0, -4, [0xD9, 0xFA])  // sqrt(-4): IE, the indefinite
    #expect(root == [0, 0, 0, 0, 0, 0, 0, 0xC0, 0xFF, 0xFF])
    #expect(rootFSW & 0x01 != 0)
    let (inexact, inexactFSW) = compute(1, 3, [0xD8, 0xF9])  // 1 / 3: PE
    #expect(inexact == bytes(Float80(1) / 3))
    #expect(inexactFSW & 0x20 != 0)
  }

  @Test func aTinyProductRoundsUpToTheSmallestStepOfItsPrecision() {
    // Found by the difftest (10,000,000 x87 instructions, one mismatch): under PC = 53 bits the
    // product of -1.53 * 2^-53 and a denormal is 0.63 of the smallest double-precision step
    // below the normal range (2^-16434); the host rounds it up to that step (C1, UE, PE, DE).
    let code: [UInt8] = [
      0xDB, 0xE3, 0xD9, 0x6B, 0x30, 0xDB, 0x2B, 0xDB, 0x6B, 0x10, 0xD8, 0xC9, 0xDD, 0x7B, 0x40, 0xDB, 0x7B, 0x20,
    ]
    let (cpu, ram) = makeCPU64(code)
    cpu.state.setGPR(Reg.rbx, 0x2000)
    ram.load([0x1D, 0xCD, 0x1E, 0xA4, 0xB2, 0x9C, 0x8F, 0x69, 0x00, 0x00], at: 0x2000)
    ram.load([0x9D, 0xCC, 0x67, 0xF6, 0x59, 0xBE, 0x63, 0xC4, 0xCA, 0xBF], at: 0x2010)
    ram.load([0x7F, 0x02], at: 0x2030)  // FCW 0x27F: all masked, PC = 53 bits, to nearest
    for _ in 0..<7 { #expect(cpu.step() == nil) }
    #expect((0..<10).map { ram.byte(0x2020 + $0) } == [0x00, 0x08, 0, 0, 0, 0, 0, 0, 0x00, 0x80])
    let fsw = UInt16(ram.byte(0x2040)) | UInt16(ram.byte(0x2041)) << 8
    #expect(fsw & 0x023F == 0x0232, "C1, PE, UE, DE")
  }
}

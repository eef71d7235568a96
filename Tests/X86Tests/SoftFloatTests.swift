import Testing

@testable import X86

/// `SoftFloat` on values whose correct results are known (IEEE 754), independent of the host:
/// the differential test checks it against the host CPU at large, these pin the rules down.
@Suite struct SoftFloatTests {
  let single = SoftFloat.Format(bits: 32)
  let double = SoftFloat.Format(bits: 64)

  func control(_ rounding: Int = 0, mxcsr: UInt32 = 0x1F80) -> SoftFloat.Control {
    SoftFloat.Control(mxcsr: (mxcsr & ~0x6000) | UInt32(rounding) << 13)
  }

  func f(_ x: Float) -> UInt64 { UInt64(x.bitPattern) }
  func d(_ x: Double) -> UInt64 { x.bitPattern }

  @Test func oneThirdRoundsByMode() {
    // 1/3 in binary32 is 0x3EAAAAAB to nearest and up, 0x3EAAAAAA down and toward zero.
    let expected: [UInt64] = [0x3EAA_AAAB, 0x3EAA_AAAA, 0x3EAA_AAAB, 0x3EAA_AAAA]
    for mode in 0..<4 {
      let o = SoftFloat.compute(.divide, f(1), f(3), single, control(mode))
      #expect(o.bits == expected[mode], "mode \(mode)")
      #expect(o.post == SoftFloat.Flag.precision)
    }
    let negative = SoftFloat.compute(.divide, f(-1), f(3), single, control(1))
    #expect(negative.bits == 0xBEAA_AAAB, "down rounds a negative quotient away from zero")
  }

  @Test func exactResultsRaiseNothing() {
    #expect(SoftFloat.compute(.add, d(1.5), d(2.25), double, control()).bits == d(3.75))
    #expect(SoftFloat.compute(.squareRoot, d(2.25), 0, double, control()).bits == d(1.5))
    #expect(SoftFloat.compute(.multiply, f(3), f(-0.5), single, control()).bits == f(-1.5))
    #expect(SoftFloat.compute(.add, d(1), d(-1), double, control()).bits == d(0))
    #expect(SoftFloat.compute(.add, d(1), d(-1), double, control(1)).bits == d(-0.0), "x - x is -0 rounding down")
    #expect(SoftFloat.compute(.squareRoot, d(2), 0, double, control()).bits == d(2.0.squareRoot()))
  }

  @Test func specialOperandsGiveTheDefaultNaNOrInfinity() {
    let inf = f(.infinity)
    let o = SoftFloat.compute(.subtract, inf, inf, single, control())
    #expect(o.bits == 0xFFC0_0000 && o.pre == SoftFloat.Flag.invalid)
    let z = SoftFloat.compute(.divide, f(1), f(-0.0), single, control())
    #expect(z.bits == f(-.infinity) && z.pre == SoftFloat.Flag.divideByZero)
    let snan: UInt64 = 0x7F80_0001
    let q = SoftFloat.compute(.add, f(1), snan, single, control())
    #expect(q.bits == 0x7FC0_0001 && q.pre == SoftFloat.Flag.invalid, "the NaN operand, quieted")
  }

  @Test func overflowAndUnderflowFollowTheModeAndMasks() {
    let big = d(.greatestFiniteMagnitude)
    #expect(SoftFloat.compute(.multiply, big, d(2), double, control(0)).bits == d(.infinity))
    #expect(SoftFloat.compute(.multiply, big, d(2), double, control(3)).bits == big, "toward zero: the largest")
    let tiny = f(.leastNormalMagnitude)
    let u = SoftFloat.compute(.multiply, tiny, f(0.75), single, control())
    #expect(u.bits == f(Float.leastNormalMagnitude * 0.75))
    #expect(u.post == 0, "a tiny but exact result is no underflow while masked")
    let flushed = SoftFloat.compute(.multiply, tiny, f(0.75), single, control(mxcsr: 0x9F80))  // FTZ
    #expect(flushed.bits == 0 && flushed.post == SoftFloat.Flag.underflow | SoftFloat.Flag.precision)
  }

  @Test func conversionsToIntegers() {
    #expect(SoftFloat.toInteger(d(2.5), from: double, bits: 32, truncate: false, control()).bits == 2)
    #expect(SoftFloat.toInteger(d(-2.5), from: double, bits: 32, truncate: true, control()).bits == 0xFFFF_FFFE)
    let out = SoftFloat.toInteger(d(3e9), from: double, bits: 32, truncate: false, control())
    #expect(out.bits == 0x8000_0000 && out.pre == SoftFloat.Flag.invalid)
    #expect(SoftFloat.fromInteger(16_777_217, to: single, control()).bits == f(16_777_216))
    #expect(SoftFloat.convert(d(0.1), from: double, to: single, control()).bits == f(0.1))
  }
}

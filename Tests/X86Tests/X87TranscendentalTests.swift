import Testing

@testable import X86

#if canImport(Glibc)
  import Glibc
#endif

/// The x87 transcendentals (`CPU+X87Transcendental.swift`, `X87Transcendentals.swift`) against
/// the host: its C library's long double functions (within an ulp: neither they nor any x87 is
/// correctly rounded in every case) and values the host's own FSIN & co. produced (bit for bit
/// where the result depends on the hardware's 66-bit pi). The `x87-transcendental` difftest class
/// covers the rounding controls, the exceptions and the special operands.
@Suite struct X87TranscendentalTests {
  /// Runs `fninit; fld tbyte [rbx] (y); fld tbyte [rbx+16] (x); <op>; fnstsw [rbx+64];
  /// fstp tbyte [rbx+32]; fstp tbyte [rbx+48]` and returns the two stored values and FSW.
  func run(x: X87Extended, y: X87Extended = .one, _ op: [UInt8]) -> (X87Extended, X87Extended, UInt16) {
    let code: [UInt8] =
      [0xDB, 0xE3, 0xDB, 0x2B, 0xDB, 0x6B, 0x10] + op + [0xDD, 0x7B, 0x40, 0xDB, 0x7B, 0x20, 0xDB, 0x7B, 0x30]
    let (cpu, ram) = makeCPU64(code)
    cpu.state.setGPR(Reg.rbx, 0x2000)
    ram.load(bytes(y), at: 0x2000)
    ram.load(bytes(x), at: 0x2010)
    for _ in 0..<7 { #expect(cpu.step() == nil) }
    func value(_ at: Int) -> X87Extended {
      let b = (0..<10).map { ram.byte(at + $0) }
      let significand = (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[$1]) << (8 * UInt64($1)) }
      return X87Extended(significand: significand, signExponent: UInt16(b[8]) | UInt16(b[9]) << 8)
    }
    return (value(0x2020), value(0x2030), UInt16(ram.byte(0x2040)) | UInt16(ram.byte(0x2041)) << 8)
  }

  func bytes(_ v: X87Extended) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: v.significand >> (8 * UInt64($0))) } + [
      UInt8(truncatingIfNeeded: v.signExponent), UInt8(v.signExponent >> 8),
    ]
  }

  func extended(_ v: Float80) -> X87Extended {
    X87Extended(
      significand: v.significandBitPattern | (v.isNormal ? 1 << 63 : 0),
      signExponent: UInt16(v.exponentBitPattern) | (v.sign == .minus ? 0x8000 : 0))
  }

  /// Whether `a` is `b` or its neighbour (same sign, finite), or `ulps` ulps away.
  func withinAnULP(_ a: X87Extended, _ b: Float80, ulps: UInt128 = 1) -> Bool {
    let e = extended(b)
    guard a.negative == e.negative else { return false }
    let ka = UInt128(a.exponent) << 63 | UInt128(a.significand & ~(1 << 63))
    let kb = UInt128(e.exponent) << 63 | UInt128(e.significand & ~(1 << 63))
    return (ka > kb ? ka - kb : kb - ka) <= ulps
  }

  #if canImport(Glibc)
    /// Small arguments: the C library reduces by the true pi, the x87 by a 66-bit one, which
    /// differ beyond an ulp as the argument grows (`reductionUsesTheHardwares66BitPi`).
    @Test(arguments: [0.5, 1, -2.5, 2, 1e-5, -0.785, 1.5] as [Float80])
    func sineCosineAndTangentWithinAnULPOfTheHostLibrary(_ x: Float80) {
      let (sine, _, sineFSW) = run(x: extended(x), [0xD9, 0xFE])
      #expect(withinAnULP(sine, sinl(x)), "fsin(\(x))")
      #expect(sineFSW & 0x20 != 0, "PE")
      #expect(withinAnULP(run(x: extended(x), [0xD9, 0xFF]).0, cosl(x)), "fcos(\(x))")
      let (one, tangent, _) = run(x: extended(x), [0xD9, 0xF2])
      #expect(one == .one)
      #expect(withinAnULP(tangent, tanl(x)), "fptan(\(x))")
      let (cosine, sine2, _) = run(x: extended(x), [0xD9, 0xFB])
      #expect(withinAnULP(cosine, cosl(x)) && withinAnULP(sine2, sinl(x)), "fsincos(\(x))")
    }

    @Test(arguments: [(0.75, 3), (-0.3, 0.5), (1e-9, -2), (0x1p-60, 1)] as [(Float80, Float80)])
    func exponentialAndLogarithmsWithinAnULPOfTheHostLibrary(_ x: Float80, _ y: Float80) {
      // expm1l(x ln 2) rounds x ln 2 first: an oracle good to two ulps.
      #expect(withinAnULP(run(x: extended(x), [0xD9, 0xF0]).0, expm1l(x * logl(2)), ulps: 2), "f2xm1(\(x))")
      let magnitude = abs(x) * 1000
      #expect(withinAnULP(run(x: extended(magnitude), y: extended(y), [0xD9, 0xF1]).0, y * log2l(magnitude)))
      if abs(x) < 0.29 {
        #expect(withinAnULP(run(x: extended(x), y: extended(y), [0xD9, 0xF9]).0, y * log1pl(x) / logl(2)))
      }
      #expect(withinAnULP(run(x: extended(x), y: extended(y), [0xD9, 0xF3]).0, atan2l(y, x)), "fpatan(\(y), \(x))")
      #expect(withinAnULP(run(x: extended(-x), y: extended(y), [0xD9, 0xF3]).0, atan2l(y, -x)))
    }
  #endif

  @Test func reductionUsesTheHardwares66BitPi() {
    // The host's FSIN, FCOS, FPTAN of 2^62, bit for bit: they depend on the reduction constant.
    let x = X87Extended(significand: 1 << 63, signExponent: 0x3FFF + 62)
    #expect(run(x: x, [0xD9, 0xFE]).0 == X87Extended(significand: 0xB506_A9DD_559C_F157, signExponent: 0xBFFE))
    #expect(run(x: x, [0xD9, 0xFF]).0 == X87Extended(significand: 0xB503_3C86_7715_345A, signExponent: 0xBFFE))
    #expect(run(x: x, [0xD9, 0xF2]).1 == X87Extended(significand: 0x8002_6C65_41A0_88B0, signExponent: 0x3FFF))
    // pi rounded up to 64 bits is 2^-64 above the 66-bit pi: the host's FSINCOS gives cos = -1,
    // sin = -2^-64 (with the true pi, sin would be about -1.0125 * 2^-64).
    let pi = X87Extended(significand: 0xC90F_DAA2_2168_C235, signExponent: 0x4000)
    let (cosine, sine, _) = run(x: pi, [0xD9, 0xFB])
    #expect(cosine == X87Extended.one.withSign(negative: true))
    #expect(sine == X87Extended(significand: 1 << 63, signExponent: 0xBFBF))
  }

  @Test func outOfRangeSetsC2AndLeavesTheOperand() {
    let x = X87Extended(significand: 1 << 63, signExponent: 0x3FFF + 63)
    let (value, below, fsw) = run(x: x, [0xD9, 0xFB])  // FSINCOS pushes nothing
    #expect(value == x && below == .one)
    #expect(fsw & 0x0400 != 0, "C2")
    #expect(fsw & 0x3F == 0, "no exception")
  }

  @Test func specialOperandsAsTheHostGivesThem() {
    // FYL2X of x = 8, y = 3 is exactly 9, with PE all the same (host); of x = 0: ZE, -infinity.
    let eight = X87Extended(significand: 1 << 63, signExponent: 0x4002)
    let three = X87Extended(significand: 0xC000_0000_0000_0000, signExponent: 0x4000)
    let (nine, _, fsw) = run(x: eight, y: three, [0xD9, 0xF1])
    #expect(nine == X87Extended(significand: 0x9000_0000_0000_0000, signExponent: 0x4002))
    #expect(fsw & 0x3F == 0x20)
    let (infinity, _, zeroFSW) = run(x: .zero, y: .one, [0xD9, 0xF1])
    #expect(infinity == X87Extended(significand: 1 << 63, signExponent: 0xFFFF))
    #expect(zeroFSW & 0x3F == 0x04)
    // F2XM1 outside [-1, 1] returns its operand with PE (host); of -infinity, -1.
    let minusFive = X87Extended(significand: 0xA000_0000_0000_0000, signExponent: 0xC001)
    #expect(run(x: minusFive, [0xD9, 0xF0]).0 == minusFive)
    let minusInfinity = X87Extended(significand: 1 << 63, signExponent: 0xFFFF)
    #expect(run(x: minusInfinity, [0xD9, 0xF0]).0 == X87Extended.one.withSign(negative: true))
    // FSIN of +0 is +0 without PE; FCOS of an infinity is invalid.
    let (zero, _, zeroSineFSW) = run(x: .zero, [0xD9, 0xFE])
    #expect(zero == .zero && zeroSineFSW & 0x3F == 0)
    let (invalid, _, invalidFSW) = run(x: minusInfinity, [0xD9, 0xFF])
    #expect(invalid == .indefinite && invalidFSW & 0x01 != 0)
  }
}

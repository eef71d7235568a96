/// The SSE4.1 instructions (66 0F 38 and 66 0F 3A; SDM vol. 2): blends (BLENDPS/PD, BLENDVPS/PD,
/// PBLENDVB, PBLENDW), dot products (DPPS, DPPD), EXTRACTPS, INSERTPS, MOVNTDQA, MPSADBW,
/// PACKUSDW, PCMPEQQ, PEXTRB/W/D/Q, PINSRB/D/Q, PHMINPOSUW, PMAXSB/SD/UW/UD, PMINSB/SD/UW/UD,
/// PMOVSX*/PMOVZX*, PMULDQ, PMULLD, PTEST and ROUNDPS/PD/SS/SD. The floating-point ones (DPPS,
/// DPPD, ROUND*) use `SoftFloat` and the SSE exception handling (`results`).
extension CPU {
  /// The SSE4.1 forms of map 0F 38 (66 prefix; the SSE checks are made here).
  func executeSSE41Map38(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    try requireSSE()
    let op = ins.opcode
    let r = sseReg(ins)
    switch op {
    case 0x20...0x25, 0x30...0x35:  // PMOVSX / PMOVZX: the low lanes widened
      let kind = Int(op & 0x0F)  // BW BD BQ WD WQ DQ
      let (from, to) = [(8, 16), (8, 32), (8, 64), (16, 32), (16, 64), (32, 64)][kind]
      let count = 128 / to
      let s = try sseSource(&ins, ea, size: count * from / 8)
      var out: XMMValue = (0, 0)
      for i in 0..<count {
        let v = SSELanes.lane(s, i, width: from)
        SSELanes.setLane(&out, i, width: to, op < 0x30 ? UInt64(bitPattern: CPU.signExtend(v, width: from)) : v)
      }
      setXMM(r, out)
    case 0x2A:  // MOVNTDQA xmm, m128
      guard !ins.modrmIsRegister else { throw Fault.invalidOpcode }
      setXMM(r, try sseSource(&ins, ea))
    case 0x17:  // PTEST: ZF when destination AND source is 0, CF when NOT destination AND source is 0
      let d = xmm(r)
      let s = try sseSource(&ins, ea)
      var f = state.rflags & ~(Flags.zf | Flags.cf | Flags.of | Flags.sf | Flags.af | Flags.pf)
      if d.0 & s.0 == 0 && d.1 & s.1 == 0 { f |= Flags.zf }
      if ~d.0 & s.0 == 0 && ~d.1 & s.1 == 0 { f |= Flags.cf }
      state.rflags = f
    default:
      let d = xmm(r)
      let s = try sseSource(&ins, ea)
      setXMM(r, try sse41Binary(op, d, s, mask: xmm(0)))
    }
  }

  /// The two-operand forms of map 0F 38; `mask` is XMM0 for the variable blends.
  private func sse41Binary(_ op: UInt8, _ d: XMMValue, _ s: XMMValue, mask: XMMValue) throws(Fault) -> XMMValue {
    var r: XMMValue = (0, 0)
    switch op {
    case 0x10, 0x14, 0x15:  // PBLENDVB, BLENDVPS, BLENDVPD: the source where XMM0's lane sign is set
      let width = op == 0x10 ? 8 : op == 0x14 ? 32 : 64
      for i in 0..<(128 / width) {
        let pick = (SSELanes.lane(mask, i, width: width) >> UInt64(width - 1)) & 1 != 0
        SSELanes.setLane(&r, i, width: width, SSELanes.lane(pick ? s : d, i, width: width))
      }
    case 0x28:  // PMULDQ: the even signed doublewords, full 64-bit products
      let a = Int64(Int32(truncatingIfNeeded: d.0)) &* Int64(Int32(truncatingIfNeeded: s.0))
      let b = Int64(Int32(truncatingIfNeeded: d.1)) &* Int64(Int32(truncatingIfNeeded: s.1))
      r = (UInt64(bitPattern: a), UInt64(bitPattern: b))
    case 0x29:  // PCMPEQQ
      r = (d.0 == s.0 ? ~0 : 0, d.1 == s.1 ? ~0 : 0)
    case 0x2B:  // PACKUSDW: signed doublewords to unsigned words with saturation
      for i in 0..<8 {
        let v = CPU.signExtend(SSELanes.lane(i < 4 ? d : s, i % 4, width: 32), width: 32)
        SSELanes.setLane(&r, i, width: 16, SSELanes.saturateUnsigned(v, bits: 16))
      }
    case 0x38...0x3F:  // PMINSB PMINSD PMINUW PMINUD PMAXSB PMAXSD PMAXUW PMAXUD
      let kind = Int(op & 3)
      let width = [8, 32, 16, 32][kind]
      let signed = kind < 2
      let maximum = op >= 0x3C
      for i in 0..<(128 / width) {
        let a = SSELanes.lane(d, i, width: width)
        let b = SSELanes.lane(s, i, width: width)
        let less =
          signed ? CPU.signExtend(a, width: width) < CPU.signExtend(b, width: width) : a < b
        SSELanes.setLane(&r, i, width: width, less != maximum ? a : b)
      }
    case 0x40:  // PMULLD: the low 32 bits of the products
      for i in 0..<4 {
        SSELanes.setLane(&r, i, width: 32, SSELanes.lane(d, i, width: 32) &* SSELanes.lane(s, i, width: 32))
      }
    case 0x41:  // PHMINPOSUW: the smallest unsigned word and its (lowest) index; the rest zero
      var best = SSELanes.lane(s, 0, width: 16)
      var index: UInt64 = 0
      for i in 1..<8 where SSELanes.lane(s, i, width: 16) < best {
        best = SSELanes.lane(s, i, width: 16)
        index = UInt64(i)
      }
      r = (best | index << 16, 0)
    default:
      throw Fault.invalidOpcode
    }
    return r
  }

  /// The SSE4.1 forms of map 0F 3A (66 prefix, imm8; the SSE checks are made here).
  func executeSSE41Map3A(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    try requireSSE()
    let op = ins.opcode
    let r = sseReg(ins)
    let imm = ins.immediate & 0xFF
    let wide = ins.prefixes.contains(.rexW) && state.codeMode == .bits64
    switch op {
    case 0x08, 0x09, 0x0A, 0x0B:  // ROUNDPS, ROUNDPD, ROUNDSS, ROUNDSD
      let f = SoftFloat.Format(bits: op & 1 == 0 ? 32 : 64)
      let scalar = op >= 0x0A
      let count = scalar ? 1 : 128 / f.bits
      let s = try sseSource(&ins, ea, size: scalar ? f.bits / 8 : 16)
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let mode = imm & 4 != 0 ? control.rounding : Int(imm & 3)
      let outcomes = lanes(s, f, count: count).map {
        SoftFloat.roundToIntegral($0, f, mode: mode, suppressPrecision: imm & 8 != 0, control)
      }
      setXMM(r, withLanes(scalar ? xmm(r) : (0, 0), try results(outcomes), f))
    case 0x0C, 0x0D, 0x0E:  // BLENDPS, BLENDPD, PBLENDW: the source's lanes where imm8 has a bit
      let width = op == 0x0C ? 32 : op == 0x0D ? 64 : 16
      var out = xmm(r)
      let s = try sseSource(&ins, ea)
      for i in 0..<(128 / width) where (imm >> UInt64(i)) & 1 != 0 {
        SSELanes.setLane(&out, i, width: width, SSELanes.lane(s, i, width: width))
      }
      setXMM(r, out)
    case 0x14, 0x15, 0x16, 0x17:  // PEXTRB, PEXTRW, PEXTRD/Q, EXTRACTPS r/m, xmm, imm8
      let width = op == 0x14 ? 8 : op == 0x15 ? 16 : op == 0x16 && wide ? 64 : 32
      let v = SSELanes.lane(xmm(r), Int(imm) & (128 / width - 1), width: width)
      if ins.modrmIsRegister {
        setReg(sseRM(ins), 8, v)  // zero-extended
      } else {
        try write(seg: Int(ins.segment), offset: ea, size: width / 8, value: v)
      }
    case 0x20, 0x22:  // PINSRB, PINSRD/Q xmm, r/m, imm8
      let width = op == 0x20 ? 8 : wide ? 64 : 32
      let v =
        ins.modrmIsRegister
        ? reg(sseRM(ins), width / 8) : try read(seg: Int(ins.segment), offset: ea, size: width / 8)
      var out = xmm(r)
      SSELanes.setLane(&out, Int(imm) & (128 / width - 1), width: width, v)
      setXMM(r, out)
    case 0x21:  // INSERTPS xmm, xmm/m32, imm8: one single placed, then lanes zeroed by imm8[3:0]
      let v =
        ins.modrmIsRegister
        ? SSELanes.lane(xmm(sseRM(ins)), Int(imm >> 6), width: 32)
        : try read(seg: Int(ins.segment), offset: ea, size: 4)
      var out = xmm(r)
      SSELanes.setLane(&out, Int((imm >> 4) & 3), width: 32, v)
      for i in 0..<4 where (imm >> UInt64(i)) & 1 != 0 { SSELanes.setLane(&out, i, width: 32, 0) }
      setXMM(r, out)
    case 0x40, 0x41:  // DPPS, DPPD
      let s = try sseSource(&ins, ea)
      setXMM(r, try dotProduct(xmm(r), s, imm: imm, f: SoftFloat.Format(bits: op == 0x40 ? 32 : 64)))
    case 0x42:  // MPSADBW: eight sums of absolute differences of 4-byte blocks
      let d = xmm(r)
      let s = try sseSource(&ins, ea)
      let first = Int((imm >> 2) & 1) * 4
      let second = Int(imm & 3) * 4
      var out: XMMValue = (0, 0)
      for i in 0..<8 {
        var sum: UInt64 = 0
        for k in 0..<4 {
          let a = SSELanes.lane(d, first + i + k, width: 8)
          let b = SSELanes.lane(s, second + k, width: 8)
          sum += a > b ? a - b : b - a
        }
        SSELanes.setLane(&out, i, width: 16, sum)
      }
      setXMM(r, out)
    default:
      throw Fault.invalidOpcode
    }
  }

  /// DPPS/DPPD: the products of the lanes imm8[7:4] selects (others +0), summed pairwise (each
  /// step rounded), the sum written to the lanes imm8[3:0] selects (others +0). Each step's flags
  /// are recorded before the next step runs, and an unmasked exception stops the instruction at
  /// the step that raised it (as the host does: an unmasked underflow of a product leaves the
  /// additions' precision flag unset).
  private func dotProduct(_ d: XMMValue, _ s: XMMValue, imm: UInt64, f: SoftFloat.Format) throws(Fault) -> XMMValue {
    let count = 128 / f.bits
    let control = SoftFloat.Control(mxcsr: mxcsr)
    let a = lanes(d, f, count: count)
    let b = lanes(s, f, count: count)
    var multiplies: [SoftFloat.Outcome] = []
    var products: [UInt64] = []
    for i in 0..<count {
      if (imm >> UInt64(4 + i)) & 1 != 0 {
        let o = SoftFloat.compute(.multiply, a[i], b[i], f, control)
        multiplies.append(o)
        products.append(o.bits)
      } else {
        products.append(0)
      }
    }
    _ = try results(multiplies)
    let sum: UInt64
    if count == 4 {
      let pairs = [
        SoftFloat.compute(.add, products[0], products[1], f, control),
        SoftFloat.compute(.add, products[2], products[3], f, control),
      ]
      let partial = try results(pairs)
      sum = try results([SoftFloat.compute(.add, partial[0], partial[1], f, control)])[0]
    } else {
      sum = try results([SoftFloat.compute(.add, products[0], products[1], f, control)])[0]
    }
    var out: XMMValue = (0, 0)
    for i in 0..<count where (imm >> UInt64(i)) & 1 != 0 { SSELanes.setLane(&out, i, width: f.bits, sum) }
    return out
  }
}

extension SoftFloat {
  /// `v` rounded to an integral value of its format (ROUNDPS & co.): `mode` is a rounding
  /// control (0 nearest even, 1 down, 2 up, 3 toward zero). A signaling NaN is quieted and
  /// invalid; a quiet NaN, an infinity or a zero is returned as it is; DAZ reads a denormal as a
  /// zero; an inexact result sets the precision flag unless `suppressPrecision`. No denormal flag
  /// (the SDM lists only invalid and precision).
  static func roundToIntegral(
    _ v0: UInt64, _ f: Format, mode: Int, suppressPrecision: Bool, _ control: Control
  ) -> Outcome {
    var v = v0
    if f.isNaN(v) { return Outcome(bits: v | f.quietBit, pre: f.isSignalingNaN(v) ? Flag.invalid : 0) }
    if control.denormalsAreZero { v = f.flushed(v) }
    if f.isInfinity(v) || f.isZero(v) { return Outcome(bits: v) }
    let (m, e) = f.unpack(v)
    if e >= 0 { return Outcome(bits: v) }  // already integral
    let negative = f.sign(v)
    let shift = -e
    let kept = shift >= 64 ? 0 : m >> UInt64(shift)
    let remainder = shift >= 64 ? m : m & ((1 << UInt64(shift)) - 1)
    let half: UInt64 = shift > 64 ? 0 : 1 << UInt64(shift - 1)
    let up: Bool
    switch mode {
    case 0:
      up = shift <= 64 && (remainder > half || (remainder == half && kept & 1 != 0))
    case 1: up = remainder != 0 && negative
    case 2: up = remainder != 0 && !negative
    default: up = false
    }
    let magnitude = up ? kept + 1 : kept
    let precision: UInt32 = remainder != 0 && !suppressPrecision ? Flag.precision : 0
    let signBits: UInt64 = negative ? f.signBit : 0
    if magnitude == 0 { return Outcome(bits: signBits, post: precision) }
    // An integer below 2^precision is exact in the format.
    let (bits, _) = round(negative, UInt128(magnitude), 0, false, f, control)
    return Outcome(bits: bits, post: precision)
  }
}

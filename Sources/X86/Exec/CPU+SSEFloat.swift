/// The floating-point SSE/SSE2 instructions: compares (CMPPS/PD/SS/SD, COMISS/SD, UCOMISS/SD),
/// minimum and maximum (MINPS..MAXSD), and the arithmetic (ADD, SUB, MUL, DIV, SQRT in PS, PD, SS
/// and SD forms, through `SoftFloat`), with MXCSR's rounding control, DAZ and FTZ, its exception
/// flags and masks, and the SIMD floating-point exception (SDM vol. 1, "SSE and SSE2
/// Exceptions"; vol. 2 for each instruction).
///
/// Exceptions these can raise are the pre-computation ones: invalid operation (a signaling NaN
/// operand; any NaN for the signaling compare predicates, COMISS/COMISD and MIN/MAX) and denormal
/// operand (unless DAZ, which reads denormal operands as zeros of their sign). Every lane is
/// checked and the flags found are ORed into MXCSR; when one of them is unmasked the destination
/// is left alone and the instruction raises #XM, or #UD when CR4.OSXMMEXCPT is clear.
extension CPU {
  /// The low `count` lanes of `v` in format `f` (4 singles or 2 doubles at most).
  func lanes(_ v: XMMValue, _ f: SoftFloat.Format, count: Int) -> [UInt64] {
    (0..<count).map { SSELanes.lane(v, $0, width: f.bits) }
  }

  /// `d` with its low `values.count` lanes of format `f` replaced.
  func withLanes(_ d: XMMValue, _ values: [UInt64], _ f: SoftFloat.Format) -> XMMValue {
    var r = d
    for (i, v) in values.enumerated() { SSELanes.setLane(&r, i, width: f.bits, v) }
    return r
  }

  /// ADD, SUB, MUL, DIV and SQRT in their PS, PD, SS and SD forms (0F 58, 5C, 59, 5E, 51), computed
  /// by `SoftFloat` under MXCSR. Pre-computation exceptions of every lane are recorded first; if
  /// one is unmasked nothing is computed further. Then the post-computation ones (overflow,
  /// underflow, precision); if one of those is unmasked the destination keeps its value.
  private func executeSSEArithmetic(_ ins: inout DecodedInstruction, ea: UInt64, column: Int) throws(Fault) {
    try requireSSE()
    let f = SoftFloat.Format(bits: column == 1 || column == 3 ? 64 : 32)
    let scalar = column >= 2
    let count = scalar ? 1 : 128 / f.bits
    let r = sseReg(ins)
    let d = xmm(r)
    let s = try sseSource(&ins, ea, size: scalar ? f.bits / 8 : 16)
    let da = lanes(d, f, count: count)
    let sa = lanes(s, f, count: count)
    let operation: SoftFloat.Operation
    switch ins.opcode {
    case 0x58: operation = .add
    case 0x5C: operation = .subtract
    case 0x59: operation = .multiply
    case 0x5E: operation = .divide
    default: operation = .squareRoot
    }
    let format = f
    let control = SoftFloat.Control(mxcsr: mxcsr)
    // SQRT takes its one operand from the source.
    let outcomes = (0..<count).map { i in
      operation == .squareRoot
        ? SoftFloat.compute(.squareRoot, sa[i], 0, format, control)
        : SoftFloat.compute(operation, da[i], sa[i], format, control)
    }
    setXMM(r, withLanes(d, try results(outcomes), f))
  }

  /// The lanes' results once their flags are in MXCSR: the pre-computation flags of every lane
  /// first, then the post-computation ones; an unmasked one raises the exception before any
  /// result is used.
  func results(_ outcomes: [SoftFloat.Outcome]) throws(Fault) -> [UInt64] {
    try signalSIMDExceptions(outcomes.reduce(0) { $0 | $1.pre })
    try signalSIMDExceptions(outcomes.reduce(0) { $0 | $1.post })
    return outcomes.map(\.bits)
  }

  /// The conversions between single, double and signed integers (SSE/SSE2, XMM forms only):
  /// CVTSI2SS/SD, CVT(T)SS2SI/SD2SI, CVTSS2SD, CVTSD2SS, CVTPS2PD, CVTPD2PS, CVTDQ2PS, CVT(T)PS2DQ,
  /// CVTDQ2PD, CVT(T)PD2DQ. False for anything else (the MMX forms CVTPI2PS & co. included).
  private func executeSSEConversion(_ ins: inout DecodedInstruction, ea: UInt64, column: Int) throws(Fault) -> Bool {
    let single = SoftFloat.Format(bits: 32)
    let double = SoftFloat.Format(bits: 64)
    let r = sseReg(ins)
    let wide = ins.prefixes.contains(.rexW) && state.codeMode == .bits64
    switch (ins.opcode, column) {
    case (0x2A, 2), (0x2A, 3):  // CVTSI2SS, CVTSI2SD xmm, r/m32|64
      try requireSSE()
      let size = wide ? 8 : 4
      let raw = ins.modrmIsRegister ? reg(sseRM(ins), size) : try read(seg: Int(ins.segment), offset: ea, size: size)
      let value = wide ? Int64(bitPattern: raw) : Int64(Int32(truncatingIfNeeded: raw))
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let format = column == 2 ? single : double
      let bits = try results([SoftFloat.fromInteger(value, to: format, control)])
      setXMM(r, withLanes(xmm(r), bits, column == 2 ? single : double))
    case (0x2C, 2), (0x2D, 2), (0x2C, 3), (0x2D, 3):  // CVT(T)SS2SI, CVT(T)SD2SI r32|64, xmm/m32|m64
      try requireSSE()
      let format = column == 2 ? single : double
      let source = try sseSource(&ins, ea, size: format.bits / 8)
      let lane = column == 2 ? source.0 & 0xFFFF_FFFF : source.0
      let bits = try results([
        SoftFloat.toInteger(
          lane, from: format, bits: wide ? 64 : 32, truncate: ins.opcode == 0x2C, SoftFloat.Control(mxcsr: mxcsr))
      ])
      setReg(r, wide ? 8 : 4, bits[0])
    case (0x5A, 2), (0x5A, 3):  // CVTSS2SD, CVTSD2SS xmm, xmm/m32|m64
      try requireSSE()
      let (from, to) = column == 2 ? (single, double) : (double, single)
      let source = try sseSource(&ins, ea, size: from.bits / 8)
      let lane = column == 2 ? source.0 & 0xFFFF_FFFF : source.0
      let bits = try results([SoftFloat.convert(lane, from: from, to: to, SoftFloat.Control(mxcsr: mxcsr))])
      setXMM(r, withLanes(xmm(r), bits, column == 2 ? double : single))
    case (0x5A, 0):  // CVTPS2PD xmm, xmm/m64
      try requireSSE()
      let source = try sseSource(&ins, ea, size: 8)
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let bits = try results(
        lanes(source, single, count: 2).map { SoftFloat.convert($0, from: single, to: double, control) })
      setXMM(r, (bits[0], bits[1]))
    case (0x5A, 1):  // CVTPD2PS xmm, xmm/m128: two singles, the upper half zeroed
      try requireSSE()
      let source = try sseSource(&ins, ea)
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let bits = try results([source.0, source.1].map { SoftFloat.convert($0, from: double, to: single, control) })
      setXMM(r, (bits[0] | bits[1] << 32, 0))
    case (0x5B, 0):  // CVTDQ2PS xmm, xmm/m128
      try requireSSE()
      let source = try sseSource(&ins, ea)
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let bits = try results(
        lanes(source, single, count: 4).map {
          SoftFloat.fromInteger(Int64(Int32(truncatingIfNeeded: $0)), to: single, control)
        })
      setXMM(r, withLanes((0, 0), bits, single))
    case (0x5B, 1), (0x5B, 2):  // CVTPS2DQ, CVTTPS2DQ xmm, xmm/m128
      try requireSSE()
      let source = try sseSource(&ins, ea)
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let bits = try results(
        lanes(source, single, count: 4).map {
          SoftFloat.toInteger($0, from: single, bits: 32, truncate: column == 2, control)
        })
      setXMM(r, withLanes((0, 0), bits, single))
    case (0xE6, 2):  // CVTDQ2PD xmm, xmm/m64
      try requireSSE()
      let source = try sseSource(&ins, ea, size: 8)
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let bits = try results(
        lanes(source, single, count: 2).map {
          SoftFloat.fromInteger(Int64(Int32(truncatingIfNeeded: $0)), to: double, control)
        })
      setXMM(r, (bits[0], bits[1]))
    case (0xE6, 1), (0xE6, 3):  // CVTTPD2DQ, CVTPD2DQ xmm, xmm/m128: the upper half zeroed
      try requireSSE()
      let source = try sseSource(&ins, ea)
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let bits = try results(
        [source.0, source.1].map { SoftFloat.toInteger($0, from: double, bits: 32, truncate: column == 1, control) })
      setXMM(r, (bits[0] | bits[1] << 32, 0))
    default:
      return false
    }
    return true
  }

  /// Records `flags` in MXCSR and raises the SIMD floating-point exception when one is unmasked.
  func signalSIMDExceptions(_ flags: UInt32) throws(Fault) {
    guard flags != 0 else { return }
    let m = mxcsr
    mxcsr = m | flags
    if flags & ~(m >> 7) & 0x3F != 0 {
      if state.cr4 & CR4.osxmmexcpt == 0 { throw Fault.invalidOpcode }
      throw Fault.exception(vector: ExceptionVector.simdFloatingPoint, errorCode: nil)
    }
  }

  /// The operands of one lane after DAZ, and the exceptions reading them raises (`anyNaNInvalid`:
  /// quiet NaNs are invalid too).
  private func readOperands(
    _ a: UInt64, _ b: UInt64, _ f: SoftFloat.Format, anyNaNInvalid: Bool, flags: inout UInt32
  ) -> (UInt64, UInt64) {
    if SoftFloat.Control(mxcsr: mxcsr).denormalsAreZero {
      if f.isSignalingNaN(a) || f.isSignalingNaN(b) || (anyNaNInvalid && (f.isNaN(a) || f.isNaN(b))) {
        flags |= SoftFloat.Flag.invalid
      }
      return (f.flushed(a), f.flushed(b))
    }
    if f.isSignalingNaN(a) || f.isSignalingNaN(b) || (anyNaNInvalid && (f.isNaN(a) || f.isNaN(b))) {
      flags |= SoftFloat.Flag.invalid
    } else if f.isNaN(a) || f.isNaN(b) {
      // A quiet NaN operand that is not invalid here still hides the other operand's denormal.
    } else if f.isDenormal(a) || f.isDenormal(b) {
      flags |= SoftFloat.Flag.denormal
    }
    return (a, b)
  }

  /// CMPPS/CMPPD/CMPSS/CMPSD (0F C2 ib), MINxx (0F 5D), MAXxx (0F 5F), COMISS/COMISD (0F 2F),
  /// UCOMISS/UCOMISD (0F 2E); false when `ins` is none of them.
  func executeSSEFloat(_ ins: inout DecodedInstruction, ea: UInt64, column: Int) throws(Fault) -> Bool {
    let op = ins.opcode
    switch op {
    case 0x51, 0x58, 0x59, 0x5C, 0x5E:
      try executeSSEArithmetic(&ins, ea: ea, column: column)
      return true
    case 0xC2, 0x5D, 0x5F, 0x2E, 0x2F: break
    default: return try executeSSEConversion(&ins, ea: ea, column: column)
    }
    if (op == 0x2E || op == 0x2F) && column > 1 { return false }
    try requireSSE()
    let f = SoftFloat.Format(bits: column == 1 || column == 3 ? 64 : 32)
    let scalar = column >= 2 || op == 0x2E || op == 0x2F
    let count = scalar ? 1 : 128 / f.bits
    let r = sseReg(ins)
    let d = xmm(r)
    let s = try sseSource(&ins, ea, size: scalar ? f.bits / 8 : 16)
    let da = lanes(d, f, count: count)
    let sa = lanes(s, f, count: count)
    var flags: UInt32 = 0
    switch op {
    case 0x2E, 0x2F:
      let (a, b) = readOperands(da[0], sa[0], f, anyNaNInvalid: op == 0x2F, flags: &flags)
      try signalSIMDExceptions(flags)
      let x = f.value(a)
      let y = f.value(b)
      let result: UInt64 =
        x.isNaN || y.isNaN ? Flags.zf | Flags.pf | Flags.cf : x < y ? Flags.cf : x == y ? Flags.zf : 0
      state.rflags = (state.rflags & ~(Flags.zf | Flags.pf | Flags.cf | Flags.of | Flags.sf | Flags.af)) | result
    case 0xC2:
      let predicate = Int(ins.immediate & 7)
      let signaling = predicate & 3 == 1 || predicate & 3 == 2  // LT, LE, NLT, NLE
      var out: [UInt64] = []
      for i in 0..<count {
        let (a, b) = readOperands(da[i], sa[i], f, anyNaNInvalid: signaling, flags: &flags)
        let x = f.value(a)
        let y = f.value(b)
        let unordered = x.isNaN || y.isNaN
        let holds: Bool
        switch predicate {
        case 0: holds = x == y
        case 1: holds = x < y
        case 2: holds = x <= y
        case 3: holds = unordered
        case 4: holds = !(x == y)
        case 5: holds = !(x < y)
        case 6: holds = !(x <= y)
        default: holds = !unordered
        }
        out.append(holds ? ~0 : 0)  // withLanes keeps the lane's width
      }
      try signalSIMDExceptions(flags)
      setXMM(r, withLanes(d, out, f))
    default:  // MIN (5D), MAX (5F): the source unless the destination is strictly smaller (larger)
      var out: [UInt64] = []
      for i in 0..<count {
        let (a, b) = readOperands(da[i], sa[i], f, anyNaNInvalid: true, flags: &flags)
        let x = f.value(a)
        let y = f.value(b)
        out.append((op == 0x5D ? x < y : x > y) ? a : b)
      }
      try signalSIMDExceptions(flags)
      setXMM(r, withLanes(d, out, f))
    }
    return true
  }
}

/// Views of a 128-bit XMM value as lanes of bytes, words, doublewords or quadwords (Swift SIMD
/// vectors, little-endian like the register), and back.
enum SSELanes {
  @inline(__always) static func bytes(_ v: CPU.XMMValue) -> SIMD16<UInt8> {
    unsafeBitCast(SIMD2(v.0, v.1), to: SIMD16<UInt8>.self)
  }
  @inline(__always) static func words(_ v: CPU.XMMValue) -> SIMD8<UInt16> {
    unsafeBitCast(SIMD2(v.0, v.1), to: SIMD8<UInt16>.self)
  }
  @inline(__always) static func dwords(_ v: CPU.XMMValue) -> SIMD4<UInt32> {
    unsafeBitCast(SIMD2(v.0, v.1), to: SIMD4<UInt32>.self)
  }
  @inline(__always) static func value(_ b: SIMD16<UInt8>) -> CPU.XMMValue {
    split(unsafeBitCast(b, to: SIMD2<UInt64>.self))
  }
  @inline(__always) static func value(_ w: SIMD8<UInt16>) -> CPU.XMMValue {
    split(unsafeBitCast(w, to: SIMD2<UInt64>.self))
  }
  @inline(__always) static func value(_ d: SIMD4<UInt32>) -> CPU.XMMValue {
    split(unsafeBitCast(d, to: SIMD2<UInt64>.self))
  }
  @inline(__always) private static func split(_ q: SIMD2<UInt64>) -> CPU.XMMValue { (q[0], q[1]) }

  /// Lane `i` of `width` bits (8, 16, 32 or 64) of `v`, read from its two 64-bit halves.
  @inline(__always) static func lane(_ v: CPU.XMMValue, _ i: Int, width: Int) -> UInt64 {
    let bit = i * width
    let mask: UInt64 = width == 64 ? ~0 : (1 << UInt64(width)) - 1
    return ((bit < 64 ? v.0 : v.1) >> UInt64(bit % 64)) & mask
  }

  /// Sets lane `i` of `width` bits of `v` to the low bits of `x`.
  @inline(__always) static func setLane(_ v: inout CPU.XMMValue, _ i: Int, width: Int, _ x: UInt64) {
    let bit = i * width
    let mask: UInt64 = (width == 64 ? ~0 : (1 << UInt64(width)) - 1) << UInt64(bit % 64)
    let shifted = (x << UInt64(bit % 64)) & mask
    if bit < 64 { v.0 = (v.0 & ~mask) | shifted } else { v.1 = (v.1 & ~mask) | shifted }
  }

  /// Signed saturation of `v` to `bits` bits, as the unsigned pattern of the narrow type.
  @inline(__always) static func saturateSigned(_ v: Int64, bits: Int) -> UInt64 {
    let high = Int64(1) << (bits - 1) - 1
    let low = -(Int64(1) << (bits - 1))
    return UInt64(bitPattern: min(max(v, low), high)) & ((1 << UInt64(bits)) - 1)
  }

  /// Unsigned saturation of `v` to `bits` bits.
  @inline(__always) static func saturateUnsigned(_ v: Int64, bits: Int) -> UInt64 {
    UInt64(min(max(v, 0), (Int64(1) << bits) - 1))
  }
}

/// The SSE2 integer instructions (66 0F 60-7F, C4, C5, D1-FE without the moves, which are in
/// `CPU+SSE.swift`): arithmetic with wrap-around and saturation, multiplies, averages, minimum and
/// maximum, sums of absolute differences, compares, logic, packs, unpacks, shuffles and shifts.
extension CPU {
  func executeSSE2Integer(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let op = ins.opcode
    let r = sseReg(ins)
    switch op {
    case 0x71, 0x72, 0x73:
      try shiftByImmediate(&ins)
      return
    case 0xC4:  // PINSRW xmm, r32/m16, imm8
      let v = ins.modrmIsRegister ? reg(sseRM(ins), 2) : try read(seg: Int(ins.segment), offset: ea, size: 2)
      var w = SSELanes.words(xmm(r))
      w[Int(ins.immediate & 7)] = UInt16(truncatingIfNeeded: v)
      setXMM(r, SSELanes.value(w))
      return
    case 0xC5:  // PEXTRW r32, xmm, imm8
      guard ins.modrmIsRegister else { throw Fault.invalidOpcode }
      setReg(r, 8, UInt64(SSELanes.words(xmm(sseRM(ins)))[Int(ins.immediate & 7)]))
      return
    case 0x70:  // PSHUFD xmm, xmm/m128, imm8
      let s = SSELanes.dwords(try sseSource(&ins, ea))
      let i = Int(ins.immediate & 0xFF)
      setXMM(r, SSELanes.value(SIMD4(s[i & 3], s[(i >> 2) & 3], s[(i >> 4) & 3], s[(i >> 6) & 3])))
      return
    default: break
    }
    let d = xmm(r)
    let s = try sseSource(&ins, ea)
    setXMM(r, try sse2Binary(op, d, s))
  }

  /// The two-operand forms: destination `d`, source `s`, result. The MMX forms run through it too
  /// (`CPU+MMX.swift`): lane-wise operations on 64-bit values in the low half.
  func sse2Binary(_ op: UInt8, _ d: XMMValue, _ s: XMMValue) throws(Fault) -> XMMValue {
    let db = SSELanes.bytes(d)
    let sb = SSELanes.bytes(s)
    let dw = SSELanes.words(d)
    let sw = SSELanes.words(s)
    let dd = SSELanes.dwords(d)
    let sd = SSELanes.dwords(s)
    switch op {
    // Unpacks: interleave the low (60-62, 6C) or high (68-6A, 6D) halves.
    case 0x60, 0x61, 0x62, 0x6C, 0x68, 0x69, 0x6A, 0x6D:
      let width = op == 0x6C || op == 0x6D ? 64 : 8 << Int(op & 3)
      let count = 64 / width  // lanes taken from each operand
      let first = (0x68...0x6A).contains(op) || op == 0x6D ? count : 0  // the high halves
      var r: XMMValue = (0, 0)
      for i in 0..<count {
        SSELanes.setLane(&r, 2 * i, width: width, SSELanes.lane(d, first + i, width: width))
        SSELanes.setLane(&r, 2 * i + 1, width: width, SSELanes.lane(s, first + i, width: width))
      }
      return r
    // Packs with saturation.
    case 0x63, 0x67:  // PACKSSWB, PACKUSWB
      var r = SIMD16<UInt8>()
      for i in 0..<16 {
        let w = Int64(Int16(bitPattern: i < 8 ? dw[i] : sw[i - 8]))
        let v = op == 0x63 ? SSELanes.saturateSigned(w, bits: 8) : SSELanes.saturateUnsigned(w, bits: 8)
        r[i] = UInt8(truncatingIfNeeded: v)
      }
      return SSELanes.value(r)
    case 0x6B:  // PACKSSDW
      var r = SIMD8<UInt16>()
      for i in 0..<8 {
        let v = Int64(Int32(bitPattern: i < 4 ? dd[i] : sd[i - 4]))
        r[i] = UInt16(truncatingIfNeeded: SSELanes.saturateSigned(v, bits: 16))
      }
      return SSELanes.value(r)
    // Compares: all ones where the relation holds.
    case 0x64:
      return SSELanes.value(
        SIMD16<UInt8>(repeating: 0).replacing(
          with: 0xFF, where: unsafeBitCast(db, to: SIMD16<Int8>.self) .> unsafeBitCast(sb, to: SIMD16<Int8>.self)))
    case 0x65:
      return SSELanes.value(
        SIMD8<UInt16>(repeating: 0).replacing(
          with: 0xFFFF, where: unsafeBitCast(dw, to: SIMD8<Int16>.self) .> unsafeBitCast(sw, to: SIMD8<Int16>.self)))
    case 0x66:
      return SSELanes.value(
        SIMD4<UInt32>(repeating: 0).replacing(
          with: ~0, where: unsafeBitCast(dd, to: SIMD4<Int32>.self) .> unsafeBitCast(sd, to: SIMD4<Int32>.self)))
    case 0x74: return SSELanes.value(SIMD16<UInt8>(repeating: 0).replacing(with: 0xFF, where: db .== sb))
    case 0x75: return SSELanes.value(SIMD8<UInt16>(repeating: 0).replacing(with: 0xFFFF, where: dw .== sw))
    case 0x76: return SSELanes.value(SIMD4<UInt32>(repeating: 0).replacing(with: ~0, where: dd .== sd))
    // Shifts by the count in the source's low quadword.
    case 0xD1, 0xD2, 0xD3, 0xE1, 0xE2, 0xF1, 0xF2, 0xF3:
      return shift(op, d, count: s.0)
    // Wrap-around adds and subtracts.
    case 0xFC: return SSELanes.value(db &+ sb)
    case 0xFD: return SSELanes.value(dw &+ sw)
    case 0xFE: return SSELanes.value(dd &+ sd)
    case 0xD4: return (d.0 &+ s.0, d.1 &+ s.1)
    case 0xF8: return SSELanes.value(db &- sb)
    case 0xF9: return SSELanes.value(dw &- sw)
    case 0xFA: return SSELanes.value(dd &- sd)
    case 0xFB: return (d.0 &- s.0, d.1 &- s.1)
    // Saturating adds and subtracts: signed (EC, ED, E8, E9), unsigned (DC, DD, D8, D9).
    case 0xEC, 0xE8, 0xDC, 0xD8, 0xED, 0xE9, 0xDD, 0xD9:
      let width = op & 1 == 0 ? 8 : 16
      return saturating(d, s, width: width, signed: op >= 0xE8, subtract: op & 0x0C == 0x08)
    // Multiplies.
    case 0xD5, 0xE5, 0xE4:  // PMULLW, PMULHW, PMULHUW
      var r = SIMD8<UInt16>()
      for i in 0..<8 {
        if op == 0xE4 {
          r[i] = UInt16(truncatingIfNeeded: (UInt32(dw[i]) * UInt32(sw[i])) >> 16)
        } else {
          let p = Int32(Int16(bitPattern: dw[i])) * Int32(Int16(bitPattern: sw[i]))
          r[i] = UInt16(truncatingIfNeeded: op == 0xD5 ? p : p >> 16)
        }
      }
      return SSELanes.value(r)
    case 0xF4:  // PMULUDQ: the even doublewords, full 64-bit products
      return (UInt64(dd[0]) * UInt64(sd[0]), UInt64(dd[2]) * UInt64(sd[2]))
    case 0xF5:  // PMADDWD: adjacent signed word products added into doublewords
      var r = SIMD4<UInt32>()
      for i in 0..<4 {
        let a = Int32(Int16(bitPattern: dw[2 * i])) &* Int32(Int16(bitPattern: sw[2 * i]))
        let b = Int32(Int16(bitPattern: dw[2 * i + 1])) &* Int32(Int16(bitPattern: sw[2 * i + 1]))
        r[i] = UInt32(bitPattern: a &+ b)
      }
      return SSELanes.value(r)
    // Averages (rounded up), minimum and maximum, sums of absolute differences.
    case 0xE0:
      var r = SIMD16<UInt8>()
      for i in 0..<16 { r[i] = UInt8((UInt16(db[i]) + UInt16(sb[i]) + 1) >> 1) }
      return SSELanes.value(r)
    case 0xE3:
      var r = SIMD8<UInt16>()
      for i in 0..<8 { r[i] = UInt16((UInt32(dw[i]) + UInt32(sw[i]) + 1) >> 1) }
      return SSELanes.value(r)
    case 0xDA: return SSELanes.value(pointwiseMin(db, sb))
    case 0xDE: return SSELanes.value(pointwiseMax(db, sb))
    case 0xEA:
      let m = pointwiseMin(unsafeBitCast(dw, to: SIMD8<Int16>.self), unsafeBitCast(sw, to: SIMD8<Int16>.self))
      return SSELanes.value(unsafeBitCast(m, to: SIMD8<UInt16>.self))
    case 0xEE:
      let m = pointwiseMax(unsafeBitCast(dw, to: SIMD8<Int16>.self), unsafeBitCast(sw, to: SIMD8<Int16>.self))
      return SSELanes.value(unsafeBitCast(m, to: SIMD8<UInt16>.self))
    case 0xF6:  // PSADBW: each half's eight absolute byte differences summed into its low word
      var sums: (UInt64, UInt64) = (0, 0)
      for i in 0..<16 {
        let diff = UInt64(db[i] > sb[i] ? db[i] - sb[i] : sb[i] - db[i])
        if i < 8 { sums.0 += diff } else { sums.1 += diff }
      }
      return sums
    // Logic.
    case 0xDB: return (d.0 & s.0, d.1 & s.1)
    case 0xDF: return (~d.0 & s.0, ~d.1 & s.1)
    case 0xEB: return (d.0 | s.0, d.1 | s.1)
    case 0xEF: return (d.0 ^ s.0, d.1 ^ s.1)
    default:
      throw Fault.invalidOpcode
    }
  }

  /// PADDS/PSUBS (signed) and PADDUS/PSUBUS (unsigned) on `width`-bit lanes (8 or 16).
  private func saturating(_ d: XMMValue, _ s: XMMValue, width: Int, signed: Bool, subtract: Bool) -> XMMValue {
    var r: XMMValue = (0, 0)
    for i in 0..<(128 / width) {
      func value(_ x: UInt64) -> Int64 {
        signed ? Int64(bitPattern: x << UInt64(64 - width)) >> Int64(64 - width) : Int64(x)
      }
      let a = value(SSELanes.lane(d, i, width: width))
      let b = value(SSELanes.lane(s, i, width: width))
      let v = subtract ? a - b : a + b
      SSELanes.setLane(
        &r, i, width: width,
        signed ? SSELanes.saturateSigned(v, bits: width) : SSELanes.saturateUnsigned(v, bits: width))
    }
    return r
  }

  /// PSRLW/D/Q (D1-D3), PSRAW/D (E1, E2), PSLLW/D/Q (F1-F3) by `count`: logical shifts past the
  /// lane width give 0, arithmetic ones the sign.
  func shift(_ op: UInt8, _ d: XMMValue, count: UInt64) -> XMMValue {
    let width = 8 << Int(op & 3)  // xx1: words, xx2: doublewords, xx3: quadwords
    let w = UInt64(width)
    var r: XMMValue = (0, 0)
    for i in 0..<(128 / width) {
      let v = SSELanes.lane(d, i, width: width)
      let out: UInt64
      switch op {
      case 0xD1, 0xD2, 0xD3: out = count >= w ? 0 : v >> count
      case 0xF1, 0xF2, 0xF3: out = count >= w ? 0 : v << count
      default:
        let signed = Int64(bitPattern: v << (64 - w)) >> Int64(64 - w)
        out = UInt64(bitPattern: signed >> Int64(min(count, w - 1)))
      }
      SSELanes.setLane(&r, i, width: width, out)
    }
    return r
  }

  /// 66 0F 71/72/73 /n ib: the same shifts by an immediate count, and PSRLDQ/PSLLDQ (73 /3, /7),
  /// which shift the whole register by bytes.
  private func shiftByImmediate(_ ins: inout DecodedInstruction) throws(Fault) {
    guard ins.modrmIsRegister else { throw Fault.invalidOpcode }
    let rm = sseRM(ins)
    let count = ins.immediate & 0xFF
    let d = xmm(rm)
    let kind = (ins.modrm >> 3) & 7
    let op: UInt8
    switch (ins.opcode, kind) {
    case (0x71, 2): op = 0xD1
    case (0x71, 4): op = 0xE1
    case (0x71, 6): op = 0xF1
    case (0x72, 2): op = 0xD2
    case (0x72, 4): op = 0xE2
    case (0x72, 6): op = 0xF2
    case (0x73, 2): op = 0xD3
    case (0x73, 6): op = 0xF3
    case (0x73, 3), (0x73, 7):
      let n = Int(min(count, 16))
      let b = SSELanes.bytes(d)
      var r = SIMD16<UInt8>()
      for i in 0..<16 {
        let from = kind == 3 ? i + n : i - n
        r[i] = from >= 0 && from < 16 ? b[from] : 0
      }
      setXMM(rm, SSELanes.value(r))
      return
    default: throw Fault.invalidOpcode
    }
    setXMM(rm, shift(op, d, count: count))
  }
}

/// The SSSE3 instructions (0F 38 00-0B, 1C-1E and 0F 3A 0F; SDM vol. 2) in both their forms: on
/// XMM registers (66 prefix, 16 bytes) and on MMX registers (no prefix, 8 bytes): PSHUFB,
/// PHADDW/D/SW, PHSUBW/D/SW, PMADDUBSW, PSIGNB/W/D, PMULHRSW, PABSB/W/D and PALIGNR. One lane
/// routine serves both widths: `bytes` says how many bytes of the 128-bit values are live.
extension CPU {
  /// Runs an SSSE3 instruction of map 0F 38 (`mmx`: the unprefixed form on MM registers).
  func executeSSSE3(_ ins: inout DecodedInstruction, ea: UInt64, mmx: Bool) throws(Fault) {
    let (d, s) = try simdOperands(&ins, ea: ea, mmx: mmx)
    let result = ssse3Lanes(ins.opcode, d, s, bytes: mmx ? 8 : 16)
    setSIMDDestination(ins, mmx: mmx, result)
  }

  /// PALIGNR (0F 3A 0F ib): the destination and source concatenated (destination high), shifted
  /// right by imm8 bytes, the low half kept.
  func executePALIGNR(_ ins: inout DecodedInstruction, ea: UInt64, mmx: Bool) throws(Fault) {
    let (d, s) = try simdOperands(&ins, ea: ea, mmx: mmx)
    let n = mmx ? 8 : 16
    let shift = Int(ins.immediate & 0xFF)
    var r: XMMValue = (0, 0)
    for i in 0..<n {
      let k = i + shift  // byte k of source:destination
      let byte: UInt64 =
        k < n ? SSELanes.lane(s, k, width: 8) : k < 2 * n ? SSELanes.lane(d, k - n, width: 8) : 0
      SSELanes.setLane(&r, i, width: 8, byte)
    }
    setSIMDDestination(ins, mmx: mmx, r)
  }

  /// The destination and source of a two-operand SSSE3-style instruction: XMM (after the SSE
  /// checks; aligned m128) or MMX (after the MMX checks; m64, in the low halves).
  func simdOperands(_ ins: inout DecodedInstruction, ea: UInt64, mmx: Bool) throws(Fault) -> (XMMValue, XMMValue) {
    if mmx {
      try checkMMXAvailable()
      let source = try mmxSource(&ins, ea)
      enterMMXOperation()
      return ((mm(mmxReg(ins)), 0), (source, 0))
    }
    try requireSSE()
    return (xmm(sseReg(ins)), try sseSource(&ins, ea))
  }

  /// Writes the result of a `simdOperands` instruction to its XMM or MM destination.
  func setSIMDDestination(_ ins: DecodedInstruction, mmx: Bool, _ v: XMMValue) {
    if mmx { setMM(mmxReg(ins), v.0) } else { setXMM(sseReg(ins), v) }
  }

  /// Sign-extends the low `width` bits of `x`.
  @inline(__always) static func signExtend(_ x: UInt64, width: Int) -> Int64 {
    Int64(bitPattern: x << UInt64(64 - width)) >> Int64(64 - width)
  }

  /// The SSSE3 lane operations on the low `bytes` bytes (8 or 16) of `d` and `s`.
  private func ssse3Lanes(_ op: UInt8, _ d: XMMValue, _ s: XMMValue, bytes n: Int) -> XMMValue {
    var r: XMMValue = (0, 0)
    switch op {
    case 0x00:  // PSHUFB: each byte picks a destination byte, or 0 when the selector's top bit is set
      for i in 0..<n {
        let selector = SSELanes.lane(s, i, width: 8)
        let byte = selector & 0x80 != 0 ? 0 : SSELanes.lane(d, Int(selector) & (n - 1), width: 8)
        SSELanes.setLane(&r, i, width: 8, byte)
      }
    case 0x01, 0x02, 0x03, 0x05, 0x06, 0x07:  // PHADD/PHSUB W, D, SW: adjacent pairs, destination first
      let width = op & 3 == 2 ? 32 : 16
      let count = n * 8 / width
      let saturate = op & 3 == 3
      for i in 0..<count {
        let from = i < count / 2 ? d : s
        let k = 2 * (i % (count / 2))
        let a = CPU.signExtend(SSELanes.lane(from, k, width: width), width: width)
        let b = CPU.signExtend(SSELanes.lane(from, k + 1, width: width), width: width)
        let v = op < 0x04 ? a + b : a - b
        SSELanes.setLane(
          &r, i, width: width, saturate ? SSELanes.saturateSigned(v, bits: width) : UInt64(bitPattern: v))
      }
    case 0x04:  // PMADDUBSW: unsigned destination bytes times signed source bytes, pairs added, saturated
      for i in 0..<(n / 2) {
        let p0 = Int64(SSELanes.lane(d, 2 * i, width: 8)) * CPU.signExtend(SSELanes.lane(s, 2 * i, width: 8), width: 8)
        let p1 =
          Int64(SSELanes.lane(d, 2 * i + 1, width: 8)) * CPU.signExtend(SSELanes.lane(s, 2 * i + 1, width: 8), width: 8)
        SSELanes.setLane(&r, i, width: 16, SSELanes.saturateSigned(p0 + p1, bits: 16))
      }
    case 0x08, 0x09, 0x0A:  // PSIGNB/W/D: negated, zeroed or kept by the source lane's sign
      let width = 8 << Int(op - 0x08)
      for i in 0..<(n * 8 / width) {
        let sign = CPU.signExtend(SSELanes.lane(s, i, width: width), width: width)
        let v = SSELanes.lane(d, i, width: width)
        SSELanes.setLane(&r, i, width: width, sign < 0 ? 0 &- v : sign == 0 ? 0 : v)
      }
    case 0x0B:  // PMULHRSW: the signed product's bits 30:15, rounded
      for i in 0..<(n / 2) {
        let p =
          CPU.signExtend(SSELanes.lane(d, i, width: 16), width: 16)
          * CPU.signExtend(SSELanes.lane(s, i, width: 16), width: 16)
        SSELanes.setLane(&r, i, width: 16, UInt64(bitPattern: ((p >> 14) + 1) >> 1))
      }
    default:  // 1C-1E PABSB/W/D: the source's absolute values (the most negative value stays)
      let width = 8 << Int(op - 0x1C)
      for i in 0..<(n * 8 / width) {
        let v = CPU.signExtend(SSELanes.lane(s, i, width: width), width: width)
        SSELanes.setLane(&r, i, width: width, UInt64(bitPattern: v < 0 ? 0 &- v : v))
      }
    }
    return r
  }
}

/// SSE and SSE2 instructions on XMM registers: dispatch, operand access and the data-movement
/// group. The integer group is in `CPU+SSEInteger.swift`.
///
/// What runs: the SSE2 integer instructions (66-prefixed 0F 60-7F, C4, C5, D1-FE), the moves of
/// SSE/SSE2 (MOVUPS/PD, MOVAPS/PD, MOVSS/SD, MOVLPS/PD, MOVHPS/PD, MOVHLPS, MOVLHPS, MOVD, MOVQ,
/// MOVDQA, MOVDQU, MOVNTPS/PD/DQ, MASKMOVDQU, MOVMSKPS/PD, PMOVMSKB), and the bitwise and
/// shuffling instructions of the floating-point types (ANDPS..XORPD, UNPCKLPS..UNPCKHPD, SHUFPS,
/// SHUFPD), all of which are exact bit manipulation; the floating-point compares, MIN and MAX
/// (`CPU+SSEFloat.swift`). Map 1's SSE3 forms are in `CPU+SSE3.swift`, the 0F 38 and 0F 3A maps
/// (SSSE3, SSE4.1, SSE4.2) in `CPU+SSSE3.swift`, `CPU+SSE41.swift` and `CPU+SSE42.swift`, the
/// MMX forms (no prefix, MM registers aliased on the x87 registers) in `CPU+MMX.swift`.
///
/// Every instruction first checks CR0.EM, CR4.OSFXSR and CR0.TS (`requireSSE`). A 16-byte memory
/// operand must be 16-byte aligned (#GP(0)) except for the unaligned moves (MOVUPS, MOVUPD,
/// MOVDQU) and the 8- and 4-byte forms.
extension CPU {
  /// A 128-bit XMM value as its two 64-bit halves (low, high).
  typealias XMMValue = (UInt64, UInt64)

  /// ModRM.reg as an XMM (or general) register number, with REX.R.
  @inline(__always) func sseReg(_ ins: DecodedInstruction) -> Int {
    Int((ins.modrm >> 3) & 7) | (ins.prefixes.contains(.rexR) ? 8 : 0)
  }

  /// ModRM.rm as a register number, with REX.B (register forms only).
  @inline(__always) func sseRM(_ ins: DecodedInstruction) -> Int {
    Int(ins.modrm & 7) | (ins.prefixes.contains(.rexB) ? 8 : 0)
  }

  /// The linear address alignment of `ea` in the instruction's segment is a multiple of 16.
  private func requireAligned16(_ ins: DecodedInstruction, _ ea: UInt64) throws(Fault) {
    let seg = Int(ins.segment)
    let base = state.codeMode == .bits64 ? (seg >= 4 ? state.segmentBase(seg) : 0) : state.segmentBase(seg)
    if (base &+ ea) & 15 != 0 { throw Fault.generalProtection() }
  }

  /// The source operand (ModRM.rm): an XMM register, or `size` bytes of memory (16: aligned
  /// unless `unaligned`; 8 and 4 zero-extended).
  func sseSource(_ ins: inout DecodedInstruction, _ ea: UInt64, size: Int = 16, unaligned: Bool = false)
    throws(Fault) -> XMMValue
  {
    if ins.modrmIsRegister { return xmm(sseRM(ins)) }
    let seg = Int(ins.segment)
    switch size {
    case 16:
      if !unaligned { try requireAligned16(ins, ea) }
      let low = try read(seg: seg, offset: ea, size: 8)
      return (low, try read(seg: seg, offset: ea &+ 8, size: 8))
    default:
      return (try read(seg: seg, offset: ea, size: size), 0)
    }
  }

  /// Stores `size` bytes of `v` at the memory operand (16: aligned unless `unaligned`); the whole
  /// destination is checked before anything is written.
  func sseStore(_ ins: inout DecodedInstruction, _ ea: UInt64, _ v: XMMValue, size: Int = 16, unaligned: Bool = false)
    throws(Fault)
  {
    let seg = Int(ins.segment)
    if size == 16 {
      if !unaligned { try requireAligned16(ins, ea) }
      try probeWrite(seg: seg, offset: ea, size: 16)
      try write(seg: seg, offset: ea, size: 8, value: v.0)
      try write(seg: seg, offset: ea &+ 8, size: 8, value: v.1)
    } else {
      try write(seg: seg, offset: ea, size: size, value: v.0 & ALU.mask(size))
    }
  }

  /// Runs an SSE/SSE2 instruction (`Operation.sse`); #UD for the forms not modelled.
  func executeSSE(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let column = SSEOperandShapes.column(ins.prefixes)  // the decoder's mandatory-prefix column
    switch ins.map {
    case 1: break
    case 2: return try executeMap38(&ins, ea: ea, column: column)  // 0F 38: SSSE3, SSE4.1, SSE4.2
    case 3: return try executeMap3A(&ins, ea: ea, column: column)  // 0F 3A: the same, with imm8
    default: throw Fault.invalidOpcode
    }
    if try executeSSEMove(&ins, ea: ea, column: column) { return }
    if try executeSSEFloat(&ins, ea: ea, column: column) { return }
    if try executeSSE3(&ins, ea: ea, column: column) { return }
    if try executeSSEApproximation(&ins, ea: ea, column: column) { return }
    if try executeMMXConversion(&ins, ea: ea, column: column) { return }
    if column == 0 { return try executeMMX(&ins, ea: ea) }  // the MMX forms on MM registers
    guard column == 1 else { throw Fault.invalidOpcode }
    try requireSSE()
    try executeSSE2Integer(&ins, ea: ea)
  }

  /// The data-movement and bitwise instructions; false when `ins` is not one of them.
  private func executeSSEMove(_ ins: inout DecodedInstruction, ea: UInt64, column: Int) throws(Fault) -> Bool {
    let op = ins.opcode
    let r = sseReg(ins)
    let isRegister = ins.modrmIsRegister
    switch (op, column) {
    case (0x10, 0), (0x10, 1):  // MOVUPS, MOVUPD xmm, xmm/m128
      try requireSSE()
      setXMM(r, try sseSource(&ins, ea, unaligned: true))
    case (0x11, 0), (0x11, 1):  // MOVUPS, MOVUPD xmm/m128, xmm
      try requireSSE()
      if isRegister { setXMM(sseRM(ins), xmm(r)) } else { try sseStore(&ins, ea, xmm(r), unaligned: true) }
    case (0x10, 2), (0x10, 3):  // MOVSS, MOVSD xmm, xmm/m32|m64
      try requireSSE()
      let size = column == 2 ? 4 : 8
      if isRegister {
        let d = xmm(r)
        let s = xmm(sseRM(ins))
        setXMM(r, size == 4 ? ((d.0 & ~0xFFFF_FFFF) | (s.0 & 0xFFFF_FFFF), d.1) : (s.0, d.1))
      } else {
        setXMM(r, try sseSource(&ins, ea, size: size))
      }
    case (0x11, 2), (0x11, 3):  // MOVSS, MOVSD xmm/m32|m64, xmm
      try requireSSE()
      let size = column == 2 ? 4 : 8
      let s = xmm(r)
      if isRegister {
        let rm = sseRM(ins)
        let d = xmm(rm)
        setXMM(rm, size == 4 ? ((d.0 & ~0xFFFF_FFFF) | (s.0 & 0xFFFF_FFFF), d.1) : (s.0, d.1))
      } else {
        try sseStore(&ins, ea, s, size: size)
      }
    case (0x28, 0), (0x28, 1):  // MOVAPS, MOVAPD xmm, xmm/m128
      try requireSSE()
      setXMM(r, try sseSource(&ins, ea))
    case (0x29, 0), (0x29, 1):  // MOVAPS, MOVAPD xmm/m128, xmm
      try requireSSE()
      if isRegister { setXMM(sseRM(ins), xmm(r)) } else { try sseStore(&ins, ea, xmm(r)) }
    case (0x2B, 0), (0x2B, 1), (0xE7, 1):  // MOVNTPS, MOVNTPD, MOVNTDQ m128, xmm
      guard !isRegister else { throw Fault.invalidOpcode }
      try requireSSE()
      try sseStore(&ins, ea, xmm(r))
    case (0x12, 0), (0x12, 1):  // MOVLPS/MOVLPD xmm, m64; MOVHLPS xmm, xmm (no prefix)
      try requireSSE()
      let d = xmm(r)
      if isRegister {
        guard column == 0 else { throw Fault.invalidOpcode }
        setXMM(r, (xmm(sseRM(ins)).1, d.1))
      } else {
        setXMM(r, (try sseSource(&ins, ea, size: 8).0, d.1))
      }
    case (0x13, 0), (0x13, 1):  // MOVLPS/MOVLPD m64, xmm
      guard !isRegister else { throw Fault.invalidOpcode }
      try requireSSE()
      try sseStore(&ins, ea, xmm(r), size: 8)
    case (0x16, 0), (0x16, 1):  // MOVHPS/MOVHPD xmm, m64; MOVLHPS xmm, xmm (no prefix)
      try requireSSE()
      let d = xmm(r)
      if isRegister {
        guard column == 0 else { throw Fault.invalidOpcode }
        setXMM(r, (d.0, xmm(sseRM(ins)).0))
      } else {
        setXMM(r, (d.0, try sseSource(&ins, ea, size: 8).0))
      }
    case (0x17, 0), (0x17, 1):  // MOVHPS/MOVHPD m64, xmm
      guard !isRegister else { throw Fault.invalidOpcode }
      try requireSSE()
      try sseStore(&ins, ea, (xmm(r).1, 0), size: 8)
    case (0x14, 0), (0x15, 0):  // UNPCKLPS, UNPCKHPS
      try requireSSE()
      let d = SSELanes.dwords(xmm(r))
      let s = SSELanes.dwords(try sseSource(&ins, ea))
      let h = op == 0x15 ? 2 : 0
      setXMM(r, SSELanes.value(SIMD4(d[h], s[h], d[h + 1], s[h + 1])))
    case (0x14, 1), (0x15, 1):  // UNPCKLPD, UNPCKHPD
      try requireSSE()
      let d = xmm(r)
      let s = try sseSource(&ins, ea)
      setXMM(r, op == 0x14 ? (d.0, s.0) : (d.1, s.1))
    case (0xC6, 0):  // SHUFPS xmm, xmm/m128, imm8
      try requireSSE()
      let d = SSELanes.dwords(xmm(r))
      let s = SSELanes.dwords(try sseSource(&ins, ea))
      let i = Int(ins.immediate & 0xFF)
      setXMM(r, SSELanes.value(SIMD4(d[i & 3], d[(i >> 2) & 3], s[(i >> 4) & 3], s[(i >> 6) & 3])))
    case (0xC6, 1):  // SHUFPD xmm, xmm/m128, imm8
      try requireSSE()
      let d = xmm(r)
      let s = try sseSource(&ins, ea)
      let i = ins.immediate
      setXMM(r, (i & 1 == 0 ? d.0 : d.1, i & 2 == 0 ? s.0 : s.1))
    case (0x54, 0), (0x54, 1), (0x55, 0), (0x55, 1), (0x56, 0), (0x56, 1), (0x57, 0), (0x57, 1):
      // ANDPS/PD, ANDNPS/PD, ORPS/PD, XORPS/PD
      try requireSSE()
      let d = xmm(r)
      let s = try sseSource(&ins, ea)
      switch op {
      case 0x54: setXMM(r, (d.0 & s.0, d.1 & s.1))
      case 0x55: setXMM(r, (~d.0 & s.0, ~d.1 & s.1))
      case 0x56: setXMM(r, (d.0 | s.0, d.1 | s.1))
      default: setXMM(r, (d.0 ^ s.0, d.1 ^ s.1))
      }
    case (0x50, 0), (0x50, 1):  // MOVMSKPS, MOVMSKPD r32, xmm
      guard isRegister else { throw Fault.invalidOpcode }
      try requireSSE()
      let s = xmm(sseRM(ins))
      let mask: UInt64
      if column == 0 {
        mask = (s.0 >> 31 & 1) | (s.0 >> 62 & 2) | (s.1 >> 29 & 4) | (s.1 >> 60 & 8)
      } else {
        mask = (s.0 >> 63) | (s.1 >> 62 & 2)
      }
      setReg(r, 8, mask)
    case (0x6E, 1):  // MOVD/MOVQ xmm, r/m32|64
      try requireSSE()
      let wide = ins.prefixes.contains(.rexW) && state.codeMode == .bits64
      let size = wide ? 8 : 4
      let v = isRegister ? reg(sseRM(ins), size) : try read(seg: Int(ins.segment), offset: ea, size: size)
      setXMM(r, (v, 0))
    case (0x7E, 1):  // MOVD/MOVQ r/m32|64, xmm
      try requireSSE()
      let wide = ins.prefixes.contains(.rexW) && state.codeMode == .bits64
      let size = wide ? 8 : 4
      let v = xmm(r).0 & ALU.mask(size)
      if isRegister {
        setReg(sseRM(ins), size, v)
      } else {
        try write(seg: Int(ins.segment), offset: ea, size: size, value: v)
      }
    case (0x7E, 2):  // MOVQ xmm, xmm/m64 (upper half zeroed)
      try requireSSE()
      setXMM(r, (isRegister ? xmm(sseRM(ins)).0 : try sseSource(&ins, ea, size: 8).0, 0))
    case (0xD6, 1):  // MOVQ xmm/m64, xmm (a register destination's upper half zeroed)
      try requireSSE()
      if isRegister { setXMM(sseRM(ins), (xmm(r).0, 0)) } else { try sseStore(&ins, ea, xmm(r), size: 8) }
    case (0x6F, 1), (0x6F, 2):  // MOVDQA, MOVDQU xmm, xmm/m128
      try requireSSE()
      setXMM(r, try sseSource(&ins, ea, unaligned: column == 2))
    case (0x7F, 1), (0x7F, 2):  // MOVDQA, MOVDQU xmm/m128, xmm
      try requireSSE()
      if isRegister {
        setXMM(sseRM(ins), xmm(r))
      } else {
        try sseStore(&ins, ea, xmm(r), unaligned: column == 2)
      }
    case (0x70, 2), (0x70, 3):  // PSHUFHW, PSHUFLW xmm, xmm/m128, imm8: one half's words shuffled
      try requireSSE()
      let w = SSELanes.words(try sseSource(&ins, ea))
      let i = Int(ins.immediate & 0xFF)
      let h = column == 2 ? 4 : 0
      var out = w
      for k in 0..<4 { out[h + k] = w[h + ((i >> (2 * k)) & 3)] }
      setXMM(r, SSELanes.value(out))
    case (0xD7, 1):  // PMOVMSKB r32, xmm
      guard isRegister else { throw Fault.invalidOpcode }
      try requireSSE()
      let bytes = SSELanes.bytes(xmm(sseRM(ins)))
      var mask: UInt64 = 0
      for i in 0..<16 where bytes[i] & 0x80 != 0 { mask |= 1 << UInt64(i) }
      setReg(r, 8, mask)
    case (0xF7, 1):  // MASKMOVDQU xmm, xmm: the bytes whose mask byte has its top bit, to DS:rDI
      guard isRegister else { throw Fault.invalidOpcode }
      try requireSSE()
      let data = SSELanes.bytes(xmm(r))
      let mask = SSELanes.bytes(xmm(sseRM(ins)))
      let di = reg(7, Int(ins.addressSize))
      let seg = ins.prefixes.contains(.segment) ? Int(ins.segment) : 3
      for i in 0..<16 where mask[i] & 0x80 != 0 {
        try checkWrite(seg: seg, offset: (di &+ UInt64(i)) & ALU.mask(Int(ins.addressSize)), size: 1)
      }
      for i in 0..<16 where mask[i] & 0x80 != 0 {
        try write(seg: seg, offset: (di &+ UInt64(i)) & ALU.mask(Int(ins.addressSize)), size: 1, value: UInt64(data[i]))
      }
    default:
      return false
    }
    return true
  }
}

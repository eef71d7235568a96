/// MMX: the unprefixed 0F 60-7F and D1-FE instructions on MM0-7, EMMS, MOVD/MOVQ to and from MM,
/// the SSE additions on MM registers (PSHUFW, PINSRW, PEXTRW, PMOVMSKB, MASKMOVQ, MOVNTQ, PAVGB/W,
/// PMINUB, PMAXUB, PMINSW, PMAXSW, PSADBW, PMULHUW), SSE2's PADDQ/PSUBQ/PMULUDQ on MM, MOVQ2DQ,
/// MOVDQ2Q and the conversions between MM and XMM (CVTPI2PS & co.).
///
/// State (shared with the x87 unit): the FXSAVE legacy area of the state page,
/// `CPUStateLayout.fxLegacy`. FSW is at +2 (TOP in bits 11-13, ES in bit 7), the abridged tag
/// byte at +4 (bit i: physical register Ri is not empty), and physical register Ri at +32+16*i.
/// MMi is the low 8 bytes of Ri. Every MMX instruction but EMMS raises #UD when CR0.EM is set,
/// #NM when CR0.TS is set and #MF when an unmasked x87 exception is pending (FSW.ES), then sets
/// TOP to 0 and marks every register valid (tag 0xFF); writing MMi also sets Ri's exponent field
/// (bytes 8-9) to all ones, as the SDM describes. EMMS makes the checks and empties every tag.
///
/// The arithmetic is the SSE2 integer code (`sse2Binary`, `shift`) on the low 64 bits.
extension CPU {
  private static let fswOffset = CPUStateLayout.fxLegacy + 2
  private static let abridgedTagOffset = CPUStateLayout.fxLegacy + 4
  private static let registersOffset = CPUStateLayout.fxLegacy + 32

  /// MMi: the low 64 bits of physical x87 register Ri.
  @inline(__always) func mm(_ i: Int) -> UInt64 {
    stateRaw.load(fromByteOffset: CPU.registersOffset + 16 * i, as: UInt64.self)
  }

  /// Writes MMi and sets the exponent field of physical register Ri to all ones.
  @inline(__always) func setMM(_ i: Int, _ v: UInt64) {
    stateRaw.storeBytes(of: v, toByteOffset: CPU.registersOffset + 16 * i, as: UInt64.self)
    stateRaw.storeBytes(of: UInt16(0xFFFF), toByteOffset: CPU.registersOffset + 16 * i + 8, as: UInt16.self)
  }

  /// The x87 status word (FSW).
  var x87StatusWord: UInt16 {
    get { stateRaw.load(fromByteOffset: CPU.fswOffset, as: UInt16.self) }
    set { stateRaw.storeBytes(of: newValue, toByteOffset: CPU.fswOffset, as: UInt16.self) }
  }

  /// The abridged x87 tag byte (bit i set: physical register Ri is not empty).
  var x87AbridgedTag: UInt8 {
    get { stateRaw.load(fromByteOffset: CPU.abridgedTagOffset, as: UInt8.self) }
    set { stateRaw.storeBytes(of: newValue, toByteOffset: CPU.abridgedTagOffset, as: UInt8.self) }
  }

  /// The checks of every MMX instruction (#UD with CR0.EM, #NM with CR0.TS, #MF with a pending
  /// unmasked x87 exception), then the switch to MMX operation: TOP = 0, every tag valid.
  func requireMMX() throws(Fault) {
    try checkMMXAvailable()
    enterMMXOperation()
  }

  /// The switch to MMX operation: TOP = 0, every tag valid. The host makes it once the
  /// instruction's memory operands have been read (a faulting read leaves the x87 state alone)
  /// and before a SIMD floating-point exception of the conversions.
  @inline(__always) func enterMMXOperation() {
    x87StatusWord &= ~0x3800
    x87AbridgedTag = 0xFF
  }

  /// #UD with CR0.EM, #NM with CR0.TS, #MF when FSW.ES says an unmasked x87 exception is pending.
  func checkMMXAvailable() throws(Fault) {
    let cr0 = state.cr0
    if cr0 & CR0.em != 0 { throw Fault.invalidOpcode }
    if cr0 & CR0.ts != 0 { throw Fault.exception(vector: ExceptionVector.deviceNotAvailable, errorCode: nil) }
    if x87StatusWord & 0x80 != 0 { try x87PendingError() }
  }

  /// EMMS (0F 77): the MMX checks, then every x87 register empty (tag 0) and TOP = 0.
  func executeEMMS() throws(Fault) {
    try checkMMXAvailable()
    x87StatusWord &= ~0x3800
    x87AbridgedTag = 0
  }

  /// ModRM.reg as an MM register (REX.R does not extend it).
  @inline(__always) func mmxReg(_ ins: DecodedInstruction) -> Int { Int((ins.modrm >> 3) & 7) }

  /// ModRM.rm as an MM register (REX.B does not extend it).
  @inline(__always) func mmxRM(_ ins: DecodedInstruction) -> Int { Int(ins.modrm & 7) }

  /// The 64-bit source operand: an MM register or 8 bytes of memory (no alignment requirement).
  func mmxSource(_ ins: inout DecodedInstruction, _ ea: UInt64) throws(Fault) -> UInt64 {
    if ins.modrmIsRegister { return mm(mmxRM(ins)) }
    return try read(seg: Int(ins.segment), offset: ea, size: 8)
  }

  /// The unprefixed map-1 instructions on MM registers; #UD for opcodes without an MMX form.
  func executeMMX(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let op = ins.opcode
    let isRegister = ins.modrmIsRegister
    let r = mmxReg(ins)
    guard CPU.hasMMXForm(op) else { throw Fault.invalidOpcode }
    if (0x71...0x73).contains(op) && (!isRegister || CPU.mmxShiftByCount(op, kind: r) == nil) {
      throw Fault.invalidOpcode  // an undefined /n or a memory operand: #UD before the MMX checks
    }
    try checkMMXAvailable()
    switch op {
    case 0x60...0x6B, 0x74...0x76, 0xD1...0xD5, 0xD8...0xDF, 0xE0...0xE5, 0xE8...0xEF, 0xF1...0xF6, 0xF8...0xFE:
      // PUNPCKLBW/WD/DQ read only 4 bytes of memory (the low halves they interleave).
      let s =
        op <= 0x62 && !isRegister ? try read(seg: Int(ins.segment), offset: ea, size: 4) : try mmxSource(&ins, ea)
      enterMMXOperation()
      setMM(r, try mmxBinary(op, mm(r), s))
    case 0x6E:  // MOVD/MOVQ mm, r/m32|64
      let size = ins.prefixes.contains(.rexW) && state.codeMode == .bits64 ? 8 : 4
      let v = isRegister ? reg(sseRM(ins), size) : try read(seg: Int(ins.segment), offset: ea, size: size)
      enterMMXOperation()
      setMM(r, v)
    case 0x7E:  // MOVD/MOVQ r/m32|64, mm
      let size = ins.prefixes.contains(.rexW) && state.codeMode == .bits64 ? 8 : 4
      let v = mm(r) & ALU.mask(size)
      if isRegister {
        setReg(sseRM(ins), size, v)
      } else {
        try write(seg: Int(ins.segment), offset: ea, size: size, value: v)
      }
      enterMMXOperation()
    case 0x6F:  // MOVQ mm, mm/m64
      let v = try mmxSource(&ins, ea)
      enterMMXOperation()
      setMM(r, v)
    case 0x7F, 0xE7:  // MOVQ mm/m64, mm; MOVNTQ m64, mm
      guard op == 0x7F || !isRegister else { throw Fault.invalidOpcode }
      if isRegister {
        setMM(mmxRM(ins), mm(r))
      } else {
        try write(seg: Int(ins.segment), offset: ea, size: 8, value: mm(r))
      }
      enterMMXOperation()
    case 0x70:  // PSHUFW mm, mm/m64, imm8
      let s = try mmxSource(&ins, ea)
      enterMMXOperation()
      let i = ins.immediate
      var v: UInt64 = 0
      for k in 0..<4 { v |= ((s >> (16 * ((i >> (2 * UInt64(k))) & 3))) & 0xFFFF) << (16 * UInt64(k)) }
      setMM(r, v)
    case 0x71, 0x72, 0x73:  // shifts by imm8 (the form was checked above)
      guard let target = CPU.mmxShiftByCount(op, kind: r) else { throw Fault.invalidOpcode }
      enterMMXOperation()
      let rm = mmxRM(ins)
      setMM(rm, shift(target, (mm(rm), 0), count: ins.immediate & 0xFF).0)
    case 0xC4:  // PINSRW mm, r32/m16, imm8
      let v = isRegister ? reg(sseRM(ins), 2) : try read(seg: Int(ins.segment), offset: ea, size: 2)
      enterMMXOperation()
      let shift = 16 * (ins.immediate & 3)
      setMM(r, (mm(r) & ~(0xFFFF << shift)) | (v & 0xFFFF) << shift)
    case 0xC5:  // PEXTRW r32, mm, imm8
      guard isRegister else { throw Fault.invalidOpcode }
      enterMMXOperation()
      setReg(sseReg(ins), 8, (mm(mmxRM(ins)) >> (16 * (ins.immediate & 3))) & 0xFFFF)
    case 0xD7:  // PMOVMSKB r32, mm
      guard isRegister else { throw Fault.invalidOpcode }
      enterMMXOperation()
      let s = mm(mmxRM(ins))
      var mask: UInt64 = 0
      for i in 0..<8 where (s >> (8 * UInt64(i) + 7)) & 1 != 0 { mask |= 1 << UInt64(i) }
      setReg(sseReg(ins), 8, mask)
    case 0xF7:  // MASKMOVQ mm, mm: the bytes whose mask byte has its top bit, to DS:rDI
      guard isRegister else { throw Fault.invalidOpcode }
      let data = mm(r)
      let mask = mm(mmxRM(ins))
      let di = reg(7, Int(ins.addressSize))
      let seg = ins.prefixes.contains(.segment) ? Int(ins.segment) : 3
      let addressMask = ALU.mask(Int(ins.addressSize))
      for i in 0..<8 where (mask >> (8 * UInt64(i) + 7)) & 1 != 0 {
        try checkWrite(seg: seg, offset: (di &+ UInt64(i)) & addressMask, size: 1)
      }
      for i in 0..<8 where (mask >> (8 * UInt64(i) + 7)) & 1 != 0 {
        try write(seg: seg, offset: (di &+ UInt64(i)) & addressMask, size: 1, value: (data >> (8 * UInt64(i))) & 0xFF)
      }
      enterMMXOperation()
    default:
      throw Fault.invalidOpcode
    }
  }

  /// The unprefixed map-1 opcodes with an MMX form (the others raise #UD before the MMX checks).
  private static func hasMMXForm(_ op: UInt8) -> Bool {
    switch op {
    case 0x60...0x6B, 0x6E...0x76, 0x7E, 0x7F, 0xC4, 0xC5, 0xD1...0xD5, 0xD7...0xDF, 0xE0...0xE5, 0xE7...0xEF,
      0xF1...0xFE:
      return true
    default:
      return false
    }
  }

  /// The shift by count (D1-D3, E1-E2, F1-F3) that 0F 71/72/73 /`kind` ib performs: /2 logical
  /// right, /4 arithmetic right, /6 left; nil for the undefined forms (73 /4, and PSRLDQ/PSLLDQ's
  /// /3 and /7, which exist only on XMM registers).
  private static func mmxShiftByCount(_ op: UInt8, kind: Int) -> UInt8? {
    switch (op, kind) {
    case (0x71, 2): 0xD1
    case (0x71, 4): 0xE1
    case (0x71, 6): 0xF1
    case (0x72, 2): 0xD2
    case (0x72, 4): 0xE2
    case (0x72, 6): 0xF2
    case (0x73, 2): 0xD3
    case (0x73, 6): 0xF3
    default: nil
    }
  }

  /// The two-operand MMX arithmetic through the SSE2 lane code: lane-wise operations on the low
  /// halves; the unpacks of the high halves on the upper doublewords moved down; the packs on the
  /// destination and source side by side (their 128-bit result's low half is the MMX result).
  private func mmxBinary(_ op: UInt8, _ d: UInt64, _ s: UInt64) throws(Fault) -> UInt64 {
    switch op {
    case 0x68, 0x69, 0x6A:  // PUNPCKHBW/WD/DQ
      return try sse2Binary(op - 8, (d >> 32, 0), (s >> 32, 0)).0
    case 0x63, 0x67, 0x6B:  // PACKSSWB, PACKUSWB, PACKSSDW
      return try sse2Binary(op, (d, s), (0, 0)).0
    default:
      return try sse2Binary(op, (d, 0), (s, 0)).0
    }
  }

  /// The conversions and moves between MM and XMM registers: CVTPI2PS, CVTPI2PD, CVT(T)PS2PI,
  /// CVT(T)PD2PI (0F 2A, 2C, 2D without prefix or with 66), MOVQ2DQ (F3 0F D6) and MOVDQ2Q
  /// (F2 0F D6); false for anything else. The conversions round under MXCSR like the SSE ones.
  func executeMMXConversion(_ ins: inout DecodedInstruction, ea: UInt64, column: Int) throws(Fault) -> Bool {
    let single = SoftFloat.Format(bits: 32)
    let double = SoftFloat.Format(bits: 64)
    switch (ins.opcode, column) {
    case (0x2A, 0), (0x2A, 1):  // CVTPI2PS xmm, mm/m64; CVTPI2PD xmm, mm/m64
      try requireSSE()
      let source: UInt64
      if ins.modrmIsRegister {
        try requireMMX()
        source = mm(mmxRM(ins))
      } else {
        source = try read(seg: Int(ins.segment), offset: ea, size: 8)
      }
      let r = sseReg(ins)
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let format = column == 0 ? single : double
      let outcomes = (0..<2).map { i in
        SoftFloat.fromInteger(Int64(Int32(truncatingIfNeeded: source >> (32 * UInt64(i)))), to: format, control)
      }
      let bits = try results(outcomes)
      setXMM(r, column == 0 ? (bits[0] | bits[1] << 32, xmm(r).1) : (bits[0], bits[1]))
    case (0x2C, 0), (0x2D, 0), (0x2C, 1), (0x2D, 1):  // CVT(T)PS2PI mm, xmm/m64; CVT(T)PD2PI mm, xmm/m128
      try requireSSE()
      try checkMMXAvailable()
      let format = column == 0 ? single : double
      let source = try sseSource(&ins, ea, size: column == 0 ? 8 : 16)
      enterMMXOperation()
      let control = SoftFloat.Control(mxcsr: mxcsr)
      let values = column == 0 ? [source.0 & 0xFFFF_FFFF, source.0 >> 32] : [source.0, source.1]
      let bits = try results(
        values.map { SoftFloat.toInteger($0, from: format, bits: 32, truncate: ins.opcode == 0x2C, control) })
      setMM(mmxReg(ins), bits[0] | bits[1] << 32)
    case (0xD6, 2):  // MOVQ2DQ xmm, mm
      guard ins.modrmIsRegister else { throw Fault.invalidOpcode }
      try requireSSE()
      try requireMMX()
      setXMM(sseReg(ins), (mm(mmxRM(ins)), 0))
    case (0xD6, 3):  // MOVDQ2Q mm, xmm
      guard ins.modrmIsRegister else { throw Fault.invalidOpcode }
      try requireSSE()
      try requireMMX()
      setMM(mmxReg(ins), xmm(sseRM(ins)).0)
    default:
      return false
    }
    return true
  }
}

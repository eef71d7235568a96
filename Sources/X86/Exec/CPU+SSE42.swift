/// The SSE4.2 instructions (SDM vol. 2): PCMPGTQ (66 0F 38 37), the string compares PCMPESTRM,
/// PCMPESTRI, PCMPISTRM, PCMPISTRI (66 0F 3A 60-63 ib) in every imm8 mode, and CRC32 (F2 0F 38 F0
/// and F1, the CRC-32C polynomial). POPCNT is a general instruction (`CPU+Arithmetic.swift`).
extension CPU {
  /// PCMPGTQ xmm, xmm/m128: signed quadword greater-than.
  func executePCMPGTQ(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    try requireSSE()
    let r = sseReg(ins)
    let d = xmm(r)
    let s = try sseSource(&ins, ea)
    setXMM(
      r,
      (
        Int64(bitPattern: d.0) > Int64(bitPattern: s.0) ? ~0 : 0,
        Int64(bitPattern: d.1) > Int64(bitPattern: s.1) ? ~0 : 0
      ))
  }

  /// PCMPESTRM (60), PCMPESTRI (61), PCMPISTRM (62), PCMPISTRI (63). The first operand (ModRM.reg)
  /// is the set, range list or needle; the second (xmm/m128, no alignment required) the string
  /// searched. Explicit lengths come from EAX and EDX (RAX and RDX with REX.W), as absolute values
  /// capped at the element count; implicit ones end at the first zero element. The index forms
  /// write ECX, the mask forms XMM0. CF: the result is not zero; ZF: the second operand is shorter
  /// than the register; SF: so is the first; OF: the result's bit 0; AF and PF cleared.
  func executePCMPSTR(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    try requireSSE()
    let a = xmm(sseReg(ins))
    let b = try sseSource(&ins, ea, unaligned: true)
    let imm = Int(ins.immediate & 0xFF)
    let words = imm & 1 != 0
    let signed = imm & 2 != 0
    let width = words ? 16 : 8
    let n = words ? 8 : 16
    let explicit = ins.opcode <= 0x61
    func element(_ v: XMMValue, _ i: Int) -> Int64 {
      let raw = SSELanes.lane(v, i, width: width)
      return signed ? CPU.signExtend(raw, width: width) : Int64(raw)
    }
    func length(_ v: XMMValue, register: Int) -> Int {
      if explicit {
        let wide = ins.prefixes.contains(.rexW) && state.codeMode == .bits64
        let raw = reg(register, wide ? 8 : 4)
        let value = wide ? Int64(bitPattern: raw) : Int64(Int32(truncatingIfNeeded: raw))
        return Int(min(value.magnitude, UInt64(n)))
      }
      for i in 0..<n where SSELanes.lane(v, i, width: width) == 0 { return i }
      return n
    }
    let lengthA = length(a, register: 0)
    let lengthB = length(b, register: 2)
    // IntRes1: bit j for element j of the second operand (of the pair index for equal each).
    var result = 0
    switch (imm >> 2) & 3 {
    case 0:  // equal any: b[j] is one of a's valid elements
      for j in 0..<lengthB {
        for i in 0..<lengthA where element(a, i) == element(b, j) {
          result |= 1 << j
          break
        }
      }
    case 1:  // ranges: a[2k] <= b[j] <= a[2k+1] for some complete valid pair
      for j in 0..<lengthB {
        var k = 0
        while k + 1 < lengthA {
          if element(a, k) <= element(b, j) && element(b, j) <= element(a, k + 1) {
            result |= 1 << j
            break
          }
          k += 2
        }
      }
    case 2:  // equal each: past both ends true, past one end false
      for i in 0..<n {
        let validA = i < lengthA
        let validB = i < lengthB
        if validA && validB ? element(a, i) == element(b, i) : !validA && !validB { result |= 1 << i }
      }
    default:  // equal ordered: a (up to its length) occurs in b starting at j; a's end matches anything
      for j in 0..<n {
        var match = true
        var k = 0
        while k < lengthA && j + k < n {
          if j + k >= lengthB || element(a, k) != element(b, j + k) {
            match = false
            break
          }
          k += 1
        }
        if match { result |= 1 << j }
      }
    }
    let all = (1 << n) - 1
    switch (imm >> 4) & 3 {
    case 1: result ^= all  // negative
    case 3: result ^= (1 << lengthB) - 1  // masked negative: only b's valid elements
    default: break
    }
    var f = state.rflags & ~(Flags.cf | Flags.zf | Flags.sf | Flags.of | Flags.af | Flags.pf)
    if result != 0 { f |= Flags.cf }
    if lengthB < n { f |= Flags.zf }
    if lengthA < n { f |= Flags.sf }
    if result & 1 != 0 { f |= Flags.of }
    state.rflags = f
    if ins.opcode & 1 != 0 {  // index into ECX
      let index: Int
      if result == 0 {
        index = n
      } else if imm & 0x40 != 0 {
        index = (Int.bitWidth - 1) - result.leadingZeroBitCount
      } else {
        index = result.trailingZeroBitCount
      }
      setReg(1, 4, UInt64(index))
    } else if imm & 0x40 != 0 {  // mask into XMM0, expanded to elements
      var out: XMMValue = (0, 0)
      for i in 0..<n where (result >> i) & 1 != 0 {
        SSELanes.setLane(&out, i, width: width, words ? 0xFFFF : 0xFF)
      }
      setXMM(0, out)
    } else {
      setXMM(0, (UInt64(result), 0))
    }
  }

  /// CRC32 r32|r64, r/m8|16|32|64 (F2 0F 38 F0/F1): the destination's low 32 bits updated with
  /// the source's bytes, least significant first, by the bit-reflected CRC-32C (Castagnoli)
  /// polynomial, without pre- or post-inversion; the result zero-extended.
  func executeCRC32(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let destination = ins.operands.0
    let source = ins.operands.1
    guard destination.kind == .gpr else { throw Fault.invalidOpcode }
    let data = try readOperand(ins, source, ea)
    var crc = UInt32(truncatingIfNeeded: reg(Int(destination.reg), 4))
    for i in 0..<Int(source.size) {
      crc ^= UInt32(truncatingIfNeeded: data >> (8 * UInt64(i))) & 0xFF
      for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    setReg(Int(destination.reg), 8, UInt64(crc))
  }
}

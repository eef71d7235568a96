extension Decoder {
  /// A VEX-encoded AVX/AVX2 or mask-register instruction (`VEXForms`), after the VEX prefix and
  /// the opcode byte: ModRM (all but VZEROUPPER/VZEROALL), the memory operand, and an imm8 where
  /// the form takes one. Operands: 0 = ModRM.reg, 1 = ModRM.rm (register or memory); the formatter
  /// names them by the form.
  static func decodeAVX(
    _ ins: inout DecodedInstruction, _ r: inout ByteReader, map: UInt8, opcode: UInt8, fields: VEXFields, rex: UInt8,
    prefixes: Prefixes, segment: UInt8, mode: CodeMode
  ) -> Status {
    let hasModRM = !(map == 1 && opcode == 0x77)
    var modrm: UInt8 = 0
    if hasModRM {
      modrm = r.next()
      if r.truncated { return .truncated }
    }
    guard
      let form = VEXForms.form(
        map: map, opcode: opcode, pp: fields.pp, w: fields.w, l: fields.l, reg: (modrm >> 3) & 7)
    else { return .undefined }
    if let register = form.requiresRegister, register != (modrm >= 0xC0) { return .undefined }
    switch form.layout {
    case .none, .rm, .mr, .rmi, .mri:
      if fields.vvvv != 0 { return .undefined }  // VEX.vvvv must be 1111b when unused
    default: break
    }
    let regNumber = ((modrm >> 3) & 7) | (rex & 4 != 0 ? 8 : 0)
    var rmOperand = Operand(.xmm, size: 16, reg: (modrm & 7) | (rex & 1 != 0 ? 8 : 0))
    if hasModRM && modrm < 0xC0 {
      let asize =
        mode == .bits64 ? (prefixes.contains(.addressSize) ? 4 : 8) : (prefixes.contains(.addressSize) ? 2 : 4)
      if asize == 2 {
        decodeModRM16(&ins, &r, modrm: modrm)
      } else {
        decodeModRM32(&ins, &r, modrm: modrm, rex: rex, asize: asize, mode: mode)
      }
      ins.addressSize = UInt8(asize)
      rmOperand = Operand(.memory, size: form.memorySize != 0 ? form.memorySize : (fields.l ? 32 : 16))
      ins.hasMemoryOperand = true
      if segment != 0xFF { ins.segment = segment }
    }
    if form.takesImmediate { ins.immediate = UInt64(r.next()) }
    if r.truncated { return .truncated }
    if r.position > 15 { return .tooLong }
    ins.operation = .avx
    ins.vex = fields
    ins.operands = (Operand(.xmm, size: 16, reg: regNumber), rmOperand, .none)
    ins.operandCount = hasModRM ? 2 : 0
    ins.operandSize = fields.l ? 32 : 16
    if ins.addressSize == 0 { ins.addressSize = mode == .bits64 ? 8 : 4 }
    ins.prefixes = prefixes
    ins.map = map
    ins.opcode = opcode
    ins.modrm = modrm
    ins.length = UInt8(r.position)
    return .ok
  }
}

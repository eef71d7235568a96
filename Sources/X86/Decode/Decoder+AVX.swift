extension Decoder {
  /// The ModRM memory operand of a VEX- or EVEX-encoded instruction (16-bit addressing where the
  /// address size allows it), with an explicit segment override applied.
  static func decodeVectorMemory(
    _ ins: inout DecodedInstruction, _ r: inout ByteReader, modrm: UInt8, rex: UInt8, prefixes: Prefixes,
    segment: UInt8, mode: CodeMode
  ) {
    let asize = mode == .bits64 ? (prefixes.contains(.addressSize) ? 4 : 8) : (prefixes.contains(.addressSize) ? 2 : 4)
    if asize == 2 {
      decodeModRM16(&ins, &r, modrm: modrm)
    } else {
      decodeModRM32(&ins, &r, modrm: modrm, rex: rex, asize: asize, mode: mode)
    }
    ins.addressSize = UInt8(asize)
    ins.hasMemoryOperand = true
    if segment != 0xFF { ins.segment = segment }
  }

  /// The fields every VEX/EVEX decode ends with; returns `.ok`.
  static func finishVectorInstruction(
    _ ins: inout DecodedInstruction, _ r: ByteReader, prefixes: Prefixes, map: UInt8, opcode: UInt8, modrm: UInt8,
    mode: CodeMode
  ) -> Status {
    if ins.addressSize == 0 { ins.addressSize = mode == .bits64 ? 8 : 4 }
    ins.prefixes = prefixes
    ins.map = map
    ins.opcode = opcode
    ins.modrm = modrm
    ins.length = UInt8(r.position)
    return .ok
  }

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
      decodeVectorMemory(&ins, &r, modrm: modrm, rex: rex, prefixes: prefixes, segment: segment, mode: mode)
      rmOperand = Operand(.memory, size: form.memorySize != 0 ? form.memorySize : (fields.l ? 32 : 16))
    }
    if form.takesImmediate { ins.immediate = UInt64(r.next()) }
    if r.truncated { return .truncated }
    if r.position > 15 { return .tooLong }
    ins.operation = .avx
    ins.vex = fields
    ins.operands = (Operand(.xmm, size: 16, reg: regNumber), rmOperand, .none)
    ins.operandCount = hasModRM ? 2 : 0
    ins.operandSize = fields.l ? 32 : 16
    return finishVectorInstruction(&ins, r, prefixes: prefixes, map: map, opcode: opcode, modrm: modrm, mode: mode)
  }
}

extension Decoder {
  /// An EVEX-encoded AVX-512 instruction (`EVEXForms`), from the byte after 62: the three payload
  /// bytes (register extensions, map, W, vvvv, pp, z, L'L, b, V', aaa), the opcode, ModRM with a
  /// disp8 scaled by N (EVEX's compressed displacement), and an imm8 where the form takes one.
  /// Registers run to 31. Operands: 0 = ModRM.reg, 1 = ModRM.rm (register or memory).
  static func decodeEVEX(
    _ ins: inout DecodedInstruction, _ r: inout ByteReader, prefixes: Prefixes, segment: UInt8, mode: CodeMode
  ) -> Status {
    if !prefixes.intersection([.operandSize, .rep, .repne, .lock, .rex]).isEmpty { return .undefined }
    let p0 = r.next()
    let p1 = r.next()
    let p2 = r.next()
    let opcode = r.next()
    let modrm = r.next()
    if r.truncated { return .truncated }
    guard p0 & 0x08 == 0, p1 & 0x04 != 0 else { return .undefined }
    let long = mode == .bits64
    let rexR: UInt8 = long && p0 & 0x80 == 0 ? 8 : 0
    let rexX: UInt8 = long && p0 & 0x40 == 0 ? 1 : 0
    let rexB: UInt8 = long && p0 & 0x20 == 0 ? 8 : 0
    let rexR2: UInt8 = long && p0 & 0x10 == 0 ? 16 : 0
    let map = p0 & 7
    var fields = VEXFields()
    fields.w = p1 & 0x80 != 0
    fields.vvvv = ((~p1 >> 3) & 15 | (long && p2 & 0x08 == 0 ? 16 : 0)) & (long ? 31 : 7)
    fields.pp = p1 & 3
    fields.zeroing = p2 & 0x80 != 0
    let lengthCode = (p2 >> 5) & 3
    let broadcast = p2 & 0x10 != 0
    fields.mask = p2 & 7
    guard lengthCode < 3, !broadcast else { return .undefined }
    fields.vectorBytes = 16 << lengthCode
    fields.l = lengthCode != 0
    guard let form = EVEXForms.form(map: map, opcode: opcode, pp: fields.pp, w: fields.w) else { return .undefined }
    if fields.zeroing && (fields.mask == 0 || form.layout == .mr) { return .undefined }
    switch form.layout {
    case .rm, .mr, .rmi:
      if fields.vvvv != 0 { return .undefined }  // EVEX.vvvv and V' must be 1111b/1 when unused
    default: break
    }
    let regNumber = ((modrm >> 3) & 7) | rexR | rexR2
    var rmOperand = Operand(.xmm, size: fields.vectorBytes, reg: (modrm & 7) | rexB | (rexX << 4))
    if modrm < 0xC0 {
      if !long && prefixes.contains(.addressSize) { return .undefined }  // no 16-bit addressing in EVEX
      let rex: UInt8 = (rexB != 0 ? 1 : 0) | (rexX != 0 ? 2 : 0) | (rexR != 0 ? 4 : 0)
      decodeVectorMemory(&ins, &r, modrm: modrm, rex: rex, prefixes: prefixes, segment: segment, mode: mode)
      let n = form.elementMemory != 0 ? form.elementMemory : fields.vectorBytes
      if modrm >> 6 == 1 { ins.displacement *= Int64(n) }
      rmOperand = Operand(.memory, size: n)
    } else if form.layout == .mr && form.generalRM == 0 && form.mnemonic == "vmovntdq" {
      return .undefined  // a non-temporal store needs memory
    }
    if form.takesImmediate { ins.immediate = UInt64(r.next()) }
    if r.truncated { return .truncated }
    if r.position > 15 { return .tooLong }
    ins.operation = .avx512
    ins.vex = fields
    ins.operands = (Operand(.xmm, size: fields.vectorBytes, reg: regNumber), rmOperand, .none)
    ins.operandCount = 2
    ins.operandSize = fields.vectorBytes
    return finishVectorInstruction(&ins, r, prefixes: prefixes, map: map, opcode: opcode, modrm: modrm, mode: mode)
  }
}

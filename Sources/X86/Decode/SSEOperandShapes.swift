/// The operand shapes of map-1 SSE instructions that the opcode table's generic `Vx,Wx` (an XMM
/// register and a 16-byte memory operand) does not capture. Decoding them right matters for the
/// disassembly (`dword ptr` for MOVSS, `rax` for CVTSI2SD) and for any later executor; lengths do
/// not change. The mandatory prefix picks the form, as in the SDM's opcode map: none (packed
/// single), 66 (packed double), F3 (scalar single), F2 (scalar double).
enum SSEOperandShapes {
  /// The column of the mandatory prefix: 0 none, 1 66, 2 F3, 3 F2.
  static func column(_ prefixes: Prefixes) -> Int {
    prefixes.contains(.rep) ? 2 : prefixes.contains(.repne) ? 3 : prefixes.contains(.operandSize) ? 1 : 0
  }

  /// Rewrites `ins.operands` of a map-1 `.sse` instruction where its real shape differs.
  static func apply(to ins: inout DecodedInstruction) {
    let col = column(ins.prefixes)
    let wide: UInt8 = ins.prefixes.contains(.rexW) ? 8 : 4
    var o = ins.operands
    func memorySize(_ size: UInt8) {
      if o.0.kind == .memory { o.0.size = size }
      if o.1.kind == .memory { o.1.size = size }
    }
    switch (ins.opcode, col) {
    // Scalar single / double arithmetic, moves and compares: 4- or 8-byte memory operands.
    case (0x10, 2), (0x11, 2), (0x51, 2), (0x58, 2), (0x59, 2), (0x5C, 2), (0x5D, 2), (0x5E, 2), (0x5F, 2),
      (0xC2, 2), (0x5A, 2):
      memorySize(4)
    case (0x10, 3), (0x11, 3), (0x51, 3), (0x58, 3), (0x59, 3), (0x5C, 3), (0x5D, 3), (0x5E, 3), (0x5F, 3),
      (0xC2, 3), (0x5A, 3), (0x5A, 0), (0x12, 3), (0xE6, 2), (0xD6, 1):
      memorySize(8)
    // MOVLPS/MOVHPS/MOVLPD/MOVHPD: 8 bytes of memory.
    case (0x12, 0), (0x13, 0), (0x16, 0), (0x17, 0), (0x12, 1), (0x13, 1), (0x16, 1), (0x17, 1):
      memorySize(8)
    // (U)COMISS / (U)COMISD.
    case (0x2E, 0), (0x2F, 0): memorySize(4)
    case (0x2E, 1), (0x2F, 1): memorySize(8)
    // CVTPI2PS/PD: the source is an MMX register or 8 bytes of memory.
    case (0x2A, 0), (0x2A, 1):
      if o.1.kind == .xmm { o.1 = Operand(.mmx, size: 8, reg: o.1.reg & 7) } else { memorySize(8) }
    // CVTSI2SS/SD: the source is a general register or memory of the operand size (REX.W: 64-bit).
    case (0x2A, 2), (0x2A, 3):
      o.1 = o.1.kind == .xmm ? Operand(.gpr, size: wide, reg: o.1.reg) : Operand(.memory, size: wide)
    // CVT(T)PS2PI / CVT(T)PD2PI: the destination is an MMX register.
    case (0x2C, 0), (0x2D, 0), (0x2C, 1), (0x2D, 1):
      o.0 = Operand(.mmx, size: 8, reg: o.0.reg & 7)
      if col == 0 { memorySize(8) }
    // CVT(T)SS2SI / CVT(T)SD2SI: the destination is a general register (REX.W: 64-bit).
    case (0x2C, 2), (0x2D, 2), (0x2C, 3), (0x2D, 3):
      o.0 = Operand(.gpr, size: wide, reg: o.0.reg)
      memorySize(col == 2 ? 4 : 8)
    // F3 0F 7E: MOVQ xmm, xmm/m64 (the table's entry is MOVD/MOVQ r/m, xmm for the other columns).
    case (0x7E, 2):
      let register = o.0
      o.0 = Operand(.xmm, size: 16, reg: o.1.reg)
      o.1 = register.kind == .memory ? Operand(.memory, size: 8) : Operand(.xmm, size: 16, reg: register.reg)
    // PINSRW xmm|mm, r32/m16; PEXTRW r32, xmm|mm (the MMX forms without prefix).
    case (0xC4, 0), (0xC4, 1):
      if col == 0 { o.0 = Operand(.mmx, size: 8, reg: o.0.reg & 7) }
      memorySize(2)
    case (0xC5, 0):
      o.1 = Operand(.mmx, size: 8, reg: o.1.reg & 7)
    // MOVQ2DQ xmm, mm and MOVDQ2Q mm, xmm (the table's D6 entry is MOVQ xmm/m64, xmm).
    case (0xD6, 2):
      let (rm, register) = (o.0, o.1)
      o.0 = register
      o.1 = Operand(.mmx, size: 8, reg: rm.reg & 7)
    case (0xD6, 3):
      let (rm, register) = (o.0, o.1)
      o.0 = Operand(.mmx, size: 8, reg: register.reg & 7)
      o.1 = rm
    // The MMX forms (no prefix) of 0F 60-7F and D1-FE: 8 bytes of memory, 4 for PUNPCKL*.
    case (0x60...0x62, 0): memorySize(4)
    case (0x63...0x6D, 0), (0x6F...0x7D, 0), (0x7F, 0), (0xD1...0xFE, 0): memorySize(8)
    default:
      return
    }
    ins.operands = o
  }

  /// Rewrites `ins.operands` of a 0F 38 / 0F 3A `.sse` instruction (decoded as `Vx,Wx[,Ib]`)
  /// where its real shape differs: the unprefixed SSSE3 forms on MMX registers, the narrow
  /// memory operands of PMOVSX/ZX, ROUNDSS/SD and INSERTPS, the general-register operands of
  /// PEXTR*, EXTRACTPS and PINSR*, and the implicit XMM0 of the variable blends. CRC32 has its own
  /// table entry and is left alone.
  static func applyThreeByteMap(to ins: inout DecodedInstruction) {
    let col = column(ins.prefixes)
    if ins.map == 2 && (ins.opcode == 0xF0 || ins.opcode == 0xF1) { return }
    var o = ins.operands
    let wide: UInt8 = ins.prefixes.contains(.rexW) ? 8 : 4
    func memorySize(_ size: UInt8) {
      if o.1.kind == .memory { o.1.size = size }
    }
    /// The ModRM.rm operand as a general register of `size` bytes, or memory of `memory` bytes.
    func general(_ rm: Operand, size: UInt8, memory: UInt8) -> Operand {
      rm.kind == .memory ? Operand(.memory, size: memory) : Operand(.gpr, size: size, reg: rm.reg)
    }
    switch (ins.map, ins.opcode) {
    case (2, 0x00...0x0B), (2, 0x1C...0x1E), (3, 0x0F):
      guard col == 0 else { return }
      o.0 = Operand(.mmx, size: 8, reg: o.0.reg & 7)
      o.1 = o.1.kind == .memory ? Operand(.memory, size: 8) : Operand(.mmx, size: 8, reg: o.1.reg & 7)
    case (2, 0x10), (2, 0x14), (2, 0x15):
      o.2 = Operand(.xmm, size: 16, reg: 0)
      ins.operandCount = 3
    case (2, 0x20), (2, 0x23), (2, 0x25), (2, 0x30), (2, 0x33), (2, 0x35): memorySize(8)
    case (2, 0x21), (2, 0x24), (2, 0x31), (2, 0x34): memorySize(4)
    case (2, 0x22), (2, 0x32): memorySize(2)
    case (3, 0x0A), (3, 0x21): memorySize(4)
    case (3, 0x0B): memorySize(8)
    case (3, 0x14), (3, 0x15), (3, 0x16), (3, 0x17):  // PEXTRB/W/D/Q, EXTRACTPS r/m, xmm, imm8
      let memory: UInt8 = ins.opcode == 0x14 ? 1 : ins.opcode == 0x15 ? 2 : ins.opcode == 0x16 ? wide : 4
      let register = o.0
      o.0 = general(o.1, size: ins.opcode == 0x16 ? wide : 4, memory: memory)
      o.1 = register
    case (3, 0x20), (3, 0x22):  // PINSRB, PINSRD/Q xmm, r/m, imm8
      o.1 = general(o.1, size: ins.opcode == 0x22 ? wide : 4, memory: ins.opcode == 0x20 ? 1 : wide)
    default:
      return
    }
    ins.operands = o
  }
}

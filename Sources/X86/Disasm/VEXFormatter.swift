/// Intel-syntax text of `.avx` instructions, as llvm-objdump prints them: the operands of the
/// instruction's `VEXForm` in its layout, vector registers as XMM or YMM by VEX.L, mask registers
/// as k0-k7.
enum VEXFormatter {
  static func text(_ ins: DecodedInstruction, address: UInt64) -> String? {
    let v = ins.vex
    guard
      let form = VEXForms.form(
        map: ins.map, opcode: ins.opcode, pp: v.pp, w: v.w, l: v.l, reg: (ins.modrm >> 3) & 7)
    else { return nil }
    func register(_ n: UInt8, _ registers: VEXForm.Registers, xmmOnly: Bool = false) -> String {
      switch registers {
      case .mask: return "k\(n & 7)"
      case .xmm: return "xmm\(n)"
      case .vector: return (v.l && !xmmOnly ? "ymm" : "xmm") + "\(n)"
      }
    }
    let r: String =
      form.generalReg != 0
      ? Disassembler.registerName(Int(ins.operands.0.reg), size: Int(form.generalReg))
      : register(ins.operands.0.reg, form.registers, xmmOnly: form.xmmReg)
    let m: String
    if ins.operands.1.kind == .memory {
      m = Disassembler.memoryText(ins, size: Int(ins.operands.1.size))
    } else if form.generalRM != 0 {
      m = Disassembler.registerName(Int(ins.operands.1.reg), size: Int(form.generalRM))
    } else {
      m = register(ins.operands.1.reg, form.registers, xmmOnly: form.xmmRM)
    }
    let vv = register(v.vvvv, form.registers)
    let imm = Disassembler.hex(ins.immediate & 0xFF)
    let operands: [String]
    switch form.layout {
    case .none: operands = []
    case .rm: operands = [r, m]
    case .mr: operands = [m, r]
    case .rvm: operands = [r, vv, m]
    case .vm: operands = [vv, m]
    case .rmi: operands = [r, m, imm]
    case .mri: operands = [m, r, imm]
    case .rvmi: operands = [r, vv, m, imm]
    case .vmi: operands = [vv, m, imm]
    case .rvms: operands = [r, vv, m, register(UInt8(ins.immediate >> 4) & 15, form.registers)]
    }
    return operands.isEmpty ? form.mnemonic : form.mnemonic + "\t" + operands.joined(separator: ", ")
  }
}

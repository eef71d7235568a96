/// Intel-syntax text of `.avx512` instructions, as llvm-objdump prints them: XMM/YMM/ZMM by the
/// vector length, registers up to 31, the opmask and zeroing after the destination (`{k1} {z}`),
/// compare predicates folded into the mnemonic (`vpcmpltub`).
enum EVEXFormatter {
  /// llvm-objdump's names for the VPCMP predicates 0-7 (3 and 7 keep the generic form).
  static let predicates: [Int: String] = [0: "eq", 1: "lt", 2: "le", 4: "neq", 5: "nlt", 6: "nle"]

  static func text(_ ins: DecodedInstruction, address: UInt64) -> String? {
    let v = ins.vex
    guard let form = EVEXForms.form(map: ins.map, opcode: ins.opcode, pp: v.pp, w: v.w) else { return nil }
    func vector(_ n: UInt8, bytes: UInt8 = v.vectorBytes) -> String {
      (bytes == 64 ? "zmm" : bytes == 32 ? "ymm" : "xmm") + "\(n)"
    }
    var mnemonic = form.mnemonic
    var immediate: String? = form.takesImmediate ? Disassembler.hex(ins.immediate & 0xFF) : nil
    if let predicate = form.comparePredicate, let name = predicates[Int(ins.immediate & 7)], ins.immediate < 8 {
      mnemonic = predicate.stem + name + predicate.suffix
      immediate = nil
    }
    let r =
      form.maskDestination
      ? "k\(ins.operands.0.reg & 7)" : form.xmmReg ? "xmm\(ins.operands.0.reg)" : vector(ins.operands.0.reg)
    let m: String
    if ins.operands.1.kind == .memory {
      m = Disassembler.memoryText(ins, size: Int(ins.operands.1.size))
    } else if form.generalRM != 0 {
      m = Disassembler.registerName(Int(ins.operands.1.reg & 15), size: Int(form.generalRM))
    } else {
      m = form.xmmRM ? "xmm\(ins.operands.1.reg)" : vector(ins.operands.1.reg)
    }
    let masking = (v.mask != 0 ? " {k\(v.mask)}" : "") + (v.zeroing ? " {z}" : "")
    var operands: [String]
    switch form.layout {
    case .rm: operands = [r + masking, m]
    case .mr: operands = [m + masking, r]
    case .rvm: operands = [r + masking, vector(v.vvvv), m]
    case .rvmi: operands = [r + masking, vector(v.vvvv), m]
    case .rmi: operands = [r + masking, m]
    }
    if let immediate { operands.append(immediate) }
    return mnemonic + "\t" + operands.joined(separator: ", ")
  }
}

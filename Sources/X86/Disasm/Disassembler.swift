/// Intel-syntax disassembly spelled like `llvm-objdump -d --x86-asm-syntax=intel`.
public enum Disassembler {
  /// Disassembles the first instruction of `bytes`; nil when the bytes do not form a valid
  /// instruction (or are cut short).
  public static func disassemble(
    _ bytes: [UInt8], mode: CodeMode, address: UInt64 = 0, model: CPUModel = .host64
  ) -> (length: Int, text: String)? {
    guard case .success(let ins) = Decoder.decode(bytes, mode: mode, model: model) else { return nil }
    guard let text = format(ins, mode: mode, address: address) else { return nil }
    return (Int(ins.length), text)
  }

  static let gpr64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + (8...15).map { "r\($0)" }
  static let gpr32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] + (8...15).map { "r\($0)d" }
  static let gpr16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"] + (8...15).map { "r\($0)w" }
  static let gpr8 = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"] + (8...15).map { "r\($0)b" }
  static let gpr8High = ["ah", "ch", "dh", "bh"]

  /// The name of general register `reg` at `size` bytes.
  public static func registerName(_ reg: Int, size: Int) -> String {
    let r = reg & 15
    switch size {
    case 1: return gpr8[r]
    case 2: return gpr16[r]
    case 4: return gpr32[r]
    default: return gpr64[r]
    }
  }

  static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

  static func signedHex(_ v: Int64) -> String { v < 0 ? "-" + hex(v.magnitude) : hex(UInt64(v)) }

  static func sizeKeyword(_ size: Int) -> String {
    switch size {
    case 1: return "byte ptr "
    case 2: return "word ptr "
    case 4: return "dword ptr "
    case 6: return "fword ptr "
    case 8: return "qword ptr "
    case 10: return "tbyte ptr "
    case 16: return "xmmword ptr "
    case 32: return "ymmword ptr "
    case 64: return "zmmword ptr "
    default: return ""
    }
  }

  /// The bracketed memory expression, with an explicit segment override when present.
  static func memoryText(_ ins: DecodedInstruction, size: Int) -> String {
    var parts: [String] = []
    let asize = Int(ins.addressSize)
    if ins.base == DecodedInstruction.ripBase {
      parts.append(asize == 4 ? "eip" : "rip")
    } else if ins.base != DecodedInstruction.noRegister {
      parts.append(registerName(Int(ins.base), size: asize))
    }
    if ins.index != DecodedInstruction.noRegister {
      let name = registerName(Int(ins.index), size: asize)
      parts.append(ins.scale == 1 ? name : "\(ins.scale)*\(name)")
    }
    var text = parts.joined(separator: " + ")
    var disp = ins.displacement
    if parts.isEmpty {
      let mask: UInt64 = asize == 8 ? ~0 : (asize == 4 ? 0xFFFF_FFFF : 0xFFFF)
      text = hex(UInt64(bitPattern: disp) & mask)
    } else if disp != 0 {
      if asize == 2 { disp = Int64(Int16(truncatingIfNeeded: disp)) }
      text += disp < 0 ? " - " + hex(disp.magnitude) : " + " + hex(UInt64(disp))
    }
    var seg = ""
    if ins.prefixes.contains(.segment) { seg = (SegmentRegister(rawValue: Int(ins.segment))?.name ?? "ds") + ":" }
    return sizeKeyword(size) + seg + "[" + text + "]"
  }

  /// Whether an immediate prints signed, as llvm-objdump spells it: sign-extended encodings (an
  /// imm8 widened to the operand size, an imm32 widened to 64 bits) and byte-sized data operands
  /// print signed (`add eax, -0x1`, `mov al, -0x1`); an immediate as wide as its 16- or 32-bit
  /// operand prints unsigned (`mov eax, 0xffffffff`), as do shift and rotate counts, bit indexes,
  /// ports, interrupt vectors and vector-instruction selectors (`pshufd xmm0, xmm1, 0xe1`).
  static func immediateIsSigned(_ ins: DecodedInstruction, _ o: Operand) -> Bool {
    if o.size == 8 { return true }
    if ins.map == 0 && (ins.opcode == 0x83 || ins.opcode == 0x6B || ins.opcode == 0x6A) { return true }
    switch ins.operation {
    case .xabort: return true
    case .sse, .in, .out, .int, .shl, .shr, .sal, .sar, .rol, .ror, .rcl, .rcr, .shld, .shrd, .bt, .bts, .btr, .btc,
      .rorx:
      return false
    default: return o.size == 1
    }
  }

  static func immediateText(_ value: UInt64, size: Int, signed: Bool = true) -> String {
    if !signed && size < 8 { return hex(value & ((UInt64(1) << UInt64(size * 8)) - 1)) }
    switch size {
    case 1: return signedHex(Int64(Int8(truncatingIfNeeded: value)))
    case 2: return signedHex(Int64(Int16(truncatingIfNeeded: value)))
    case 4: return signedHex(Int64(Int32(truncatingIfNeeded: value)))
    default: return signedHex(Int64(bitPattern: value))
    }
  }

  static func operandText(_ ins: DecodedInstruction, _ o: Operand, address: UInt64, memorySize: Int? = nil) -> String {
    switch o.kind {
    case .none: return ""
    case .gpr: return registerName(Int(o.reg), size: Int(o.size))
    case .gprHigh8: return gpr8High[Int(o.reg) & 3]
    case .memory: return memoryText(ins, size: memorySize ?? Int(o.size))
    case .immediate:
      let v = o.reg == 1 ? ins.immediate2 : ins.immediate
      return immediateText(v, size: Int(o.size), signed: immediateIsSigned(ins, o))
    case .relative:
      var target = address &+ UInt64(ins.length) &+ ins.immediate
      if o.size == 2 { target &= 0xFFFF } else if o.size == 4 { target &= 0xFFFF_FFFF }
      return hex(target)
    case .segment: return SegmentRegister(rawValue: Int(o.reg))?.name ?? "?"
    case .control: return "cr\(o.reg)"
    case .debug: return "dr\(o.reg)"
    case .xmm: return "xmm\(o.reg)"
    case .mmx: return "mm\(o.reg & 7)"
    case .x87: return o.reg == 0 ? "st" : "st(\(o.reg))"
    case .farPointer: return hex(ins.immediate2) + ", " + hex(ins.immediate)
    }
  }

  static func sizeSuffix(_ size: Int) -> String {
    switch size {
    case 1: return "b"
    case 2: return "w"
    case 4: return "d"
    default: return "q"
    }
  }

  static func format(_ ins: DecodedInstruction, mode: CodeMode, address: UInt64) -> String? {
    if ins.prefixes.contains(.undocumented) { return nil }
    let osize = Int(ins.operandSize)
    let asize = Int(ins.addressSize)
    var name: String
    var operands: [String]? = nil
    var prefix = ins.prefixes.contains(.lock) ? "lock " : ""
    let cc = MnemonicTables.conditionNames[Int(ins.condition & 15)]
    switch ins.operation {
    case .invalid, .setmo: return nil
    case .jcc: name = "j" + cc
    case .setcc: name = "set" + cc
    case .cmovcc: name = "cmov" + cc
    case .cbw: name = osize == 2 ? "cbw" : osize == 4 ? "cwde" : "cdqe"
    case .cwd: name = osize == 2 ? "cwd" : osize == 4 ? "cdq" : "cqo"
    case .pushf: name = mode == .bits64 ? (osize == 2 ? "pushf" : "pushfq") : (osize == 4 ? "pushfd" : "pushf")
    case .popf: name = mode == .bits64 ? (osize == 2 ? "popf" : "popfq") : (osize == 4 ? "popfd" : "popf")
    case .pusha: name = osize == 4 ? "pushal" : "pushaw"
    case .popa: name = osize == 4 ? "popal" : "popaw"
    case .iret: name = osize == 2 ? "iret" : osize == 4 ? "iretd" : "iretq"
    case .jcxz: name = asize == 2 ? "jcxz" : asize == 4 ? "jecxz" : "jrcxz"
    case .movs, .cmps, .stos, .lods, .scas, .ins, .outs:
      name = String(describing: ins.operation) + sizeSuffix(osize)
      if ins.prefixes.contains(.rep) { prefix += "rep " } else if ins.prefixes.contains(.repne) { prefix += "repne " }
      operands = stringOperands(ins)
    case .movSeg, .movToSeg, .movCR, .movToCR, .movDR, .movToDR: name = "mov"
    case .mov:
      name = "mov"
      if mode == .bits64 {
        if ins.map == 0 && ins.opcode >= 0xA0 && ins.opcode <= 0xA3 && asize == 8 { name = "movabs" }
        if ins.map == 0 && (0xB8...0xBF).contains(ins.opcode) && osize == 8 { name = "movabs" }
      }
    case .callFar:
      name = ins.operands.0.kind == .farPointer || osize == 2 ? "lcall" : "call"
      if ins.operands.0.kind == .memory { operands = [memoryText(ins, size: 0)] }
    case .jmpFar:
      name = ins.operands.0.kind == .farPointer || osize == 2 ? "ljmp" : "jmp"
      if ins.operands.0.kind == .memory { operands = [memoryText(ins, size: 0)] }
    case .retf, .ret:
      name = String(describing: ins.operation)
      if ins.operation == .retf && ins.prefixes.contains(.rexW) { name = "retfq" }
      if ins.operandCount > 0 { operands = [immediateText(ins.immediate, size: 2)] }
    case .xlat: name = "xlatb"
    case .vmcall: name = ins.modrm == 0xD9 ? "vmmcall" : "vmcall"
    case .int1, .int3, .salc: name = String(describing: ins.operation)
    case .aam, .aad:
      name = String(describing: ins.operation)
      operands = ins.immediate == 10 ? [] : [hex(ins.immediate)]
    case .enter:
      name = "enter"
      operands = [immediateText(ins.immediate, size: 2), immediateText(ins.immediate2, size: 1)]
    case .int:
      name = "int"
      operands = [hex(ins.immediate)]
    case .in, .out:
      name = String(describing: ins.operation)
      if ins.operands.0.kind == .immediate {
        operands = [hex(ins.immediate), operandText(ins, ins.operands.1, address: address)]
      }
      if ins.operands.1.kind == .immediate {
        operands = [operandText(ins, ins.operands.0, address: address), hex(ins.immediate)]
      }
    case .lea, .les, .lds, .lss, .lfs, .lgs:
      name = String(describing: ins.operation)
      operands = [operandText(ins, ins.operands.0, address: address), memoryText(ins, size: 0)]
    case .bound:
      name = "bound"
      operands = [operandText(ins, ins.operands.0, address: address), memoryText(ins, size: osize * 2)]
    case .sgdt, .sidt, .lgdt, .lidt, .invlpg, .fxsave, .fxrstor, .xsave, .xrstor, .xsaveopt:
      name = String(describing: ins.operation)
      let saveRestore: [Operation] = [.fxsave, .fxrstor, .xsave, .xrstor, .xsaveopt]
      if saveRestore.contains(ins.operation) && ins.prefixes.contains(.rexW) { name += "64" }
      operands = [memoryText(ins, size: ins.operation == .invlpg ? 1 : 0)]
    case .clflush:
      name = "clflush"
      operands = [memoryText(ins, size: 1)]
    case .prefetch:
      name = ["prefetchnta", "prefetcht0", "prefetcht1", "prefetcht2"][Int(ins.condition & 3)]
      operands = [memoryText(ins, size: 1)]
    case .nop:
      name = "nop"
      if ins.map == 1 && ins.opcode == 0x0D {
        let reg = Int((ins.modrm >> 3) & 7)
        name = reg == 1 ? "prefetchw" : reg == 2 ? "prefetchwt1" : "prefetch"
        operands = [ins.modrmIsRegister ? operandText(ins, ins.operands.0, address: address) : memoryText(ins, size: 1)]
      }
    case .cmpxchg8b, .cmpxchg16b:
      name = String(describing: ins.operation)
      operands = [memoryText(ins, size: ins.operation == .cmpxchg8b ? 8 : 16)]
    case .x87:
      guard let text = x87Text(ins) else { return nil }
      return (ins.prefixes.contains(.rep) ? "rep\t" : ins.prefixes.contains(.repne) ? "repne\t" : "") + text
    case .sse: return sseText(ins, address: address)
    case .avx: return VEXFormatter.text(ins, address: address)
    case .avx512: return EVEXFormatter.text(ins, address: address)
    case .xabort:
      name = "xabort"
      operands = [immediateText(ins.immediate, size: 1)]
    case .wait: name = "wait"
    case .shl, .shr, .sal, .sar, .rol, .ror, .rcl, .rcr:
      name = String(describing: ins.operation)
      if ins.map == 0 && (ins.opcode == 0xD0 || ins.opcode == 0xD1) {
        operands = [operandText(ins, ins.operands.0, address: address)]
      }
    default:
      name = String(describing: ins.operation)
    }
    let mandatoryPrefix: Set<Operation> = [
      .movs, .cmps, .stos, .lods, .scas, .ins, .outs, .pause, .tzcnt, .lzcnt, .popcnt, .endbr64, .endbr32,
      .rdfsbase, .rdgsbase, .wrfsbase, .wrgsbase, .rdpid, .sse,
    ]
    let hleCapable =
      ins.operands.0.kind == .memory
      && (ins.prefixes.contains(.lock) || ins.operation == .xchg
        || (ins.operation == .mov && [0x88, 0x89, 0xC6, 0xC7].contains(ins.opcode) && ins.prefixes.contains(.rep)))
    if hleCapable || (ins.operation == .xchg && ins.map == 0 && ins.opcode >= 0x90) {
      if ins.prefixes.contains(.rep) {
        prefix = "xrelease\t" + prefix
      } else if ins.prefixes.contains(.repne) {
        prefix = "xacquire\t" + prefix
      }
    } else if !mandatoryPrefix.contains(ins.operation) {
      if ins.prefixes.contains(.rep) {
        prefix = "rep\t" + prefix
      } else if ins.prefixes.contains(.repne) {
        prefix = "repne\t" + prefix
      }
    }
    let addressUsers: Set<Operation> = [
      .movs, .cmps, .stos, .lods, .scas, .ins, .outs, .jcxz, .loop, .loope, .loopne, .xlat, .monitor,
    ]
    if ins.prefixes.contains(.addressSize) && !ins.hasMemoryOperand && !addressUsers.contains(ins.operation) {
      prefix = (mode == .bits32 ? "addr16\t" : "addr32\t") + prefix
    }
    var texts =
      operands ?? (0..<Int(ins.operandCount)).map { operandText(ins, ins.operand($0), address: address) }
    // XCHG between two registers is symmetric; llvm-objdump names the accumulator first for
    // 90+r and the ModRM.reg register first for 86/87, and the comparison follows it.
    if ins.operation == .xchg && ins.map == 0 && texts.count == 2
      && ((0x91...0x97).contains(ins.opcode) || ((ins.opcode == 0x86 || ins.opcode == 0x87) && ins.modrmIsRegister))
    {
      texts.swapAt(0, 1)
    }
    return prefix + (texts.isEmpty ? name : name + "\t" + texts.joined(separator: ", "))
  }

  static func stringOperands(_ ins: DecodedInstruction) -> [String] {
    let size = Int(ins.operandSize)
    let a = Int(ins.addressSize)
    let si = registerName(6, size: a)
    let di = registerName(7, size: a)
    let seg = ins.prefixes.contains(.segment) ? (SegmentRegister(rawValue: Int(ins.segment))?.name ?? "ds") + ":" : ""
    let src = sizeKeyword(size) + seg + "[" + si + "]"
    let dst = sizeKeyword(size) + "es:[" + di + "]"
    let acc = registerName(0, size: size)
    switch ins.operation {
    case .movs: return [dst, src]
    case .cmps: return [src, dst]
    case .stos: return [dst, acc]
    case .lods: return [acc, src]
    case .scas: return [acc, dst]
    case .ins: return [dst, "dx"]
    case .outs: return ["dx", src]
    default: return []
    }
  }

  static func x87Text(_ ins: DecodedInstruction) -> String? {
    let reg = Int((ins.modrm >> 3) & 7)
    let table = Int(ins.opcode) - 0xD8
    guard table >= 0 && table < 8 else { return nil }
    if !ins.modrmIsRegister {
      let name = MnemonicTables.x87Memory[table][reg]
      if name.isEmpty { return nil }
      return name + "\t" + memoryText(ins, size: MnemonicTables.x87MemorySize[table][reg])
    }
    guard let (name, style) = MnemonicTables.x87Register(opcode: ins.opcode, modrm: ins.modrm) else { return nil }
    let i = Int(ins.modrm & 7)
    let sti = "st(\(i))"
    switch style {
    case 1: return name + "\t" + sti
    case 2: return name + "\tst, " + sti
    case 3: return name + "\t" + sti + ", st"
    case 4: return name + "\tax"
    default: return name
    }
  }

  static func sseText(_ ins: DecodedInstruction, address: UInt64) -> String? {
    var name = ""
    let p = ins.prefixes
    let column = p.contains(.rep) ? 2 : p.contains(.repne) ? 3 : p.contains(.operandSize) ? 1 : 0
    if ins.map == 1 {
      if let groups = MnemonicTables.sseShiftGroups[ins.opcode] {
        name = groups[Int((ins.modrm >> 3) & 7)]
      } else if let row = MnemonicTables.sse[ins.opcode] {
        let names = row.split(separator: "|", omittingEmptySubsequences: false)
        if column < names.count { name = String(names[column]) }
        if name == "movlps" && ins.modrmIsRegister { name = "movhlps" }
        if name == "movhps" && ins.modrmIsRegister { name = "movlhps" }
        if ins.opcode == 0x6E || ins.opcode == 0x7E, p.contains(.rexW), column < 2 { name = "movq" }
      }
    } else if ins.map == 2 && (ins.opcode == 0xF0 || ins.opcode == 0xF1) && column == 3 {
      name = "crc32"
    } else if let names = ins.map == 2 ? OpcodeTables.map38[ins.opcode] : OpcodeTables.map3A[ins.opcode] {
      name = p.contains(.operandSize) ? names.1 : names.0
      if p.contains(.rexW) && (name == "pextrd" || name == "pinsrd") { name = name.dropLast() + "q" }
    }
    if ins.map == 1 && ins.opcode == 0xC2 && ins.immediate < 8 {
      let predicates = ["eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord"]
      let suffix = ["ps", "pd", "ss", "sd"][column]
      let texts = (0..<2).map { operandText(ins, ins.operand($0), address: address) }
      return "cmp" + predicates[Int(ins.immediate)] + suffix + "\t" + texts.joined(separator: ", ")
    }
    if name.isEmpty || name == "-" { return nil }
    let useMMX = column == 0 && ins.map == 1 && ((0x60...0x7F).contains(ins.opcode) || ins.opcode >= 0xD0)
    let texts = (0..<Int(ins.operandCount)).map { k -> String in
      var o = ins.operand(k)
      if useMMX && o.kind == .xmm { o.kind = .mmx }
      return operandText(ins, o, address: address)
    }
    return texts.isEmpty ? name : name + "\t" + texts.joined(separator: ", ")
  }
}

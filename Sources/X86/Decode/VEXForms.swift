/// The VEX-encoded AVX, AVX2 and AVX-512 mask-register (k) instructions the decoder knows, and the
/// shape of their operands. One table serves decoding (is the encoding valid, does it take an imm8)
/// and disassembly (mnemonic and operand order, as llvm-objdump prints them). Execution is #UD: the
/// model does not advertise AVX. Forms the table does not list decode as invalid.
public struct VEXForm: Sendable, Equatable {
  /// How the operands are laid out, in Intel order. `r` is ModRM.reg, `v` is VEX.vvvv, `m` is
  /// ModRM.rm (register or memory), `i` an imm8, `s` a register in imm8[7:4].
  public enum Layout: Sendable, Equatable {
    case none, rm, mr, rvm, vm, rmi, mri, rvmi, vmi, rvms
  }
  /// The class of each register operand.
  public enum Registers: Sendable, Equatable {
    /// Vector registers, XMM or YMM by VEX.L.
    case vector
    /// XMM whatever VEX.L says (scalar forms).
    case xmm
    /// Mask registers k0-k7.
    case mask
  }
  /// The mnemonic.
  public var mnemonic: String
  /// The operand layout.
  public var layout: Layout
  /// The class of the register operands.
  public var registers: Registers = .vector
  /// Bytes of the memory operand; 0: the vector length (16 or 32).
  public var memorySize: UInt8 = 0
  /// ModRM.reg (for `r` in `rm`/`rmi` layouts) is a general register of this size instead.
  public var generalReg: UInt8 = 0
  /// ModRM.rm in register form is a general register of this size instead.
  public var generalRM: UInt8 = 0
  /// The `m` operand in register form is always XMM (broadcast sources, 128-bit halves).
  public var xmmRM = false
  /// The `r` operand is always XMM (128-bit extract destinations are `m`; this is for loads).
  public var xmmReg = false
  /// ModRM must select a register (`reg`) or memory (`mem`); nil: either.
  public var requiresRegister: Bool? = nil

  var takesImmediate: Bool {
    switch layout {
    case .rmi, .mri, .rvmi, .vmi, .rvms: return true
    default: return false
    }
  }
}

enum VEXForms {
  /// The form of VEX map `map` (1 = 0F, 2 = 0F38, 3 = 0F3A), `opcode`, with mandatory prefix `pp`
  /// (0 none, 1 66, 2 F3, 3 F2), VEX.W, VEX.L and ModRM.reg `reg`; nil: #UD.
  static func form(map: UInt8, opcode: UInt8, pp: UInt8, w: Bool, l: Bool, reg: UInt8) -> VEXForm? {
    switch map {
    case 1: return map1(opcode, pp: pp, w: w, l: l, reg: reg)
    case 2: return map2(opcode, pp: pp, w: w, l: l)
    case 3: return map3(opcode, pp: pp, w: w, l: l)
    default: return nil
    }
  }

  /// Mask-register suffix by VEX.pp and VEX.W: w, q, b, d.
  static func maskSuffix(pp: UInt8, w: Bool) -> String? {
    switch (pp, w) {
    case (0, false): return "w"
    case (0, true): return "q"
    case (1, false): return "b"
    case (1, true): return "d"
    default: return nil
    }
  }

  /// Packed-integer and packed-FP operations of map 1 that take `vreg, vreg, vreg/mem` with the 66
  /// prefix (integer) or none/66 (FP logic and arithmetic): "v" + the SSE mnemonic.
  static let map1ThreeOperand: Set<UInt8> = Set(
    [0x14, 0x15, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5C, 0x5D, 0x5E, 0x5F]
      + Array(0x60...0x6D) + [0x74, 0x75, 0x76]
      + [0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD8, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF]
      + [0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE8, 0xE9, 0xEA, 0xEB, 0xEC, 0xED, 0xEE, 0xEF]
      + [0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE])

  static func sseName(_ opcode: UInt8, pp: UInt8) -> String? {
    guard let row = VEXMnemonics.sse[opcode] else { return nil }
    let names = row.split(separator: "|", omittingEmptySubsequences: false)
    guard Int(pp) < names.count, names[Int(pp)] != "-", !names[Int(pp)].isEmpty else { return nil }
    return String(names[Int(pp)])
  }

  static func map1(_ opcode: UInt8, pp: UInt8, w: Bool, l: Bool, reg: UInt8) -> VEXForm? {
    switch opcode {
    case 0x77 where pp == 0: return VEXForm(mnemonic: l ? "vzeroall" : "vzeroupper", layout: .none)
    case 0x10, 0x11:
      if pp < 2 { return VEXForm(mnemonic: pp == 0 ? "vmovups" : "vmovupd", layout: opcode == 0x10 ? .rm : .mr) }
      return nil  // VMOVSS/VMOVSD: not yet
    case 0x28,
      0x29 where pp < 2:
      return VEXForm(mnemonic: pp == 0 ? "vmovaps" : "vmovapd", layout: opcode == 0x28 ? .rm : .mr)
    case 0x2B where pp < 2:
      return VEXForm(mnemonic: pp == 0 ? "vmovntps" : "vmovntpd", layout: .mr, requiresRegister: false)
    case 0x6F,
      0x7F where pp == 1 || pp == 2:
      return VEXForm(mnemonic: pp == 1 ? "vmovdqa" : "vmovdqu", layout: opcode == 0x6F ? .rm : .mr)
    case 0xE7 where pp == 1: return VEXForm(mnemonic: "vmovntdq", layout: .mr, requiresRegister: false)
    case 0x6E where pp == 1 && !l:
      return VEXForm(
        mnemonic: w ? "vmovq" : "vmovd", layout: .rm, registers: .xmm, memorySize: w ? 8 : 4, generalRM: w ? 8 : 4)
    case 0x7E where pp == 1 && !l:
      return VEXForm(
        mnemonic: w ? "vmovq" : "vmovd", layout: .mr, registers: .xmm, memorySize: w ? 8 : 4, generalRM: w ? 8 : 4)
    case 0x7E where pp == 2 && !l: return VEXForm(mnemonic: "vmovq", layout: .rm, registers: .xmm, memorySize: 8)
    case 0xD6 where pp == 1 && !l: return VEXForm(mnemonic: "vmovq", layout: .mr, registers: .xmm, memorySize: 8)
    case 0xD7 where pp == 1:
      return VEXForm(mnemonic: "vpmovmskb", layout: .rm, generalReg: 4, requiresRegister: true)
    case 0x50 where pp < 2:
      return VEXForm(mnemonic: pp == 0 ? "vmovmskps" : "vmovmskpd", layout: .rm, generalReg: 4, requiresRegister: true)
    case 0x70 where pp >= 1:
      return VEXForm(mnemonic: ["", "vpshufd", "vpshufhw", "vpshuflw"][Int(pp)], layout: .rmi)
    case 0x71, 0x72,
      0x73 where pp == 1:
      guard let name = VEXMnemonics.shiftGroups[opcode]?[Int(reg)], !name.isEmpty else { return nil }
      return VEXForm(mnemonic: "v" + name, layout: .vmi, requiresRegister: true)
    case 0xC6 where pp < 2: return VEXForm(mnemonic: pp == 0 ? "vshufps" : "vshufpd", layout: .rvmi)
    // Mask registers (AVX-512 k0-k7, VEX-encoded).
    case 0x90:
      guard !l, let s = maskSuffix(pp: pp, w: w) else { return nil }
      return VEXForm(mnemonic: "kmov" + s, layout: .rm, registers: .mask, memorySize: maskBytes(s))
    case 0x91:
      guard !l, let s = maskSuffix(pp: pp, w: w) else { return nil }
      return VEXForm(
        mnemonic: "kmov" + s, layout: .mr, registers: .mask, memorySize: maskBytes(s), requiresRegister: false)
    case 0x92, 0x93:
      guard !l else { return nil }
      let s: String
      switch (pp, w) {
      case (0, false): s = "w"
      case (1, false): s = "b"
      case (3, false): s = "d"
      case (3, true): s = "q"
      default: return nil
      }
      let size: UInt8 = s == "q" ? 8 : 4
      if opcode == 0x92 {
        return VEXForm(mnemonic: "kmov" + s, layout: .rm, registers: .mask, generalRM: size, requiresRegister: true)
      }
      return VEXForm(mnemonic: "kmov" + s, layout: .rm, registers: .mask, generalReg: size, requiresRegister: true)
    case 0x98, 0x99:
      guard !l, let s = maskSuffix(pp: pp, w: w) else { return nil }
      return VEXForm(
        mnemonic: (opcode == 0x98 ? "kortest" : "ktest") + s, layout: .rm, registers: .mask, requiresRegister: true)
    case 0x44:
      guard !l, let s = maskSuffix(pp: pp, w: w) else { return nil }
      return VEXForm(mnemonic: "knot" + s, layout: .rm, registers: .mask, requiresRegister: true)
    case 0x41, 0x42, 0x45, 0x46, 0x47, 0x4A:
      guard l, let s = maskSuffix(pp: pp, w: w) else { return nil }
      let base = [0x41: "kand", 0x42: "kandn", 0x45: "kor", 0x46: "kxnor", 0x47: "kxor", 0x4A: "kadd"][opcode]!
      return VEXForm(mnemonic: base + s, layout: .rvm, registers: .mask, requiresRegister: true)
    case 0x4B:
      guard l else { return nil }
      let name: String
      switch (pp, w) {
      case (1, false): name = "kunpckbw"
      case (0, false): name = "kunpckwd"
      case (0, true): name = "kunpckdq"
      default: return nil
      }
      return VEXForm(mnemonic: name, layout: .rvm, registers: .mask, requiresRegister: true)
    default:
      guard map1ThreeOperand.contains(opcode), pp == 1 || (pp == 0 && opcode >= 0x54 && opcode <= 0x5F),
        let name = sseName(opcode, pp: pp)
      else { return nil }
      return VEXForm(mnemonic: "v" + name, layout: .rvm)
    }
  }

  static func maskBytes(_ suffix: String) -> UInt8 {
    switch suffix {
    case "b": return 1
    case "w": return 2
    case "d": return 4
    default: return 8
    }
  }

  static func map2(_ opcode: UInt8, pp: UInt8, w: Bool, l: Bool) -> VEXForm? {
    guard pp == 1 else { return nil }
    switch opcode {
    case 0x00...0x0B, 0x28, 0x29, 0x2B, 0x37...0x40:
      guard let name = VEXMnemonics.map38[opcode] else { return nil }
      return VEXForm(mnemonic: "v" + name, layout: .rvm)
    case 0x1C, 0x1D, 0x1E:
      return VEXForm(mnemonic: ["vpabsb", "vpabsw", "vpabsd"][Int(opcode - 0x1C)], layout: .rm)
    case 0x17: return VEXForm(mnemonic: "vptest", layout: .rm)
    case 0x36 where l && !w: return VEXForm(mnemonic: "vpermd", layout: .rvm)
    case 0x16 where l && !w: return VEXForm(mnemonic: "vpermps", layout: .rvm)
    case 0x45: return VEXForm(mnemonic: w ? "vpsrlvq" : "vpsrlvd", layout: .rvm)
    case 0x46 where !w: return VEXForm(mnemonic: "vpsravd", layout: .rvm)
    case 0x47: return VEXForm(mnemonic: w ? "vpsllvq" : "vpsllvd", layout: .rvm)
    case 0x78 where !w: return VEXForm(mnemonic: "vpbroadcastb", layout: .rm, memorySize: 1, xmmRM: true)
    case 0x79 where !w: return VEXForm(mnemonic: "vpbroadcastw", layout: .rm, memorySize: 2, xmmRM: true)
    case 0x58 where !w: return VEXForm(mnemonic: "vpbroadcastd", layout: .rm, memorySize: 4, xmmRM: true)
    case 0x59 where !w: return VEXForm(mnemonic: "vpbroadcastq", layout: .rm, memorySize: 8, xmmRM: true)
    case 0x18 where !w: return VEXForm(mnemonic: "vbroadcastss", layout: .rm, memorySize: 4, xmmRM: true)
    case 0x19 where !w && l: return VEXForm(mnemonic: "vbroadcastsd", layout: .rm, memorySize: 8, xmmRM: true)
    case 0x5A where !w && l:
      return VEXForm(mnemonic: "vbroadcasti128", layout: .rm, memorySize: 16, requiresRegister: false)
    case 0x1A where !w && l:
      return VEXForm(mnemonic: "vbroadcastf128", layout: .rm, memorySize: 16, requiresRegister: false)
    default: return nil
    }
  }

  static func map3(_ opcode: UInt8, pp: UInt8, w: Bool, l: Bool) -> VEXForm? {
    guard pp == 1 else { return nil }
    switch opcode {
    case 0x0F: return VEXForm(mnemonic: "vpalignr", layout: .rvmi)
    case 0x0E: return VEXForm(mnemonic: "vpblendw", layout: .rvmi)
    case 0x0C, 0x0D: return VEXForm(mnemonic: opcode == 0x0C ? "vblendps" : "vblendpd", layout: .rvmi)
    case 0x02 where !w: return VEXForm(mnemonic: "vpblendd", layout: .rvmi)
    case 0x00 where w && l: return VEXForm(mnemonic: "vpermq", layout: .rmi)
    case 0x01 where w && l: return VEXForm(mnemonic: "vpermpd", layout: .rmi)
    case 0x46 where !w && l: return VEXForm(mnemonic: "vperm2i128", layout: .rvmi)
    case 0x06 where !w && l: return VEXForm(mnemonic: "vperm2f128", layout: .rvmi)
    case 0x38 where !w && l: return VEXForm(mnemonic: "vinserti128", layout: .rvmi, memorySize: 16, xmmRM: true)
    case 0x18 where !w && l: return VEXForm(mnemonic: "vinsertf128", layout: .rvmi, memorySize: 16, xmmRM: true)
    case 0x39 where !w && l: return VEXForm(mnemonic: "vextracti128", layout: .mri, memorySize: 16, xmmRM: true)
    case 0x19 where !w && l: return VEXForm(mnemonic: "vextractf128", layout: .mri, memorySize: 16, xmmRM: true)
    case 0x4C where !w: return VEXForm(mnemonic: "vpblendvb", layout: .rvms)
    case 0x4A where !w: return VEXForm(mnemonic: "vblendvps", layout: .rvms)
    case 0x4B where !w: return VEXForm(mnemonic: "vblendvpd", layout: .rvms)
    default: return nil
    }
  }
}

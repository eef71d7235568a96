/// The EVEX-encoded (AVX-512) instructions the decoder knows, and their operand shapes: the
/// forms real x86-64 code uses most (libc's AVX-512 string routines: moves, integer arithmetic and
/// logic, compares into mask registers, tests, broadcasts, ternary logic). Execution is #UD: the
/// model does not advertise AVX-512. Embedded broadcast and rounding (EVEX.b) are not decoded yet.
public struct EVEXForm: Sendable, Equatable {
  /// Operand order in Intel syntax: r ModRM.reg, v EVEX.vvvv, m ModRM.rm, i imm8.
  public enum Layout: Sendable, Equatable {
    case rm, mr, rvm, rvmi, rmi
  }
  /// The mnemonic.
  public var mnemonic: String
  /// The operand layout.
  public var layout: Layout
  /// ModRM.reg is a mask register (compares and tests write k registers).
  public var maskDestination = false
  /// Bytes of a memory operand that is one element (broadcast sources), which also scales a disp8
  /// (EVEX's disp8*N); 0: the full vector.
  public var elementMemory: UInt8 = 0
  /// ModRM.rm in register form is always XMM (broadcast sources).
  public var xmmRM = false
  /// ModRM.rm is a general register of this size (broadcasts from a GPR, VMOVD/VMOVQ).
  public var generalRM: UInt8 = 0
  /// ModRM.reg is always XMM (VMOVD/VMOVQ).
  public var xmmReg = false
  /// A compare whose imm8 names the predicate in the mnemonic (vpcmpeqb, vpcmpltub ...): the
  /// stem before and the suffix after the predicate.
  public var comparePredicate: (stem: String, suffix: String)? = nil

  /// Forms are equal when every field is.
  public static func == (a: EVEXForm, b: EVEXForm) -> Bool {
    a.mnemonic == b.mnemonic && a.layout == b.layout && a.maskDestination == b.maskDestination
      && a.elementMemory == b.elementMemory && a.xmmRM == b.xmmRM && a.generalRM == b.generalRM
      && a.xmmReg == b.xmmReg && a.comparePredicate?.stem == b.comparePredicate?.stem
      && a.comparePredicate?.suffix == b.comparePredicate?.suffix
  }

  var takesImmediate: Bool { layout == .rvmi || layout == .rmi }
}

enum EVEXForms {
  /// The form of EVEX map `map`, `opcode`, mandatory prefix `pp` and EVEX.W; nil: not decoded.
  static func form(map: UInt8, opcode: UInt8, pp: UInt8, w: Bool) -> EVEXForm? {
    switch map {
    case 1: return map1(opcode, pp: pp, w: w)
    case 2: return map2(opcode, pp: pp, w: w)
    case 3: return map3(opcode, pp: pp, w: w)
    default: return nil
    }
  }

  /// Byte and word integer operations (EVEX.W ignored), 66 0F xx: "v" + name, vreg, vreg, vreg/mem.
  static let byteWordOperations: [UInt8: String] = [
    0xF8: "vpsubb", 0xF9: "vpsubw", 0xFC: "vpaddb", 0xFD: "vpaddw", 0xD8: "vpsubusb", 0xD9: "vpsubusw",
    0xDC: "vpaddusb", 0xDD: "vpaddusw", 0xE8: "vpsubsb", 0xE9: "vpsubsw", 0xEC: "vpaddsb", 0xED: "vpaddsw",
    0xDA: "vpminub", 0xDE: "vpmaxub", 0xEA: "vpminsw", 0xEE: "vpmaxsw", 0xE0: "vpavgb", 0xE3: "vpavgw",
    0xD5: "vpmullw", 0x60: "vpunpcklbw", 0x68: "vpunpckhbw", 0x61: "vpunpcklwd", 0x69: "vpunpckhwd",
  ]

  static func map1(_ opcode: UInt8, pp: UInt8, w: Bool) -> EVEXForm? {
    switch (opcode, pp) {
    case (0x6F, 1...3), (0x7F, 1...3):
      let names = [1: ("vmovdqa32", "vmovdqa64"), 2: ("vmovdqu32", "vmovdqu64"), 3: ("vmovdqu8", "vmovdqu16")]
      let pair = names[Int(pp)]!
      return EVEXForm(mnemonic: w ? pair.1 : pair.0, layout: opcode == 0x6F ? .rm : .mr)
    case (0x10, 0) where !w, (0x11, 0) where !w:
      return EVEXForm(mnemonic: "vmovups", layout: opcode == 0x10 ? .rm : .mr)
    case (0x10, 1) where w, (0x11, 1) where w: return EVEXForm(mnemonic: "vmovupd", layout: opcode == 0x10 ? .rm : .mr)
    case (0x28, 0) where !w, (0x29, 0) where !w:
      return EVEXForm(mnemonic: "vmovaps", layout: opcode == 0x28 ? .rm : .mr)
    case (0x28, 1) where w, (0x29, 1) where w: return EVEXForm(mnemonic: "vmovapd", layout: opcode == 0x28 ? .rm : .mr)
    case (0xE7, 1) where !w: return EVEXForm(mnemonic: "vmovntdq", layout: .mr)
    case (0x6E, 1):
      return EVEXForm(
        mnemonic: w ? "vmovq" : "vmovd", layout: .rm, elementMemory: w ? 8 : 4, generalRM: w ? 8 : 4, xmmReg: true)
    case (0x7E, 1):
      return EVEXForm(
        mnemonic: w ? "vmovq" : "vmovd", layout: .mr, elementMemory: w ? 8 : 4, generalRM: w ? 8 : 4, xmmReg: true)
    case (0xEF, 1): return EVEXForm(mnemonic: w ? "vpxorq" : "vpxord", layout: .rvm)
    case (0xEB, 1): return EVEXForm(mnemonic: w ? "vporq" : "vpord", layout: .rvm)
    case (0xDB, 1): return EVEXForm(mnemonic: w ? "vpandq" : "vpandd", layout: .rvm)
    case (0xDF, 1): return EVEXForm(mnemonic: w ? "vpandnq" : "vpandnd", layout: .rvm)
    case (0xFA, 1) where !w: return EVEXForm(mnemonic: "vpsubd", layout: .rvm)
    case (0xFB, 1) where w: return EVEXForm(mnemonic: "vpsubq", layout: .rvm)
    case (0xFE, 1) where !w: return EVEXForm(mnemonic: "vpaddd", layout: .rvm)
    case (0xD4, 1) where w: return EVEXForm(mnemonic: "vpaddq", layout: .rvm)
    case (0x74, 1): return EVEXForm(mnemonic: "vpcmpeqb", layout: .rvm, maskDestination: true)
    case (0x75, 1): return EVEXForm(mnemonic: "vpcmpeqw", layout: .rvm, maskDestination: true)
    case (0x76, 1) where !w: return EVEXForm(mnemonic: "vpcmpeqd", layout: .rvm, maskDestination: true)
    case (0x64, 1): return EVEXForm(mnemonic: "vpcmpgtb", layout: .rvm, maskDestination: true)
    case (0x65, 1): return EVEXForm(mnemonic: "vpcmpgtw", layout: .rvm, maskDestination: true)
    case (0x66, 1) where !w: return EVEXForm(mnemonic: "vpcmpgtd", layout: .rvm, maskDestination: true)
    case (_, 1):
      guard let name = byteWordOperations[opcode] else { return nil }
      return EVEXForm(mnemonic: name, layout: .rvm)
    default: return nil
    }
  }

  static func map2(_ opcode: UInt8, pp: UInt8, w: Bool) -> EVEXForm? {
    switch (opcode, pp) {
    case (0x26, 1): return EVEXForm(mnemonic: w ? "vptestmw" : "vptestmb", layout: .rvm, maskDestination: true)
    case (0x26, 2): return EVEXForm(mnemonic: w ? "vptestnmw" : "vptestnmb", layout: .rvm, maskDestination: true)
    case (0x27, 1): return EVEXForm(mnemonic: w ? "vptestmq" : "vptestmd", layout: .rvm, maskDestination: true)
    case (0x27, 2): return EVEXForm(mnemonic: w ? "vptestnmq" : "vptestnmd", layout: .rvm, maskDestination: true)
    case (0x3B, 1): return EVEXForm(mnemonic: w ? "vpminuq" : "vpminud", layout: .rvm)
    case (0x39, 1): return EVEXForm(mnemonic: w ? "vpminsq" : "vpminsd", layout: .rvm)
    case (0x3F, 1): return EVEXForm(mnemonic: w ? "vpmaxuq" : "vpmaxud", layout: .rvm)
    case (0x3D, 1): return EVEXForm(mnemonic: w ? "vpmaxsq" : "vpmaxsd", layout: .rvm)
    case (0x38, 1): return EVEXForm(mnemonic: "vpminsb", layout: .rvm)
    case (0x3A, 1): return EVEXForm(mnemonic: "vpminuw", layout: .rvm)
    case (0x3C, 1): return EVEXForm(mnemonic: "vpmaxsb", layout: .rvm)
    case (0x3E, 1): return EVEXForm(mnemonic: "vpmaxuw", layout: .rvm)
    case (0x00, 1): return EVEXForm(mnemonic: "vpshufb", layout: .rvm)
    case (0x78, 1) where !w: return EVEXForm(mnemonic: "vpbroadcastb", layout: .rm, elementMemory: 1, xmmRM: true)
    case (0x79, 1) where !w: return EVEXForm(mnemonic: "vpbroadcastw", layout: .rm, elementMemory: 2, xmmRM: true)
    case (0x58, 1) where !w: return EVEXForm(mnemonic: "vpbroadcastd", layout: .rm, elementMemory: 4, xmmRM: true)
    case (0x59, 1) where w: return EVEXForm(mnemonic: "vpbroadcastq", layout: .rm, elementMemory: 8, xmmRM: true)
    case (0x18, 1) where !w: return EVEXForm(mnemonic: "vbroadcastss", layout: .rm, elementMemory: 4, xmmRM: true)
    case (0x7A, 1) where !w: return EVEXForm(mnemonic: "vpbroadcastb", layout: .rm, generalRM: 4)
    case (0x7B, 1) where !w: return EVEXForm(mnemonic: "vpbroadcastw", layout: .rm, generalRM: 4)
    case (0x7C, 1): return EVEXForm(mnemonic: w ? "vpbroadcastq" : "vpbroadcastd", layout: .rm, generalRM: w ? 8 : 4)
    default: return nil
    }
  }

  /// VPCMP{B,UB,D,UD} (EVEX.W0) and VPCMP{W,UW,Q,UQ} (W1), 66 0F3A by opcode: the element suffix.
  static let compares: [UInt8: (w0: String, w1: String)] = [
    0x3F: ("b", "w"), 0x3E: ("ub", "uw"), 0x1F: ("d", "q"), 0x1E: ("ud", "uq"),
  ]

  static func map3(_ opcode: UInt8, pp: UInt8, w: Bool) -> EVEXForm? {
    guard pp == 1 else { return nil }
    if let compare = compares[opcode] {
      let suffix = w ? compare.w1 : compare.w0
      return EVEXForm(
        mnemonic: "vpcmp" + suffix, layout: .rvmi, maskDestination: true, comparePredicate: ("vpcmp", suffix))
    }
    switch opcode {
    case 0x25: return EVEXForm(mnemonic: w ? "vpternlogq" : "vpternlogd", layout: .rvmi)
    case 0x0F: return EVEXForm(mnemonic: "vpalignr", layout: .rvmi)
    default: return nil
    }
  }
}

/// Mnemonic tables for the disassembler (SSE/MMX by mandatory prefix, x87 by ModRM).
enum MnemonicTables {
  static let conditionNames = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"]

  /// 0F-map SSE/MMX mnemonics: "none|66|F3|F2" ("-" = invalid, empty fields = invalid).
  static let sse: [UInt8: String] = [
    0x10: "movups|movupd|movss|movsd", 0x11: "movups|movupd|movss|movsd",
    0x12: "movlps|movlpd|movsldup|movddup", 0x13: "movlps|movlpd|-|-", 0x14: "unpcklps|unpcklpd|-|-",
    0x15: "unpckhps|unpckhpd|-|-", 0x16: "movhps|movhpd|movshdup|-", 0x17: "movhps|movhpd|-|-",
    0x28: "movaps|movapd|-|-", 0x29: "movaps|movapd|-|-", 0x2A: "cvtpi2ps|cvtpi2pd|cvtsi2ss|cvtsi2sd",
    0x2B: "movntps|movntpd|-|-", 0x2C: "cvttps2pi|cvttpd2pi|cvttss2si|cvttsd2si",
    0x2D: "cvtps2pi|cvtpd2pi|cvtss2si|cvtsd2si", 0x2E: "ucomiss|ucomisd|-|-", 0x2F: "comiss|comisd|-|-",
    0x50: "movmskps|movmskpd|-|-", 0x51: "sqrtps|sqrtpd|sqrtss|sqrtsd", 0x52: "rsqrtps|-|rsqrtss|-",
    0x53: "rcpps|-|rcpss|-", 0x54: "andps|andpd|-|-", 0x55: "andnps|andnpd|-|-", 0x56: "orps|orpd|-|-",
    0x57: "xorps|xorpd|-|-", 0x58: "addps|addpd|addss|addsd", 0x59: "mulps|mulpd|mulss|mulsd",
    0x5A: "cvtps2pd|cvtpd2ps|cvtss2sd|cvtsd2ss", 0x5B: "cvtdq2ps|cvtps2dq|cvttps2dq|-",
    0x5C: "subps|subpd|subss|subsd", 0x5D: "minps|minpd|minss|minsd", 0x5E: "divps|divpd|divss|divsd",
    0x5F: "maxps|maxpd|maxss|maxsd",
    0x60: "punpcklbw|punpcklbw|-|-", 0x61: "punpcklwd|punpcklwd|-|-", 0x62: "punpckldq|punpckldq|-|-",
    0x63: "packsswb|packsswb|-|-", 0x64: "pcmpgtb|pcmpgtb|-|-", 0x65: "pcmpgtw|pcmpgtw|-|-",
    0x66: "pcmpgtd|pcmpgtd|-|-", 0x67: "packuswb|packuswb|-|-", 0x68: "punpckhbw|punpckhbw|-|-",
    0x69: "punpckhwd|punpckhwd|-|-", 0x6A: "punpckhdq|punpckhdq|-|-", 0x6B: "packssdw|packssdw|-|-",
    0x6C: "-|punpcklqdq|-|-", 0x6D: "-|punpckhqdq|-|-", 0x6E: "movd|movd|-|-", 0x6F: "movq|movdqa|movdqu|-",
    0x70: "pshufw|pshufd|pshufhw|pshuflw", 0x74: "pcmpeqb|pcmpeqb|-|-", 0x75: "pcmpeqw|pcmpeqw|-|-",
    0x76: "pcmpeqd|pcmpeqd|-|-", 0x77: "emms|-|-|-", 0x7C: "-|haddpd|-|haddps", 0x7D: "-|hsubpd|-|hsubps",
    0x7E: "movd|movd|movq|-", 0x7F: "movq|movdqa|movdqu|-",
    0xC2: "cmpps|cmppd|cmpss|cmpsd", 0xC4: "pinsrw|pinsrw|-|-", 0xC5: "pextrw|pextrw|-|-",
    0xC6: "shufps|shufpd|-|-",
    0xD0: "-|addsubpd|-|addsubps", 0xD1: "psrlw|psrlw|-|-", 0xD2: "psrld|psrld|-|-", 0xD3: "psrlq|psrlq|-|-",
    0xD4: "paddq|paddq|-|-", 0xD5: "pmullw|pmullw|-|-", 0xD6: "-|movq|movq2dq|movdq2q",
    0xD7: "pmovmskb|pmovmskb|-|-", 0xD8: "psubusb|psubusb|-|-", 0xD9: "psubusw|psubusw|-|-",
    0xDA: "pminub|pminub|-|-", 0xDB: "pand|pand|-|-", 0xDC: "paddusb|paddusb|-|-", 0xDD: "paddusw|paddusw|-|-",
    0xDE: "pmaxub|pmaxub|-|-", 0xDF: "pandn|pandn|-|-",
    0xE0: "pavgb|pavgb|-|-", 0xE1: "psraw|psraw|-|-", 0xE2: "psrad|psrad|-|-", 0xE3: "pavgw|pavgw|-|-",
    0xE4: "pmulhuw|pmulhuw|-|-", 0xE5: "pmulhw|pmulhw|-|-", 0xE6: "-|cvttpd2dq|cvtdq2pd|cvtpd2dq",
    0xE7: "movntq|movntdq|-|-", 0xE8: "psubsb|psubsb|-|-", 0xE9: "psubsw|psubsw|-|-", 0xEA: "pminsw|pminsw|-|-",
    0xEB: "por|por|-|-", 0xEC: "paddsb|paddsb|-|-", 0xED: "paddsw|paddsw|-|-", 0xEE: "pmaxsw|pmaxsw|-|-",
    0xEF: "pxor|pxor|-|-",
    0xF0: "-|-|-|lddqu", 0xF1: "psllw|psllw|-|-", 0xF2: "pslld|pslld|-|-", 0xF3: "psllq|psllq|-|-",
    0xF4: "pmuludq|pmuludq|-|-", 0xF5: "pmaddwd|pmaddwd|-|-", 0xF6: "psadbw|psadbw|-|-",
    0xF7: "maskmovq|maskmovdqu|-|-", 0xF8: "psubb|psubb|-|-", 0xF9: "psubw|psubw|-|-", 0xFA: "psubd|psubd|-|-",
    0xFB: "psubq|psubq|-|-", 0xFC: "paddb|paddb|-|-", 0xFD: "paddw|paddw|-|-", 0xFE: "paddd|paddd|-|-",
  ]

  /// 0F 71/72/73 shift-by-immediate groups, by ModRM reg (none = invalid).
  static let sseShiftGroups: [UInt8: [String]] = [
    0x71: ["", "", "psrlw", "", "psraw", "", "psllw", ""],
    0x72: ["", "", "psrld", "", "psrad", "", "pslld", ""],
    0x73: ["", "", "psrlq", "psrldq", "", "", "psllq", "pslldq"],
  ]

  static let x87Memory: [[String]] = [
    ["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"],
    ["fld", "", "fst", "fstp", "fldenv", "fldcw", "fnstenv", "fnstcw"],
    ["fiadd", "fimul", "ficom", "ficomp", "fisub", "fisubr", "fidiv", "fidivr"],
    ["fild", "fisttp", "fist", "fistp", "", "fld", "", "fstp"],
    ["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"],
    ["fld", "fisttp", "fst", "fstp", "frstor", "", "fnsave", "fnstsw"],
    ["fiadd", "fimul", "ficom", "ficomp", "fisub", "fisubr", "fidiv", "fidivr"],
    ["fild", "fisttp", "fist", "fistp", "fbld", "fild", "fbstp", "fistp"],
  ]
  /// Memory operand sizes for x87 memory forms (0 = no size keyword).
  static let x87MemorySize: [[Int]] = [
    [4, 4, 4, 4, 4, 4, 4, 4], [4, 0, 4, 4, 0, 2, 0, 2], [4, 4, 4, 4, 4, 4, 4, 4], [4, 4, 4, 4, 0, 10, 0, 10],
    [8, 8, 8, 8, 8, 8, 8, 8], [8, 8, 8, 8, 0, 0, 0, 2], [2, 2, 2, 2, 2, 2, 2, 2], [2, 2, 2, 2, 10, 8, 10, 8],
  ]

  static let d9Constants: [UInt8: String] = [
    0xD0: "fnop", 0xE0: "fchs", 0xE1: "fabs", 0xE4: "ftst", 0xE5: "fxam", 0xE8: "fld1", 0xE9: "fldl2t",
    0xEA: "fldl2e", 0xEB: "fldpi", 0xEC: "fldlg2", 0xED: "fldln2", 0xEE: "fldz", 0xF0: "f2xm1", 0xF1: "fyl2x",
    0xF2: "fptan", 0xF3: "fpatan", 0xF4: "fxtract", 0xF5: "fprem1", 0xF6: "fdecstp", 0xF7: "fincstp",
    0xF8: "fprem", 0xF9: "fyl2xp1", 0xFA: "fsqrt", 0xFB: "fsincos", 0xFC: "frndint", 0xFD: "fscale", 0xFE: "fsin",
    0xFF: "fcos",
  ]

  /// x87 register forms: (mnemonic, operand style) — style 0: none, 1: st(i), 2: st, st(i), 3: st(i), st.
  static func x87Register(opcode: UInt8, modrm: UInt8) -> (String, Int)? {
    let reg = Int((modrm >> 3) & 7)
    switch opcode {
    case 0xD8:
      return (["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"][reg], reg == 2 || reg == 3 ? 1 : 2)
    case 0xD9:
      if reg == 0 { return ("fld", 1) }
      if reg == 1 { return ("fxch", 1) }
      if let n = d9Constants[modrm] { return (n, 0) }
      return nil
    case 0xDA:
      if modrm == 0xE9 { return ("fucompp", 0) }
      if reg < 4 { return (["fcmovb", "fcmove", "fcmovbe", "fcmovu"][reg], 2) }
      return nil
    case 0xDB:
      if modrm == 0xE2 { return ("fnclex", 0) }
      if modrm == 0xE3 { return ("fninit", 0) }
      if reg < 4 { return (["fcmovnb", "fcmovne", "fcmovnbe", "fcmovnu"][reg], 2) }
      if reg == 5 { return ("fucomi", 2) }
      if reg == 6 { return ("fcomi", 2) }
      return nil
    case 0xDC:
      let names = ["fadd", "fmul", "", "", "fsubr", "fsub", "fdivr", "fdiv"]
      return names[reg].isEmpty ? nil : (names[reg], 3)
    case 0xDD:
      let names = ["ffree", "", "fst", "fstp", "fucom", "fucomp", "", ""]
      return names[reg].isEmpty ? nil : (names[reg], 1)
    case 0xDE:
      if modrm == 0xD9 { return ("fcompp", 0) }
      let names = ["faddp", "fmulp", "", "", "fsubrp", "fsubp", "fdivrp", "fdivp"]
      return names[reg].isEmpty ? nil : (names[reg], 3)
    case 0xDF:
      if modrm == 0xE0 { return ("fnstsw", 4) }
      if reg == 0 { return ("ffreep", 1) }
      if reg == 5 { return ("fucompi", 2) }
      if reg == 6 { return ("fcompi", 2) }
      return nil
    default: return nil
    }
  }
}

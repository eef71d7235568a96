/// Mnemonic stems of the VEX forms (`VEXForms`), by opcode: the SSE names their AVX versions put a
/// "v" in front of.
enum VEXMnemonics {
  /// Map 1 (0F), by mandatory prefix: none | 66 | F3 | F2.
  static let sse: [UInt8: String] = [
    0x14: "unpcklps|unpcklpd|-|-", 0x15: "unpckhps|unpckhpd|-|-", 0x54: "andps|andpd|-|-",
    0x55: "andnps|andnpd|-|-", 0x56: "orps|orpd|-|-", 0x57: "xorps|xorpd|-|-", 0x58: "addps|addpd|-|-",
    0x59: "mulps|mulpd|-|-", 0x5C: "subps|subpd|-|-", 0x5D: "minps|minpd|-|-", 0x5E: "divps|divpd|-|-",
    0x5F: "maxps|maxpd|-|-", 0x60: "-|punpcklbw|-|-", 0x61: "-|punpcklwd|-|-", 0x62: "-|punpckldq|-|-",
    0x63: "-|packsswb|-|-", 0x64: "-|pcmpgtb|-|-", 0x65: "-|pcmpgtw|-|-", 0x66: "-|pcmpgtd|-|-",
    0x67: "-|packuswb|-|-", 0x68: "-|punpckhbw|-|-", 0x69: "-|punpckhwd|-|-", 0x6A: "-|punpckhdq|-|-",
    0x6B: "-|packssdw|-|-", 0x6C: "-|punpcklqdq|-|-", 0x6D: "-|punpckhqdq|-|-", 0x74: "-|pcmpeqb|-|-",
    0x75: "-|pcmpeqw|-|-", 0x76: "-|pcmpeqd|-|-", 0xD1: "-|psrlw|-|-", 0xD2: "-|psrld|-|-",
    0xD3: "-|psrlq|-|-", 0xD4: "-|paddq|-|-", 0xD5: "-|pmullw|-|-", 0xD8: "-|psubusb|-|-",
    0xD9: "-|psubusw|-|-", 0xDA: "-|pminub|-|-", 0xDB: "-|pand|-|-", 0xDC: "-|paddusb|-|-",
    0xDD: "-|paddusw|-|-", 0xDE: "-|pmaxub|-|-", 0xDF: "-|pandn|-|-", 0xE0: "-|pavgb|-|-",
    0xE1: "-|psraw|-|-", 0xE2: "-|psrad|-|-", 0xE3: "-|pavgw|-|-", 0xE4: "-|pmulhuw|-|-",
    0xE5: "-|pmulhw|-|-", 0xE8: "-|psubsb|-|-", 0xE9: "-|psubsw|-|-", 0xEA: "-|pminsw|-|-",
    0xEB: "-|por|-|-", 0xEC: "-|paddsb|-|-", 0xED: "-|paddsw|-|-", 0xEE: "-|pmaxsw|-|-",
    0xEF: "-|pxor|-|-", 0xF1: "-|psllw|-|-", 0xF2: "-|pslld|-|-", 0xF3: "-|psllq|-|-",
    0xF4: "-|pmuludq|-|-", 0xF5: "-|pmaddwd|-|-", 0xF6: "-|psadbw|-|-", 0xF8: "-|psubb|-|-",
    0xF9: "-|psubw|-|-", 0xFA: "-|psubd|-|-", 0xFB: "-|psubq|-|-", 0xFC: "-|paddb|-|-",
    0xFD: "-|paddw|-|-", 0xFE: "-|paddd|-|-",
  ]

  /// 71/72/73 with an imm8, by ModRM.reg.
  static let shiftGroups: [UInt8: [String]] = [
    0x71: ["", "", "psrlw", "", "psraw", "", "psllw", ""],
    0x72: ["", "", "psrld", "", "psrad", "", "pslld", ""],
    0x73: ["", "", "psrlq", "psrldq", "", "", "psllq", "pslldq"],
  ]

  /// Map 2 (0F38) three-operand forms with 66.
  static let map38: [UInt8: String] = [
    0x00: "pshufb", 0x01: "phaddw", 0x02: "phaddd", 0x03: "phaddsw", 0x04: "pmaddubsw", 0x05: "phsubw",
    0x06: "phsubd", 0x07: "phsubsw", 0x08: "psignb", 0x09: "psignw", 0x0A: "psignd", 0x0B: "pmulhrsw",
    0x28: "pmuldq", 0x29: "pcmpeqq", 0x2B: "packusdw", 0x37: "pcmpgtq", 0x38: "pminsb", 0x39: "pminsd",
    0x3A: "pminuw", 0x3B: "pminud", 0x3C: "pmaxsb", 0x3D: "pmaxsd", 0x3E: "pmaxuw", 0x3F: "pmaxud",
    0x40: "pmulld",
  ]
}

/// Opcode maps in a compact text form, parsed once into `OpcodeEntry` arrays.
///
/// Entry syntax: `mnemonic operand,operand flag flag`. Operand specs follow the SDM's opcode-map
/// notation (E/G ModRM, I immediate, J relative, O moffs, Z register in the opcode, S segment
/// register, C/D control/debug register, V/W/U XMM, P/Q/N MMX); sizes b w d q v(16/32/64) z(16/32)
/// y(32/64) p(far pointer). Flags: L lockable, i64 invalid in 64-bit mode, o64 64-bit mode only,
/// d64 64-bit default operand size, f64 forced 64-bit operand size, mem memory-only ModRM,
/// reg register-only ModRM, u undocumented (llvm-objdump rejects it), 186/286/386 minimum model.
enum OpcodeTables {
  static let oneByte: [String] = [
    // 00
    "add Eb,Gb L", "add Ev,Gv L", "add Gb,Eb", "add Gv,Ev", "add AL,Ib", "add rAX,Iz", "push ES i64", "pop ES i64",
    "or Eb,Gb L", "or Ev,Gv L", "or Gb,Eb", "or Gv,Ev", "or AL,Ib", "or rAX,Iz", "push CS i64", "",
    // 10
    "adc Eb,Gb L", "adc Ev,Gv L", "adc Gb,Eb", "adc Gv,Ev", "adc AL,Ib", "adc rAX,Iz", "push SS i64", "pop SS i64",
    "sbb Eb,Gb L", "sbb Ev,Gv L", "sbb Gb,Eb", "sbb Gv,Ev", "sbb AL,Ib", "sbb rAX,Iz", "push DS i64", "pop DS i64",
    // 20
    "and Eb,Gb L", "and Ev,Gv L", "and Gb,Eb", "and Gv,Ev", "and AL,Ib", "and rAX,Iz", "", "daa i64",
    "sub Eb,Gb L", "sub Ev,Gv L", "sub Gb,Eb", "sub Gv,Ev", "sub AL,Ib", "sub rAX,Iz", "", "das i64",
    // 30
    "xor Eb,Gb L", "xor Ev,Gv L", "xor Gb,Eb", "xor Gv,Ev", "xor AL,Ib", "xor rAX,Iz", "", "aaa i64",
    "cmp Eb,Gb", "cmp Ev,Gv", "cmp Gb,Eb", "cmp Gv,Ev", "cmp AL,Ib", "cmp rAX,Iz", "", "aas i64",
    // 40
    "inc Zv", "inc Zv", "inc Zv", "inc Zv", "inc Zv", "inc Zv", "inc Zv", "inc Zv",
    "dec Zv", "dec Zv", "dec Zv", "dec Zv", "dec Zv", "dec Zv", "dec Zv", "dec Zv",
    // 50
    "push Zq d64", "push Zq d64", "push Zq d64", "push Zq d64", "push Zq d64", "push Zq d64", "push Zq d64",
    "push Zq d64",
    "pop Zq d64", "pop Zq d64", "pop Zq d64", "pop Zq d64", "pop Zq d64", "pop Zq d64", "pop Zq d64", "pop Zq d64",
    // 60
    "pusha i64 186", "popa i64 186", "bound Gv,Mp i64 mem 186", "arpl Ew,Gw i64 286", "", "", "", "",
    "push Iz d64 186", "imul Gv,Ev,Iz 186", "push Ibs d64 186", "imul Gv,Ev,Ibs 186", "ins Yb,DX 186",
    "ins Yz,DX 186", "outs DX,Xb 186", "outs DX,Xz 186",
    // 70
    "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64",
    "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64", "jcc Jb f64",
    // 80
    "grp1 Eb,Ib", "grp1 Ev,Iz", "grp1 Eb,Ib i64", "grp1 Ev,Ibs", "test Eb,Gb", "test Ev,Gv", "xchg Eb,Gb L",
    "xchg Ev,Gv L",
    "mov Eb,Gb", "mov Ev,Gv", "mov Gb,Eb", "mov Gv,Ev", "movSeg Ev,Sw", "lea Gv,M mem", "movToSeg Sw,Ew",
    "grp1a Ev d64",
    // 90
    "xchg Zv,rAX", "xchg Zv,rAX", "xchg Zv,rAX", "xchg Zv,rAX", "xchg Zv,rAX", "xchg Zv,rAX", "xchg Zv,rAX",
    "xchg Zv,rAX",
    "cbw", "cwd", "callFar Ap i64", "wait", "pushf d64", "popf d64", "sahf", "lahf",
    // A0
    "mov AL,Ob", "mov rAX,Ov", "mov Ob,AL", "mov Ov,rAX", "movs Yb,Xb", "movs Yv,Xv", "cmps Xb,Yb", "cmps Xv,Yv",
    "test AL,Ib", "test rAX,Iz", "stos Yb,AL", "stos Yv,rAX", "lods AL,Xb", "lods rAX,Xv", "scas AL,Yb",
    "scas rAX,Yv",
    // B0
    "mov Zb,Ib", "mov Zb,Ib", "mov Zb,Ib", "mov Zb,Ib", "mov Zb,Ib", "mov Zb,Ib", "mov Zb,Ib", "mov Zb,Ib",
    "mov Zv,Iv", "mov Zv,Iv", "mov Zv,Iv", "mov Zv,Iv", "mov Zv,Iv", "mov Zv,Iv", "mov Zv,Iv", "mov Zv,Iv",
    // C0
    "grp2 Eb,Ib 186", "grp2 Ev,Ib 186", "ret Iw f64", "ret f64", "les Gz,Mp i64 mem", "lds Gz,Mp i64 mem",
    "grp11 Eb,Ib", "grp11 Ev,Iz",
    "enter Iw,Ib d64 186", "leave d64 186", "retf Iw", "retf", "int3", "int Ib", "into i64", "iret",
    // D0
    "grp2 Eb,One", "grp2 Ev,One", "grp2 Eb,CL", "grp2 Ev,CL", "aam Ib i64", "aad Ib i64", "salc i64", "xlat",
    "x87", "x87", "x87", "x87", "x87", "x87", "x87", "x87",
    // E0
    "loopne Jb f64", "loope Jb f64", "loop Jb f64", "jcxz Jb f64", "in AL,Ib", "in eAX,Ib", "out Ib,AL",
    "out Ib,eAX",
    "call Jz f64", "jmp Jz f64", "jmpFar Ap i64", "jmp Jb f64", "in AL,DX", "in eAX,DX", "out DX,AL", "out DX,eAX",
    // F0
    "", "int1 u", "", "", "hlt", "cmc", "grp3 Eb", "grp3 Ev",
    "clc", "stc", "cli", "sti", "cld", "std", "grp4 Eb", "grp5 Ev",
  ]

  static let groups: [String: [String]] = [
    "grp1": ["add L", "or L", "adc L", "sbb L", "and L", "sub L", "xor L", "cmp"],
    "grp1a": ["pop", "", "", "", "", "", "", ""],
    "grp2": ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal u", "sar"],
    "grp3": ["test +I", "test +I u", "not L", "neg L", "mul", "imul", "div", "idiv"],
    "grp4": ["inc L", "dec L", "", "", "", "", "", ""],
    "grp5": [
      "inc L", "dec L", "call f64", "callFar Mp mem", "jmp f64", "jmpFar Mp mem", "push d64", "",
    ],
    "grp11": ["mov", "", "", "", "", "", "", ""],
    "grp6": ["sldt Ew", "str Ew", "lldt Ew", "ltr Ew", "verr Ew", "verw Ew", "", ""],
    "grp7": ["sgdt Ms mem", "sidt Ms mem", "lgdt Ms mem", "lidt Ms mem", "smsw Ew", "", "lmsw Ew", "invlpg Mb mem"],
    "grp8": ["", "", "", "", "bt", "bts L", "btr L", "btc L"],
    "grp9": ["", "cmpxchg8b Mq mem L", "", "", "", "", "rdrand Rv reg", "rdseed Rv reg"],
    "grp15": [
      "fxsave M mem", "fxrstor M mem", "ldmxcsr Md mem", "stmxcsr Md mem", "xsave M mem", "xrstor M mem",
      "xsaveopt M mem", "clflush Mb mem",
    ],
    "grp16": ["prefetch Mb", "prefetch Mb", "prefetch Mb", "prefetch Mb", "nop Ev", "nop Ev", "nop Ev", "nop Ev"],
  ]

  static let twoByte: [String] = [
    // 00
    "grp6 286", "grp7 286", "lar Gv,Ew 286", "lsl Gv,Ew 286", "", "syscall", "clts 286", "sysret",
    "invd", "wbinvd", "", "ud2", "", "nop Ev", "", "",
    // 10
    "sse Vx,Wx", "sse Wx,Vx", "sse Vx,Wx", "sse Wx,Vx mem", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Wx,Vx mem",
    "grp16", "nop Ev", "nop Ev", "nop Ev", "nop Ev", "nop Ev", "nop Ev", "nop Ev",
    // 20
    "movCR Ry,Cd", "movDR Ry,Dd", "movToCR Cd,Ry", "movToDR Dd,Ry", "", "", "", "",
    "sse Vx,Wx", "sse Wx,Vx", "sse Vx,Wx", "sse Wx,Vx mem", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx",
    // 30
    "wrmsr", "rdtsc", "rdmsr", "rdpmc", "sysenter", "sysexit", "", "",
    "", "", "", "", "", "", "", "",
    // 40
    "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev",
    "cmovcc Gv,Ev",
    "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev", "cmovcc Gv,Ev",
    "cmovcc Gv,Ev",
    // 50
    "sse Gd,Ux reg", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx",
    "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx",
    // 60
    "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx",
    "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Ey", "sse Vx,Wx",
    // 70
    "sse Vx,Wx,Ib", "sse Ux,Ib reg", "sse Ux,Ib reg", "sse Ux,Ib reg", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "emms",
    "", "", "", "", "sse Vx,Wx", "sse Vx,Wx", "sse Ey,Vx", "sse Wx,Vx",
    // 80
    "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64",
    "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64", "jcc Jz f64",
    // 90
    "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb",
    "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb", "setcc Eb",
    // A0
    "push FS d64", "pop FS d64", "cpuid", "bt Ev,Gv", "shld Ev,Gv,Ib", "shld Ev,Gv,CL", "", "",
    "push GS d64", "pop GS d64", "rsm", "bts Ev,Gv L", "shrd Ev,Gv,Ib", "shrd Ev,Gv,CL", "grp15", "imul Gv,Ev",
    // B0
    "cmpxchg Eb,Gb L", "cmpxchg Ev,Gv L", "lss Gz,Mp mem", "btr Ev,Gv L", "lfs Gz,Mp mem", "lgs Gz,Mp mem",
    "movzx Gv,Eb", "movzx Gv,Ew",
    "popcnt Gv,Ev", "ud1 Gv,Ev", "grp8 Ev,Ib", "btc Ev,Gv L", "bsf Gv,Ev", "bsr Gv,Ev", "movsx Gv,Eb",
    "movsx Gv,Ew",
    // C0
    "xadd Eb,Gb L", "xadd Ev,Gv L", "sse Vx,Wx,Ib", "movnti My,Gy mem", "sse Vx,Ed,Ib", "sse Gd,Ux,Ib reg",
    "sse Vx,Wx,Ib", "grp9",
    "bswap Zv", "bswap Zv", "bswap Zv", "bswap Zv", "bswap Zv", "bswap Zv", "bswap Zv", "bswap Zv",
    // D0
    "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Wx,Vx", "sse Gd,Ux reg",
    "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx",
    // E0
    "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Wx,Vx mem",
    "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx",
    // F0
    "sse Vx,Wx mem", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Ux reg",
    "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "sse Vx,Wx", "ud0 Gv,Ev",
  ]

  /// 0F38 SSE-family opcodes: (name without prefix, name with 66); "" = #UD with that prefix.
  static let map38: [UInt8: (String, String)] = [
    0x00: ("pshufb", "pshufb"), 0x01: ("phaddw", "phaddw"), 0x02: ("phaddd", "phaddd"), 0x03: ("phaddsw", "phaddsw"),
    0x04: ("pmaddubsw", "pmaddubsw"), 0x05: ("phsubw", "phsubw"), 0x06: ("phsubd", "phsubd"),
    0x07: ("phsubsw", "phsubsw"), 0x08: ("psignb", "psignb"), 0x09: ("psignw", "psignw"), 0x0A: ("psignd", "psignd"),
    0x0B: ("pmulhrsw", "pmulhrsw"), 0x1C: ("pabsb", "pabsb"), 0x1D: ("pabsw", "pabsw"), 0x1E: ("pabsd", "pabsd"),
    0x10: ("", "pblendvb"), 0x14: ("", "blendvps"), 0x15: ("", "blendvpd"), 0x17: ("", "ptest"),
    0x20: ("", "pmovsxbw"), 0x21: ("", "pmovsxbd"), 0x22: ("", "pmovsxbq"), 0x23: ("", "pmovsxwd"),
    0x24: ("", "pmovsxwq"), 0x25: ("", "pmovsxdq"), 0x28: ("", "pmuldq"), 0x29: ("", "pcmpeqq"),
    0x2A: ("", "movntdqa"), 0x2B: ("", "packusdw"), 0x30: ("", "pmovzxbw"), 0x31: ("", "pmovzxbd"),
    0x32: ("", "pmovzxbq"), 0x33: ("", "pmovzxwd"), 0x34: ("", "pmovzxwq"), 0x35: ("", "pmovzxdq"),
    0x37: ("", "pcmpgtq"), 0x38: ("", "pminsb"), 0x39: ("", "pminsd"), 0x3A: ("", "pminuw"), 0x3B: ("", "pminud"),
    0x3C: ("", "pmaxsb"), 0x3D: ("", "pmaxsd"), 0x3E: ("", "pmaxuw"), 0x3F: ("", "pmaxud"), 0x40: ("", "pmulld"),
    0x41: ("", "phminposuw"), 0x80: ("", "invept"), 0x81: ("", "invvpid"), 0x82: ("", "invpcid"),
    0xCF: ("", "gf2p8mulb"), 0xDB: ("", "aesimc"), 0xDC: ("", "aesenc"), 0xDD: ("", "aesenclast"),
    0xDE: ("", "aesdec"), 0xDF: ("", "aesdeclast"),
    0xC8: ("sha1nexte", ""), 0xC9: ("sha1msg1", ""), 0xCA: ("sha1msg2", ""), 0xCB: ("sha256rnds2", ""),
    0xCC: ("sha256msg1", ""), 0xCD: ("sha256msg2", ""),
  ]

  /// 0F3A SSE-family opcodes (all take an imm8), as `map38`.
  static let map3A: [UInt8: (String, String)] = [
    0x0F: ("palignr", "palignr"), 0x08: ("", "roundps"), 0x09: ("", "roundpd"), 0x0A: ("", "roundss"),
    0x0B: ("", "roundsd"), 0x0C: ("", "blendps"), 0x0D: ("", "blendpd"), 0x0E: ("", "pblendw"),
    0x14: ("", "pextrb"), 0x15: ("", "pextrw"), 0x16: ("", "pextrd"), 0x17: ("", "extractps"),
    0x20: ("", "pinsrb"), 0x21: ("", "insertps"), 0x22: ("", "pinsrd"), 0x40: ("", "dpps"), 0x41: ("", "dppd"),
    0x42: ("", "mpsadbw"), 0x44: ("", "pclmulqdq"), 0x60: ("", "pcmpestrm"), 0x61: ("", "pcmpestri"),
    0x62: ("", "pcmpistrm"), 0x63: ("", "pcmpistri"), 0xCE: ("", "gf2p8affineqb"), 0xCF: ("", "gf2p8affineinvqb"),
    0xDF: ("", "aeskeygenassist"), 0xCC: ("sha1rnds4", ""),
  ]
}

import Foundation
import X86

/// Documented, expected differences between the model and llvm-objdump. Each rule says why the
/// model (following the Intel SDM and the host CPU) is right, or why the two only spell alike
/// things differently. Anything not covered here is a mismatch.
enum KnownDifferences {
  /// llvm-objdump's mnemonic -> the model's, for the same instruction.
  static let spellings: [String: String] = [
    // REX.W far return / SYSEXIT / SYSRET: objdump appends "q"; Intel writes RETF, SYSEXIT, SYSRET.
    "retfq": "retf", "sysexitq": "sysexit", "sysretq": "sysret",
    // Far indirect JMP/CALL (FF /5, FF /3): objdump uses AT&T's "ljmp"/"lcall"; Intel writes JMP/CALL m16:xx.
    "ljmp": "jmp", "lcall": "call",
    // FUCOMIP (DF /5): objdump spells it "fucompi".
    "fucompi": "fucomip", "fcompi": "fcomip",
    // MOV with a 64-bit immediate or moffs operand: objdump writes MOVABS; Intel writes MOV.
    "movabs": "mov",
    // Descriptor-table loads/stores in 32-bit code: objdump appends "d"; Intel writes SIDT/SGDT/LIDT/LGDT.
    "sidtd": "sidt", "sgdtd": "sgdt", "lidtd": "lidt", "lgdtd": "lgdt",
    "sidtw": "sidt", "sgdtw": "sgdt", "lidtw": "lidt", "lgdtw": "lgdt",
  ]

  struct Rule: Sendable {
    let reason: String
    let applies:
      @Sendable (_ kind: ObjdumpDisagreement, _ bytes: [UInt8], _ mode: CodeMode, _ ours: String, _ theirs: String) ->
        Bool
  }

  static let lockable: Set<String> = [
    "add", "adc", "and", "btc", "btr", "bts", "cmpxchg", "cmpxchg8b", "cmpxchg16b", "dec", "inc", "neg", "not", "or",
    "sbb", "sub", "xor", "xadd", "xchg",
  ]

  /// The bytes after legacy and REX prefixes, and the legacy prefixes seen.
  static func opcode(_ bytes: [UInt8], mode: CodeMode) -> (prefixes: [UInt8], rest: ArraySlice<UInt8>) {
    var i = 0
    var prefixes: [UInt8] = []
    while i < bytes.count {
      let b = bytes[i]
      if [0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65].contains(b) {
        prefixes.append(b)
      } else if mode == .bits64 && b & 0xF0 == 0x40 {
        // REX
      } else {
        break
      }
      i += 1
    }
    return (prefixes, bytes[i...])
  }

  static func words(_ text: String) -> [String] {
    text.lowercased().split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
  }

  static let rules: [Rule] = [
    Rule(
      reason:
        "LOCK on a form that cannot be locked (register destination or non-lockable instruction): #UD on the CPU; llvm-objdump prints it"
    ) {
      kind, bytes, mode, _, theirs in
      guard kind == .onlyObjdumpDecodes else { return false }
      let w = words(theirs)
      guard w.contains("lock") || opcode(bytes, mode: mode).prefixes.contains(0xF0) else { return false }
      let rest = w.drop(while: { ObjdumpComparison.prefixWords.contains($0) })
      guard let mnemonic = rest.first else { return true }
      let operands = rest.dropFirst().joined(separator: " ")
      let firstOperand = operands.split(separator: ",").first.map(String.init) ?? ""
      return !lockable.contains(mnemonic) || !firstOperand.contains("[")
    },
    Rule(reason: "D5 in 64-bit mode is the APX REX2 prefix: absent on this host, #UD (llvm-objdump decodes APX)") {
      kind, bytes, mode, _, _ in
      kind == .onlyObjdumpDecodes && mode == .bits64 && opcode(bytes, mode: mode).rest.first == 0xD5
    },
    Rule(
      reason:
        "66-prefixed near Jcc/JMP/CALL in 64-bit mode: Intel ignores 66 (rel32, the model); AMD and llvm-objdump use rel16"
    ) {
      kind, bytes, mode, _, _ in
      guard kind == .length, mode == .bits64 else { return false }
      let (prefixes, rest) = opcode(bytes, mode: mode)
      guard prefixes.contains(0x66), let first = rest.first else { return false }
      let second = rest.dropFirst().first ?? 0
      return first == 0xE8 || first == 0xE9 || (first == 0x0F && second & 0xF0 == 0x80)
    },
    Rule(reason: "MOV to/from CR1, CR5-CR7, CR9-CR15: #UD on the CPU; llvm-objdump names them") {
      kind, _, _, _, theirs in
      guard kind == .onlyObjdumpDecodes, words(theirs).contains(where: { $0 == "mov" }) else { return false }
      return ["cr1", "cr5", "cr6", "cr7", "cr9", "cr10", "cr11", "cr12", "cr13", "cr14", "cr15"].contains {
        theirs.contains($0 + ",") || theirs.hasSuffix($0) || theirs.contains($0 + " ")
      }
    },
    Rule(reason: "MOV DR4/DR5: aliases of DR6/DR7 while CR4.DE=0 (SDM 18.2.2); llvm-objdump rejects them") {
      kind, _, _, ours, _ in
      kind == .onlyModelDecodes && (ours.contains("dr4") || ours.contains("dr5"))
    },
    Rule(
      reason:
        "0F 18-0F 1F hint-NOP space: the model decodes every form as NOP; llvm-objdump names newer hints (prefetchit0/1) or rejects reserved ones"
    ) {
      kind, bytes, mode, ours, _ in
      guard kind == .onlyModelDecodes || kind == .mnemonic, ObjdumpComparison.mnemonic(ours) == "nop" else {
        return false
      }
      let rest = opcode(bytes, mode: mode).rest
      guard rest.first == 0x0F, let op = rest.dropFirst().first else { return false }
      return (0x18...0x1F).contains(op)
    },
    Rule(reason: "F1 (INT1/ICEBP): documented by Intel (SDM vol. 2, INT n); llvm-objdump rejects it") {
      kind, _, _, ours, _ in
      kind == .onlyModelDecodes && ObjdumpComparison.mnemonic(ours) == "int1"
    },
    Rule(reason: "UD0 (0F FF /r): documented by Intel, raises #UD; llvm-objdump rejects it") {
      kind, _, _, ours, _ in
      kind == .onlyModelDecodes && ObjdumpComparison.mnemonic(ours) == "ud0"
    },
    Rule(reason: "F2/F3 with an SSE opcode that has no F2/F3 form: #UD on the CPU; llvm-objdump ignores the prefix") {
      kind, bytes, mode, _, _ in
      guard kind == .onlyObjdumpDecodes else { return false }
      let (prefixes, rest) = opcode(bytes, mode: mode)
      guard prefixes.contains(0xF2) || prefixes.contains(0xF3), rest.first == 0x0F, let op = rest.dropFirst().first
      else { return false }
      return (0x10...0x17).contains(op) || (0x28...0x2F).contains(op) || (0x50...0x7F).contains(op)
        || (0xC2...0xC6).contains(op) || op >= 0xD0
    },
    Rule(
      reason:
        "llvm-objdump's 16-bit mode (i386 code16 triple) prints CBW/CWD as CWDE/CDQ (operand size 32): an llvm bug"
    ) {
      kind, bytes, mode, ours, theirs in
      guard kind == .mnemonic, mode == .bits16 else { return false }
      let pair = (ObjdumpComparison.mnemonic(ours), ObjdumpComparison.mnemonic(theirs))
      return pair == ("cbw", "cwde") || pair == ("cwd", "cdq") || pair == ("cwde", "cbw") || pair == ("cdq", "cwd")
    },
    Rule(reason: "SYSCALL/SYSRET outside 64-bit mode: #UD on Intel CPUs (the model); AMD and llvm-objdump accept them")
    {
      kind, _, mode, _, theirs in
      kind == .onlyObjdumpDecodes && mode != .bits64
        && ["syscall", "sysret", "sysretl"].contains(ObjdumpComparison.mnemonic(theirs))
    },
    Rule(
      reason:
        "VMX/SMX instructions (VMREAD, VMWRITE, VMPTRST, GETSEC ...): not implemented, not advertised in CPUID, #UD"
    ) {
      kind, _, _, _, theirs in
      let m = ObjdumpComparison.mnemonic(theirs)
      return kind == .onlyObjdumpDecodes
        && (m.hasPrefix("vm") || m == "getsec" || m == "invept" || m == "invvpid")
    },
    Rule(
      reason:
        "3DNow! and x87 forms (not implemented by the model nor advertised in its CPUID), MMX forms with an F2/F3 prefix: #UD"
    ) {
      kind, _, _, _, theirs in
      guard kind == .onlyObjdumpDecodes else { return false }
      let m = ObjdumpComparison.mnemonic(theirs)
      let operands = words(theirs).dropFirst().joined(separator: " ")
      let usesMMX = operands.range(of: #"(^|[^x])mm[0-7]"#, options: .regularExpression) != nil
      return usesMMX || m == "femms" || m == "emms" || (m.hasPrefix("f") && m != "fxsave" && m != "fxrstor")
    },
  ]

  static let moreRules: [Rule] = [
    Rule(reason: "MOV to/from CR/DR ignores ModRM.mod (SDM: 'the mod field is ignored'); llvm-objdump rejects mod != 3")
    {
      kind, bytes, mode, ours, _ in
      guard kind == .onlyModelDecodes, ObjdumpComparison.mnemonic(ours) == "mov" else { return false }
      let rest = opcode(bytes, mode: mode).rest
      guard rest.first == 0x0F, let op = rest.dropFirst().first else { return false }
      return (0x20...0x23).contains(op)
    },
    Rule(reason: "MOV to/from DR8-DR15: #UD on the CPU; llvm-objdump names them") {
      kind, _, _, _, theirs in
      kind == .onlyObjdumpDecodes && theirs.range(of: #"\bdr([89]|1[0-5])\b"#, options: .regularExpression) != nil
    },
    Rule(
      reason:
        "F2/F3/66 on an instruction without prefixed forms (SETcc, WBINVD): ignored by the CPU; llvm-objdump rejects the combination"
    ) {
      kind, bytes, mode, ours, _ in
      guard kind == .onlyModelDecodes else { return false }
      let m = ObjdumpComparison.mnemonic(ours)
      let (prefixes, _) = opcode(bytes, mode: mode)
      let hasIgnorable = prefixes.contains(0xF2) || prefixes.contains(0xF3) || prefixes.contains(0x66)
      return hasIgnorable && (m.hasPrefix("set") || m == "wbinvd" || m.hasPrefix("j"))
    },
    Rule(reason: "F3 0F 09 (WBNOINVD) executes as WBINVD on CPUs without WBNOINVD, as the model does") {
      kind, _, _, ours, theirs in
      kind == .mnemonic && ObjdumpComparison.mnemonic(ours) == "wbinvd"
        && ObjdumpComparison.mnemonic(theirs) == "wbnoinvd"
    },
    Rule(
      reason:
        "66 separated from the 0F opcode by other prefixes still selects the 66 form on the CPU; llvm-objdump honours it only when adjacent"
    ) {
      kind, bytes, mode, _, _ in
      guard kind == .mnemonic else { return false }
      let (prefixes, rest) = opcode(bytes, mode: mode)
      guard rest.first == 0x0F, let i = prefixes.lastIndex(of: 0x66) else { return false }
      return i != prefixes.count - 1 && !prefixes.contains(0xF2) && !prefixes.contains(0xF3)
    },
    Rule(
      reason:
        "0F 0D /2-/7 with memory: AMD documents them as PREFETCH aliases; llvm-objdump names /2 PREFETCHWT1 and rejects /3-/7"
    ) {
      kind, bytes, mode, ours, _ in
      guard kind == .onlyModelDecodes || kind == .mnemonic, ObjdumpComparison.mnemonic(ours) == "prefetch" else {
        return false
      }
      let rest = Array(opcode(bytes, mode: mode).rest)
      guard rest.count >= 3, rest[0] == 0x0F, rest[1] == 0x0D else { return false }
      return rest[2] >> 6 != 3 && (rest[2] >> 3) & 7 >= 2
    },
    Rule(
      reason:
        "extensions the model does not implement nor advertise in CPUID (XSAVES/XSAVEC, MOVDIRI/MOVDIR64B, MOVRS, AADD/RAO-INT, CET, PadLock): #UD"
    ) {
      kind, _, _, _, theirs in
      guard kind == .onlyObjdumpDecodes else { return false }
      let m = ObjdumpComparison.mnemonic(theirs)
      let families = [
        "xsaves", "xsaves64", "xsavec", "xsavec64", "xrstors", "xrstors64", "movdiri", "movdir64b", "movrs", "aadd",
        "aand", "aor", "axor", "rstorssp", "saveprevssp", "setssbsy", "clrssbsy", "incsspd", "incsspq", "rdsspd",
        "rdsspq", "wrssd", "wrssq", "wrussd", "wrussq", "endbr32", "endbr64", "xcryptecb", "xcryptcbc", "xcryptctr",
        "xcryptcfb", "xcryptofb", "xsha1", "xsha256", "xstore", "montmul", "ptwrite", "enqcmd", "enqcmds", "xtest",
        "xbegin", "xend", "xabort",
      ]
      return families.contains(m)
    },
  ]

  static let prefixRules: [Rule] = [
    Rule(reason: "SHA instructions exist only without 66/F2/F3: with one they are #UD; llvm-objdump ignores the prefix")
    {
      kind, bytes, mode, _, theirs in
      guard kind == .onlyObjdumpDecodes, ObjdumpComparison.mnemonic(theirs).hasPrefix("sha") else { return false }
      let prefixes = opcode(bytes, mode: mode).prefixes
      return prefixes.contains(0x66) || prefixes.contains(0xF2) || prefixes.contains(0xF3)
    },
    Rule(
      reason:
        "F2/F3 on 0F AE (LDMXCSR/STMXCSR/fences): #UD or other instructions (RDFSBASE, INCSSP ...) on the CPU; llvm-objdump ignores the prefix"
    ) {
      kind, bytes, mode, _, theirs in
      guard kind == .onlyObjdumpDecodes else { return false }
      let m = ObjdumpComparison.mnemonic(theirs)
      guard ["ldmxcsr", "stmxcsr", "sfence", "lfence", "mfence", "fxsave", "fxrstor", "clflush"].contains(m) else {
        return false
      }
      let prefixes = opcode(bytes, mode: mode).prefixes
      return prefixes.contains(0xF2) || prefixes.contains(0xF3)
    },
    Rule(
      reason:
        "llvm-objdump's 16-bit mode does not treat 66 as the mandatory prefix of SSE opcodes (it decodes the MMX/PS form or rejects them)"
    ) {
      kind, bytes, mode, _, _ in
      guard mode == .bits16, kind != .length else { return false }
      let (prefixes, rest) = opcode(bytes, mode: mode)
      return prefixes.contains(0x66) && rest.first == 0x0F
    },
  ]

  /// The documented reason for a difference, or nil.
  static func reason(_ kind: ObjdumpDisagreement, bytes: [UInt8], mode: CodeMode, ours: String, theirs: String)
    -> String?
  {
    (rules + moreRules + prefixRules).first { $0.applies(kind, bytes, mode, ours, theirs) }?.reason
  }
}

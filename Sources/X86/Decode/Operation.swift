/// What an instruction does: one case per operation (not per encoding). Condition-code families
/// (`jcc`, `setcc`, `cmovcc`) carry the condition in `DecodedInstruction.condition`.
/// The raw value is a compact dispatch code for interpreters and translators.
public enum Operation: UInt16, Sendable, CaseIterable {
  case invalid
  // Data movement
  case mov, movabs, movzx, movsx, movsxd, xchg, bswap, cmovcc, setcc, lea, push, pop, enter, leave
  case cbw, cwd, xlat, lahf, sahf, pushf, popf, pusha, popa, movbe, movnti
  // Arithmetic and logic
  case add, or, adc, sbb, and, sub, xor, cmp, test, inc, dec, neg, not, mul, imul, div, idiv
  case rol, ror, rcl, rcr, shl, shr, sal, sar, shld, shrd
  case bt, bts, btr, btc, bsf, bsr, tzcnt, lzcnt, popcnt
  case xadd, cmpxchg, cmpxchg8b, cmpxchg16b
  case daa, das, aaa, aas, aam, aad, salc
  // Control flow
  case jcc, jmp, call, ret, jmpFar, callFar, retf, loop, loope, loopne, jcxz
  case int, int3, into, int1, iret, bound, hlt
  // Flags
  case clc, stc, cmc, cli, sti, cld, std
  // Strings
  case movs, cmps, stos, lods, scas, ins, outs
  // I/O
  case `in`, out
  // Segments and system
  case les, lds, lss, lfs, lgs, arpl, movSeg, movToSeg
  case sldt, str, lldt, ltr, verr, verw, sgdt, sidt, lgdt, lidt, smsw, lmsw, invlpg, lar, lsl, clts
  case movCR, movToCR, movDR, movToDR, invd, wbinvd, wrmsr, rdmsr, rdtsc, rdtscp, rdpmc, cpuid
  /// VMCALL (Intel) / VMMCALL (AMD): a hypercall to the embedder.
  case vmcall
  case syscall, sysret, sysenter, sysexit, swapgs, rsm, monitor, mwait, xgetbv, xsetbv, clac, stac
  case rdrand, rdseed, rdfsbase, rdgsbase, wrfsbase, wrgsbase, rdpid
  case nop, pause, ud0, ud1, ud2, wait, lfence, mfence, sfence, clflush, prefetch, endbr64, endbr32
  /// TSX and protection keys: decoded for length and disassembly; #UD (not advertised).
  case xbegin, xabort, xend, xtest, rdpkru, wrpkru
  // BMI1/BMI2 (VEX-encoded)
  case andn, bextr, blsi, blsmsk, blsr, bzhi, mulx, pdep, pext, rorx, sarx, shlx, shrx
  /// SSE/MMX/3DNow: decoded for length and disassembly; executes as #UD for now.
  case sse
  /// VEX-encoded AVX/AVX2 and mask-register instructions (`VEXForms`): decoded for length and
  /// disassembly; #UD (AVX is not advertised).
  case avx
  /// EVEX-encoded AVX-512 instructions (`EVEXForms`): decoded for length and disassembly; #UD.
  case avx512
  /// MMX EMMS (no ModRM); #UD for now like the rest of MMX.
  case emms
  /// x87: decoded for length and disassembly; executes as #UD (or #NM) for now.
  case x87
  case fxsave, fxrstor, ldmxcsr, stmxcsr, xsave, xrstor, xsaveopt
  /// 8086 only: D0-D3 /6 (sets the operand to all ones).
  case setmo
}

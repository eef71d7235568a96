import Foundation
import TestHostSupport
import Testing
import X86

@testable import Oracles

/// Every SSE3, SSSE3, SSE4.1, SSE4.2 (CRC32 included), MMX and MM/XMM conversion form the model
/// executes, assembled by clang at test time (register and memory operands, the MMX forms of
/// SSSE3, the general-register forms of PEXTR*/PINSR*, the narrow memory operands of PMOVSX/ZX):
/// the disassembler must print each as llvm-objdump does.
@Test(.requires(.llvmObjdump)) func decoderAgreesWithObjdumpOnSIMDForms() throws {
  let runner = try #require(ObjdumpRunner.locate())
  let forms = """
    addsubps xmm1, xmm2; addsubpd xmm1, [rax]; haddps xmm3, xmm9; haddpd xmm3, [rbx+8];
    hsubps xmm1, xmm2; hsubpd xmm1, xmm2; movsldup xmm1, xmm2; movshdup xmm1, [rax];
    movddup xmm1, xmm2; movddup xmm1, qword ptr [rax]; lddqu xmm1, [rax]; pshufb xmm1, xmm2;
    pshufb mm1, mm2; pshufb mm1, qword ptr [rax]; phaddw xmm1, [rax]; phaddd mm3, mm4;
    phaddsw xmm1, xmm2; pmaddubsw mm1, mm2; phsubw xmm1, xmm2; phsubd xmm1, xmm2; phsubsw mm1, mm2;
    psignb xmm1, xmm2; psignw mm1, mm2; psignd xmm1, xmm2; pmulhrsw xmm1, xmm2; pabsb xmm1, xmm2;
    pabsw mm1, mm2; pabsd xmm1, xmm2; palignr xmm1, xmm2, 5; palignr mm1, mm2, 3;
    palignr mm1, qword ptr [rax], 3; pblendvb xmm1, xmm2, xmm0; blendvps xmm1, xmm2, xmm0;
    blendvpd xmm1, [rax], xmm0; ptest xmm1, xmm2; pmovsxbw xmm1, xmm2;
    pmovsxbw xmm1, qword ptr [rax]; pmovsxbd xmm1, dword ptr [rax]; pmovsxbq xmm1, word ptr [rax];
    pmovsxwd xmm1, qword ptr [rax]; pmovsxwq xmm1, dword ptr [rax]; pmovsxdq xmm1, qword ptr [rax];
    pmovzxbw xmm1, qword ptr [rax]; pmovzxbd xmm1, dword ptr [rax]; pmovzxbq xmm1, word ptr [rax];
    pmovzxwd xmm1, qword ptr [rax]; pmovzxwq xmm1, dword ptr [rax]; pmovzxdq xmm1, qword ptr [rax];
    pmuldq xmm1, xmm2; pcmpeqq xmm1, xmm2; movntdqa xmm1, [rax]; packusdw xmm1, xmm2;
    pcmpgtq xmm1, xmm2; pminsb xmm1, xmm2; pminsd xmm1, xmm2; pminuw xmm1, xmm2; pminud xmm1, xmm2;
    pmaxsb xmm1, xmm2; pmaxsd xmm1, xmm2; pmaxuw xmm1, xmm2; pmaxud xmm1, xmm2; pmulld xmm1, xmm2;
    phminposuw xmm1, xmm2; roundps xmm1, xmm2, 3; roundpd xmm1, [rax], 3; roundss xmm1, xmm2, 3;
    roundss xmm1, dword ptr [rax], 3; roundsd xmm1, qword ptr [rax], 3; blendps xmm1, xmm2, 3;
    blendpd xmm1, xmm2, 3; pblendw xmm1, xmm2, 3; pextrb eax, xmm2, 3;
    pextrb byte ptr [rax], xmm2, 3; pextrw eax, xmm2, 3; pextrw word ptr [rax], xmm2, 3;
    pextrd eax, xmm2, 3; pextrd dword ptr [rax], xmm2, 3; pextrq rax, xmm2, 1;
    pextrq qword ptr [rax], xmm2, 1; extractps eax, xmm2, 3; extractps dword ptr [rax], xmm2, 3;
    pinsrb xmm1, eax, 3; pinsrb xmm1, byte ptr [rax], 3; insertps xmm1, xmm2, 3;
    insertps xmm1, dword ptr [rax], 3; pinsrd xmm1, eax, 3; pinsrd xmm1, dword ptr [rax], 3;
    pinsrq xmm1, rax, 1; pinsrq xmm1, qword ptr [rax], 1; dpps xmm1, xmm2, 0xff;
    dppd xmm1, xmm2, 0x31; mpsadbw xmm1, xmm2, 5; pcmpestrm xmm1, xmm2, 5;
    pcmpestri xmm1, [rax], 5; pcmpistrm xmm1, xmm2, 5; pcmpistri xmm1, xmm2, 5; crc32 eax, cl;
    crc32 eax, ah; crc32 eax, sil; crc32 eax, byte ptr [rax]; crc32 eax, cx;
    crc32 eax, word ptr [rax]; crc32 eax, ecx; crc32 eax, dword ptr [rax]; crc32 rax, rcx;
    crc32 rax, qword ptr [rax]; crc32 rax, cl; paddb mm1, mm2; paddq mm1, qword ptr [rax];
    punpcklbw mm1, mm2; punpcklwd mm1, dword ptr [rax]; punpckhdq mm1, qword ptr [rax];
    packsswb mm1, mm2; movd mm1, eax; movd mm1, dword ptr [rax]; movq mm1, rax; movd eax, mm1;
    movq rax, mm1; movq mm1, mm2; movq mm1, qword ptr [rax]; movq qword ptr [rax], mm2;
    movntq qword ptr [rax], mm2; pshufw mm1, mm2, 0x1b; psrlw mm1, 3; psraw mm1, 3; psllq mm1, 3;
    psrlq mm1, mm2; pinsrw mm1, eax, 3; pinsrw mm1, word ptr [rax], 3; pextrw eax, mm1, 3;
    pmovmskb eax, mm1; maskmovq mm1, mm2; emms; pavgb mm1, mm2; psadbw mm1, mm2; pmulhuw mm1, mm2;
    pmuludq mm1, mm2; psubq mm1, mm2; cvtpi2ps xmm1, mm2; cvtpi2ps xmm1, qword ptr [rax];
    cvtpi2pd xmm1, mm2; cvtps2pi mm1, xmm2; cvtps2pi mm1, qword ptr [rax]; cvttps2pi mm1, xmm2;
    cvtpd2pi mm1, xmm2; cvttpd2pi mm1, [rax]; movq2dq xmm1, mm2; movdq2q mm1, xmm2;
    pinsrw xmm1, word ptr [rax], 3; pinsrw xmm1, eax, 3; movd dword ptr [rax], mm1;
    movq qword ptr [rax], mm1; pshufw mm1, qword ptr [rax], 1; pcmpgtb mm1, qword ptr [rax];
    pextrw eax, xmm1, 3; palignr xmm1, xmm2, 5;
    """
  let source =
    "__asm__(\".intel_syntax noprefix\\n"
    + forms.replacingOccurrences(of: "; ", with: "\\n")
    .replacingOccurrences(of: "\n", with: "\\n") + "\\n.att_syntax prefix\\n\");\n"
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-simd-\(getpid())").path
  try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: directory) }
  let object = try runner.compileC(
    source, arguments: ["-target", "x86_64-linux-gnu", "-ffreestanding"], directory: directory, name: "simd")
  let report = try ObjdumpComparison.compareBinary(runner: runner, path: object, limit: 10_000)
  print(report.summary(label: "objdump SIMD forms"))
  for m in report.mismatches.prefix(10) { print("  \(m)") }
  #expect(report.compared >= 150)
  #expect(report.mismatchCount == 0)
}

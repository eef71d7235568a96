import Testing
import X86

@Suite struct DisassemblerTests {
  static let cases: [([UInt8], Int, String)] = [
    ([0x48, 0x89, 0xD8], 64, "mov\trax, rbx"),
    ([0x48, 0x8B, 0x44, 0xCB, 0x10], 64, "mov\trax, qword ptr [rbx + 8*rcx + 0x10]"),
    ([0x48, 0x83, 0xC0, 0xFF], 64, "add\trax, -0x1"),
    ([0x48, 0xB8, 1, 0, 0, 0, 0, 0, 0, 0], 64, "movabs\trax, 0x1"),
    ([0x98], 64, "cwde"),
    ([0x48, 0x98], 64, "cdqe"),
    ([0x48, 0x99], 64, "cqo"),
    ([0x0F, 0x94, 0xC0], 64, "sete\tal"),
    ([0x48, 0x0F, 0x45, 0xC1], 64, "cmovne\trax, rcx"),
    ([0xF3, 0x48, 0xAB], 64, "rep stosq\tqword ptr es:[rdi], rax"),
    ([0x66, 0x0F, 0x1F, 0x44, 0, 0], 64, "nop\tword ptr [rax + rax]"),
    ([0x8B, 0x45, 0xF8], 64, "mov\teax, dword ptr [rbp - 0x8]"),
    ([0x64, 0x48, 0x8B, 0x04, 0x25, 0x28, 0, 0, 0], 64, "mov\trax, qword ptr fs:[0x28]"),
    ([0x48, 0x63, 0xC0], 64, "movsxd\trax, eax"),
    ([0xF0, 0x48, 0x0F, 0xB1, 0x0A], 64, "lock cmpxchg\tqword ptr [rdx], rcx"),
    ([0x8B, 0x42, 0xF0], 16, "mov\tax, word ptr [bp + si - 0x10]"),
    ([0x60], 32, "pushal"),
    ([0xD4, 0x0A], 32, "aam"),
    ([0x66, 0x0F, 0xEF, 0xC0], 64, "pxor\txmm0, xmm0"),
    ([0xDE, 0xC1], 64, "faddp\tst(1), st"),
  ]

  @Test(arguments: cases) func text(bytes: [UInt8], bits: Int, expected: String) {
    let mode: CodeMode = bits == 64 ? .bits64 : bits == 32 ? .bits32 : .bits16
    let r = Disassembler.disassemble(bytes, mode: mode)
    #expect(r?.text == expected)
    #expect(r?.length == bytes.count)
  }

  /// Scalar SSE memory sizes, general-register operands of the conversions, MOVQ xmm, xmm/m64,
  /// TSX and protection keys, as llvm-objdump prints them (checked against it when written).
  static let vectorAndExtensionCases: [([UInt8], String)] = [
    ([0xF3, 0x0F, 0x10, 0x00], "movss\txmm0, dword ptr [rax]"),
    ([0xF2, 0x0F, 0x10, 0x4B, 0x08], "movsd\txmm1, qword ptr [rbx + 0x8]"),
    ([0xF3, 0x0F, 0x11, 0x10], "movss\tdword ptr [rax], xmm2"),
    ([0x0F, 0x12, 0x00], "movlps\txmm0, qword ptr [rax]"),
    ([0x0F, 0x17, 0x18], "movhps\tqword ptr [rax], xmm3"),
    ([0x66, 0x0F, 0x12, 0x00], "movlpd\txmm0, qword ptr [rax]"),
    ([0xF2, 0x0F, 0x59, 0x00], "mulsd\txmm0, qword ptr [rax]"),
    ([0xF3, 0x0F, 0x58, 0x01], "addss\txmm0, dword ptr [rcx]"),
    ([0x66, 0x0F, 0x2E, 0x00], "ucomisd\txmm0, qword ptr [rax]"),
    ([0x0F, 0x2F, 0x08], "comiss\txmm1, dword ptr [rax]"),
    ([0xF3, 0x0F, 0x5A, 0x00], "cvtss2sd\txmm0, dword ptr [rax]"),
    ([0xF2, 0x0F, 0x5A, 0x00], "cvtsd2ss\txmm0, qword ptr [rax]"),
    ([0x0F, 0x5A, 0x00], "cvtps2pd\txmm0, qword ptr [rax]"),
    ([0xF3, 0x0F, 0x7E, 0x00], "movq\txmm0, qword ptr [rax]"),
    ([0xF3, 0x0F, 0x7E, 0xC1], "movq\txmm0, xmm1"),
    ([0xF3, 0x45, 0x0F, 0x7E, 0xCA], "movq\txmm9, xmm10"),
    ([0xF2, 0x48, 0x0F, 0x2A, 0xC0], "cvtsi2sd\txmm0, rax"),
    ([0xF3, 0x0F, 0x2A, 0xC8], "cvtsi2ss\txmm1, eax"),
    ([0xF2, 0x48, 0x0F, 0x2A, 0x00], "cvtsi2sd\txmm0, qword ptr [rax]"),
    ([0xF3, 0x0F, 0x2A, 0x00], "cvtsi2ss\txmm0, dword ptr [rax]"),
    ([0xF2, 0x48, 0x0F, 0x2C, 0xC0], "cvttsd2si\trax, xmm0"),
    ([0xF3, 0x0F, 0x2C, 0xC1], "cvttss2si\teax, xmm1"),
    ([0xF2, 0x4C, 0x0F, 0x2D, 0x08], "cvtsd2si\tr9, qword ptr [rax]"),
    ([0xF3, 0x0F, 0x2D, 0x00], "cvtss2si\teax, dword ptr [rax]"),
    ([0x0F, 0x2C, 0x00], "cvttps2pi\tmm0, qword ptr [rax]"),
    ([0x0F, 0x2A, 0xC1], "cvtpi2ps\txmm0, mm1"),
    ([0xF3, 0x0F, 0xC2, 0x00, 0x01], "cmpltss\txmm0, dword ptr [rax]"),
    ([0xF2, 0x0F, 0x51, 0x00], "sqrtsd\txmm0, qword ptr [rax]"),
    ([0xF2, 0x0F, 0x12, 0x00], "movddup\txmm0, qword ptr [rax]"),
    ([0xF3, 0x0F, 0xE6, 0x00], "cvtdq2pd\txmm0, qword ptr [rax]"),
    ([0x66, 0x0F, 0xD6, 0x00], "movq\tqword ptr [rax], xmm0"),
    ([0x0F, 0x01, 0xD5], "xend"),
    ([0x0F, 0x01, 0xD6], "xtest"),
    ([0xC6, 0xF8, 0x05], "xabort\t0x5"),
    ([0x0F, 0x01, 0xEE], "rdpkru"),
    ([0x0F, 0x01, 0xEF], "wrpkru"),
  ]

  @Test(arguments: vectorAndExtensionCases) func extensionText(bytes: [UInt8], expected: String) {
    let r = Disassembler.disassemble(bytes, mode: .bits64)
    #expect(r?.text == expected)
    #expect(r?.length == bytes.count)
  }

  @Test func tsxAndPKRUDecodeButDoNotExecute() {
    #expect(Disassembler.disassemble([0xC7, 0xF8, 0, 0, 0, 0], mode: .bits64, address: 0x7D)?.text == "xbegin\t0x83")
    for bytes: [UInt8] in [
      [0xC7, 0xF8, 0, 0, 0, 0], [0xC6, 0xF8, 5], [0x0F, 0x01, 0xD5], [0x0F, 0x01, 0xD6], [0x0F, 0x01, 0xEE],
    ] {
      let (cpu, _) = makeCPU64(bytes)
      #expect(cpu.step() == .exception(vector: 6, errorCode: nil), "\(bytes)")
    }
  }

  @Test func branchTargetsUseTheAddress() {
    #expect(Disassembler.disassemble([0xE8, 0, 0, 0, 0], mode: .bits64, address: 0x1000)?.text == "call\t0x1005")
    #expect(Disassembler.disassemble([0x75, 0xFE], mode: .bits64, address: 0x1234)?.text == "jne\t0x1234")
    #expect(Disassembler.disassemble([0x06], mode: .bits64) == nil)
  }
}

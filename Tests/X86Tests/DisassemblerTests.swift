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

  @Test func branchTargetsUseTheAddress() {
    #expect(Disassembler.disassemble([0xE8, 0, 0, 0, 0], mode: .bits64, address: 0x1000)?.text == "call\t0x1005")
    #expect(Disassembler.disassemble([0x75, 0xFE], mode: .bits64, address: 0x1234)?.text == "jne\t0x1234")
    #expect(Disassembler.disassemble([0x06], mode: .bits64) == nil)
  }
}

import Oracles
import TestHostSupport
import Testing
import X86

@testable import Translator

/// The translator's own x86-64 encoder against llvm-objdump: each instruction the back end emits,
/// in every operand size and with the awkward registers (RSP/R12 bases need a SIB, RBP/R13 bases a
/// displacement, SIL/DIL need a REX, R8-R15 set REX bits), must disassemble to the intended text.
@Suite struct X64AssemblerTests {
  /// One instruction: how to emit it, and what llvm-objdump must print (Intel syntax).
  struct Case: CustomStringConvertible, Sendable {
    let expected: String
    let emit: @Sendable (inout X64Assembler) -> Void
    var description: String { expected }
  }

  static let cases: [Case] = [
    Case(expected: "mov rbx, rdi") { $0.mov(.rbx, .register(.rdi)) },
    Case(expected: "mov qword ptr [rbx + 0x80], rax") { $0.mov(.memory(HostMemory(.rbx, 0x80)), .rax) },
    Case(expected: "mov eax, dword ptr [rbx + 0x8]") { $0.mov(.rax, .memory(HostMemory(.rbx, 8)), size: 4) },
    Case(expected: "mov cx, word ptr [r12]") { $0.mov(.rcx, .memory(HostMemory(.r12)), size: 2) },
    Case(expected: "mov byte ptr [r13], sil") { $0.mov(.memory(HostMemory(.r13)), .rsi, size: 1) },
    Case(expected: "mov dil, byte ptr [rsp + 0x10]") { $0.mov(.rdi, .memory(HostMemory(.rsp, 16)), size: 1) },
    Case(expected: "mov rdx, qword ptr [r13 + 8*rax]") {
      $0.mov(.rdx, .memory(HostMemory(.r13, 0, index: .rax, scale: 8)))
    },
    Case(expected: "mov rax, qword ptr [r12 + rax + 0x5010]") {
      $0.mov(.rax, .memory(HostMemory(.r12, 0x5010, index: .rax)))
    },
    Case(expected: "mov r10, qword ptr [rbp - 0x8]") { $0.mov(.r10, .memory(HostMemory(.rbp, -8))) },
    Case(expected: "mov eax, 0x10008e") { $0.load(.rax, constant: 0x10_008E) },
    Case(expected: "mov r9d, 0x7") { $0.load(.r9, constant: 7) },
    Case(expected: "mov rax, -0x2") { $0.load(.rax, constant: ~1) },
    Case(expected: "movabs r12, 0x55e93f2b39f0") { $0.load(.r12, constant: 0x55E9_3F2B_39F0) },
    Case(expected: "mov qword ptr [rbx + 0x8], -0x80") { $0.mov(.memory(HostMemory(.rbx, 8)), immediate: -128) },
    Case(expected: "mov word ptr [rax], 0x1234") { $0.mov(.memory(HostMemory(.rax)), immediate: 0x1234, size: 2) },
    Case(expected: "mov byte ptr [rbx + 0x30], 0x7f") {
      $0.mov(.memory(HostMemory(.rbx, 0x30)), immediate: 0x7F, size: 1)
    },
    Case(expected: "movzx r10d, byte ptr [rax]") { $0.movzx(.r10, .memory(HostMemory(.rax)), sourceSize: 1) },
    Case(expected: "movzx edx, word ptr [rbx + 0x8]") {
      $0.movzx(.rdx, .memory(HostMemory(.rbx, 8)), sourceSize: 2)
    },
    Case(expected: "movsx r10, byte ptr [rbx + 0x38]") {
      $0.movsx(.r10, .memory(HostMemory(.rbx, 0x38)), sourceSize: 1)
    },
    Case(expected: "movsx rdx, word ptr [rax]") { $0.movsx(.rdx, .memory(HostMemory(.rax)), sourceSize: 2) },
    Case(expected: "movsxd r10, dword ptr [rax]") { $0.movsx(.r10, .memory(HostMemory(.rax)), sourceSize: 4) },
    Case(expected: "lea rsi, [rsi + 4*rdi + 0x10]") {
      $0.lea(.rsi, HostMemory(.rsi, 16, index: .rdi, scale: 4))
    },
    Case(expected: "lea esi, [rsi - 0x1]") { $0.lea(.rsi, HostMemory(.rsi, -1), size: 4) },
    Case(expected: "add qword ptr [rbx + 0x18], rdx") { $0.alu(.add, .memory(HostMemory(.rbx, 0x18)), .rdx) },
    Case(expected: "adc ecx, edx") { $0.alu(.adc, .register(.rcx), .rdx, size: 4) },
    Case(expected: "sbb dx, word ptr [rax]") { $0.alu(.sbb, .rdx, .memory(HostMemory(.rax)), size: 2) },
    Case(expected: "xor byte ptr [rbx + 0x30], dl") { $0.alu(.xor, .memory(HostMemory(.rbx, 0x30)), .rdx, size: 1) },
    Case(expected: "cmp rcx, qword ptr [r12 + rax + 0x5000]") {
      $0.alu(.cmp, .rcx, .memory(HostMemory(.r12, 0x5000, index: .rax)))
    },
    Case(expected: "and rcx, -0x1000") { $0.alu(.and, .register(.rcx), immediate: -4096) },
    Case(expected: "sub qword ptr [rbx + 0x20], 0x8") { $0.alu(.sub, .memory(HostMemory(.rbx, 0x20)), immediate: 8) },
    Case(expected: "or word ptr [rdi], 0x1234") { $0.alu(.or, .memory(HostMemory(.rdi)), immediate: 0x1234, size: 2) },
    Case(expected: "cmp byte ptr [r15 + rdx], 0x0") {
      $0.alu(.cmp, .memory(HostMemory(.r15, 0, index: .rdx)), immediate: 0, size: 1)
    },
    Case(expected: "and r8d, 0x8d5") { $0.alu(.and, .register(.r8), immediate: 0x8D5, size: 4) },
    Case(expected: "test rax, rax") { $0.test(.register(.rax), .rax) },
    Case(expected: "test byte ptr [rdi], 0x40") { $0.test(.memory(HostMemory(.rdi)), immediate: 0x40, size: 1) },
    Case(expected: "test dword ptr [rbx + 0x10], 0x10000") {
      $0.test(.memory(HostMemory(.rbx, 0x10)), immediate: 0x10000, size: 4)
    },
    Case(expected: "inc ecx") { $0.incDec(.register(.rcx), increment: true, size: 4) },
    Case(expected: "dec byte ptr [rax]") { $0.incDec(.memory(HostMemory(.rax)), increment: false, size: 1) },
    Case(expected: "shr rax, 0xc") { $0.shift(.shr, .register(.rax), count: 12) },
    Case(expected: "rcl r10w, 0x1") { $0.shift(.rcl, .register(.r10), count: 1, size: 2) },
    Case(expected: "sar dl, cl") { $0.shiftByCL(.sar, .register(.rdx), size: 1) },
    Case(expected: "imul eax, eax, 0x28") { $0.imul(.rax, .register(.rax), immediate: 40, size: 4) },
    Case(expected: "imul rcx, qword ptr [rax], 0x12345") {
      $0.imul(.rcx, .memory(HostMemory(.rax)), immediate: 0x12345)
    },
    Case(expected: "imul cx, word ptr [rbx + 0x8]") { $0.imul(.rcx, .memory(HostMemory(.rbx, 8)), size: 2) },
    Case(expected: "setb byte ptr [rbx + 0x10]") { $0.setcc(HostCondition.below, .memory(HostMemory(.rbx, 0x10))) },
    Case(expected: "cmovne rcx, rdx") { $0.cmov(HostCondition.notEqual, .rcx, .register(.rdx)) },
    Case(expected: "pushfq") { $0.pushfq() },
    Case(expected: "setb r10b") { $0.setcc(HostCondition.below, .register(.r10)) },
    Case(expected: "sahf") { $0.sahf() },
    Case(expected: "bt r10d, 0x8") { $0.bt(.register(.r10), bit: 8) },
    Case(expected: "lahf") { $0.lahf() },
    Case(expected: "add al, 0x7f") { $0.alu(.add, .register(.rax), immediate: 0x7F, size: 1) },
    Case(expected: "mov r10d, eax") { $0.mov(.r10, .register(.rax), size: 4) },
    Case(expected: "imul r10d, r10d, 0x801") { $0.imul(.r10, .register(.r10), immediate: 0x801, size: 4) },
    Case(expected: "xadd qword ptr [rdi], r11") { $0.xadd(.memory(HostMemory(.rdi)), .r11) },
    Case(expected: "xadd word ptr [rdi], dx") { $0.xadd(.memory(HostMemory(.rdi)), .rdx, size: 2) },
    Case(expected: "cmpxchg dword ptr [rdi], ebp") { $0.cmpxchg(.memory(HostMemory(.rdi)), .rbp, size: 4) },
    Case(expected: "cmpxchg byte ptr [rdi], sil") { $0.cmpxchg(.memory(HostMemory(.rdi)), .rsi, size: 1) },
    Case(expected: "xchg qword ptr [rdi], r15") { $0.xchg(.memory(HostMemory(.rdi)), .r15) },
    Case(expected: "xchg byte ptr [rdi], dl") { $0.xchg(.memory(HostMemory(.rdi)), .rdx, size: 1) },
    Case(expected: "add dword ptr [rdi], 0x3") { $0.alu(.add, .memory(HostMemory(.rdi)), immediate: 3, size: 4) },
    Case(expected: "popfq") { $0.popfq() },
    Case(expected: "cqo") { $0.cqo() },
    Case(expected: "lea r9, [r9 + 0x5]") { $0.lea(.r9, HostMemory(.r9, 5)) },
    Case(expected: "lea rax, [r9 - 0x7]") { $0.lea(.rax, HostMemory(.r9, -7)) },
    Case(expected: "push r8") { $0.push(.r8) },
    Case(expected: "pop r15") { $0.pop(.r15) },
    Case(expected: "call r11") { $0.call(.register(.r11)) },
    Case(expected: "jmp qword ptr [rax]") { $0.jmp(.memory(HostMemory(.rax))) },
    Case(expected: "ret") { $0.ret() },
  ]

  @Test(.requires(.llvmObjdump)) func encodingsAgreeWithObjdump() throws {
    let runner = try #require(ObjdumpRunner.locate())
    let samples = Self.cases.map { c -> [UInt8] in
      var a = X64Assembler()
      c.emit(&a)
      return a.finished()
    }
    let lines = try runner.disassembleSamples(samples, mode: .bits64)
    for (c, (bytes, printed)) in zip(Self.cases, zip(samples, lines)) {
      let text = printed.map { $0.text.replacingOccurrences(of: "\t", with: " ") }
      #expect(text == [c.expected], "\(bytes.map { String($0, radix: 16) }): \(text)")
      #expect(printed.first?.bytes.count == bytes.count, "\(c.expected): objdump took a different length")
    }
  }

  /// LOCK is one prefix byte in front of the next instruction (llvm-objdump prints it on a line of
  /// its own, so the cases above check the instructions without it).
  @Test func lockPrefixesTheNextInstruction() {
    var a = X64Assembler()
    a.lock()
    a.xadd(.memory(HostMemory(.rdi)), .r11)
    var plain = X64Assembler()
    plain.xadd(.memory(HostMemory(.rdi)), .r11)
    #expect(a.finished() == [0xF0] + plain.finished())
  }

  @Test func branchesToLabelsResolveForwardAndBackward() {
    var a = X64Assembler()
    let back = a.newLabel()
    let forward = a.newLabel()
    a.bind(back)
    a.ret()  // 0
    a.jcc(HostCondition.equal, forward)  // 1: 0F 84 rel32 -> 12
    a.jmp(back)  // 7: E9 rel32 -> 0
    a.ret()  // 12 (bound below? no: 12 is the RET, forward binds after it)
    a.bind(forward)  // 13
    let code = a.finished()
    #expect(Array(code[1...6]) == [0x0F, 0x84, 0x06, 0x00, 0x00, 0x00])  // 13 - 7
    #expect(Array(code[7...11]) == [0xE9, 0xF4, 0xFF, 0xFF, 0xFF])  // 0 - 12
  }

  /// The flag-free budget check's branch: JRCXZ over a JMP rel32, so RCX = 0 goes on after it.
  @Test func jumpUnlessRCXZeroSkipsItsJumpWhenRCXIsZero() {
    var a = X64Assembler()
    let out = a.newLabel()
    a.jmpUnlessRCXZero(out)  // 0: E3 05, 2: E9 rel32
    a.ret()  // 7
    a.bind(out)  // 8
    #expect(a.finished() == [0xE3, 0x05, 0xE9, 0x01, 0x00, 0x00, 0x00, 0xC3])
  }
}

import Testing
import X86

@Suite struct DecoderTests {
  func length(_ bytes: [UInt8], _ mode: CodeMode = .bits64) -> Int? {
    if case .success(let ins) = Decoder.decode(bytes, mode: mode) { return Int(ins.length) }
    return nil
  }

  @Test func tricky64BitLengths() {
    #expect(length([0x48, 0xB8, 1, 2, 3, 4, 5, 6, 7, 8]) == 10)  // movabs rax, imm64
    #expect(length([0xA1, 1, 2, 3, 4, 5, 6, 7, 8]) == 9)  // mov eax, [moffs64]
    #expect(length([0x67, 0xA1, 1, 2, 3, 4]) == 6)  // moffs32 with 67
    #expect(length([0x66, 0x48, 0xC7, 0xC0, 1, 2, 3, 4]) == 8)  // REX.W wins over 66: imm32
    #expect(length([0x66, 0xC7, 0xC0, 1, 2]) == 5)  // imm16
    #expect(length([0x8B, 0x04, 0x25, 0, 0, 0, 0]) == 7)  // SIB, no base, disp32
    #expect(length([0x8B, 0x05, 0, 0, 0, 0]) == 6)  // RIP-relative
    #expect(length([0x41, 0x8B, 0x44, 0x24, 0x08]) == 5)  // [r12 + 8]
    #expect(length([0x41, 0x8B, 0x45, 0x00]) == 4)  // [r13 + 0] needs disp8
    #expect(length([0xF6, 0xC0, 0x12]) == 3)  // test al, imm8
    #expect(length([0xF7, 0xD0]) == 2)  // not eax: no immediate
    #expect(length([0xC8, 0x10, 0x00, 0x01]) == 4)  // enter
    #expect(length([0x0F, 0x3A, 0x0F, 0xC1, 0x08]) == 5)  // palignr
    #expect(length([0x66, 0x0F, 0x38, 0x00, 0xC1]) == 5)  // pshufb
    #expect(length([0xDD, 0x04, 0x24]) == 3)  // fld qword ptr [rsp]
    #expect(length([0x0F, 0x1F, 0x84, 0, 0, 0, 0, 0]) == 8)
    #expect(length([0x66, 0x66, 0x2E, 0x0F, 0x1F, 0x84, 0, 0, 0, 0, 0]) == 11)
  }

  @Test func sixteenAndThirtyTwoBitModes() {
    #expect(length([0x8B, 0x06, 0x34, 0x12], .bits16) == 4)  // mov ax, [0x1234]
    #expect(length([0x8B, 0x40, 0x10], .bits16) == 3)  // [bx+si+0x10]
    #expect(length([0x67, 0x8B, 0x04, 0x24], .bits16) == 4)  // 32-bit addressing in 16-bit code
    #expect(length([0x66, 0xB8, 1, 2, 3, 4], .bits16) == 6)
    #expect(length([0x40], .bits32) == 1)  // inc eax
    #expect(length([0xC4, 0x00], .bits32) == 2)  // les eax, [eax]
    #expect(length([0x9A, 0, 0, 0, 0, 0, 0], .bits32) == 7)  // call far ptr16:32
    #expect(length([0x9A, 0, 0, 0, 0], .bits16) == 5)
  }

  @Test func invalidAndTooLong() {
    if case .undefined = Decoder.decode([0x06], mode: .bits64) {} else { Issue.record("push es: #UD in 64-bit") }
    // VZEROUPPER decodes (AVX is decoded for length and text) in 64- and 32-bit mode; executing it
    // is #UD (DisassemblerTests.vexInstructionsDecodeButDoNotExecute).
    for mode in [CodeMode.bits64, .bits32] {
      if case .success(let i) = Decoder.decode([0xC5, 0xF8, 0x77], mode: mode) {
        #expect(i.operation == .avx && i.length == 3)
      } else {
        Issue.record("VEX VZEROUPPER decodes in \(mode)")
      }
    }
    if case .undefined = Decoder.decode([0xF0, 0x01, 0xC0], mode: .bits64) {
    } else {
      Issue.record("LOCK with a register destination: #UD")
    }
    if case .success = Decoder.decode([0xF0, 0x01, 0x00], mode: .bits64) {} else { Issue.record("lock add valid") }
    #expect(length([UInt8](repeating: 0x66, count: 14) + [0x90]) == 15)
    if case .tooLong = Decoder.decode([UInt8](repeating: 0x66, count: 15) + [0x90], mode: .bits64) {
    } else {
      Issue.record("16 bytes must be too long")
    }
    if case .truncated = Decoder.decode([0x48, 0xB8, 1, 2], mode: .bits64) {} else { Issue.record("truncated") }
  }

  @Test func rexRegisterSelection() {
    guard case .success(let a) = Decoder.decode([0x40, 0x88, 0xE0], mode: .bits64),
      case .success(let b) = Decoder.decode([0x88, 0xE0], mode: .bits64),
      case .success(let c) = Decoder.decode([0x41, 0x50], mode: .bits64)
    else {
      Issue.record("decode failed")
      return
    }
    #expect(a.operands.0 == Operand(.gpr, size: 1, reg: 0))
    #expect(a.operands.1 == Operand(.gpr, size: 1, reg: 4))  // spl
    #expect(b.operands.1 == Operand(.gprHigh8, size: 1, reg: 0))  // ah
    #expect(c.operands.0.reg == 8 && c.operandSize == 8)  // push r8
  }

  @Test func modelAliases() {
    guard case .success(let j) = Decoder.decode([0x64, 0x05], mode: .bits16, model: .i8086),
      case .success(let p) = Decoder.decode([0x0F], mode: .bits16, model: .i8086)
    else {
      Issue.record("8086 aliases")
      return
    }
    #expect(j.operation == .jcc && j.condition == 4 && j.length == 2)
    #expect(p.operation == .pop && p.operands.0.kind == .segment && p.operands.0.reg == 1)
    if case .undefined = Decoder.decode([0x66, 0x90], mode: .bits16, model: .i80286) {
    } else {
      Issue.record("66 is undefined on the 286")
    }
  }
}

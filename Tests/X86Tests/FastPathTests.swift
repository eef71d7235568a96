import Testing

@testable import X86

/// The interpreter's pre-resolved fast handlers (`FastForm`, `CPU+FastPath.swift`) and the
/// page-local run loop: which instructions get a fast form, and that running with them gives
/// exactly what the general `execute` path gives — registers, flags, memory, faults and budgets.
@Suite struct FastPathTests {
  /// A loop over most fast forms (ALU in every shape, ADC/SBB, INC/DEC of memory, MOVSX/MOVZX,
  /// IMUL forms, shifts by CL and immediates, CMOVcc, SETcc, PUSH/POP, CALL/RET, LEA, Jcc) with one
  /// general-path instruction (NEG) in the middle. Data at 0x3000, stack at 0x8000 (nasm source in
  /// the comment of each line group).
  static let mixedLoop: [UInt8] = [
    0xB9, 0x32, 0x00, 0x00, 0x00, 0xBE, 0x00, 0x30, 0x00, 0x00, 0x31, 0xDB, 0x48, 0x8B, 0x04, 0xCE,
    0x48, 0x01, 0xC8, 0x4C, 0x39, 0xC8, 0x48, 0x11, 0xC3, 0x39, 0xD3, 0x19, 0xDA, 0x4C, 0x6B, 0xC8,
    0xF9, 0x4C, 0x0F, 0xAF, 0x56, 0x08, 0x4C, 0x0F, 0xBE, 0x1C, 0x0E, 0x44, 0x0F, 0xB7, 0x24, 0x4E,
    0x4C, 0x63, 0x6E, 0x04, 0x48, 0xD3, 0xE0, 0x49, 0xC1, 0xF9, 0x03, 0x41, 0xD3, 0xCA, 0x49, 0xD1,
    0xD3, 0x48, 0xFF, 0x84, 0xCE, 0x00, 0x02, 0x00, 0x00, 0xFE, 0x4E, 0x03, 0xF6, 0x04, 0x0E, 0x40,
    0x4D, 0x0F, 0x45, 0xF1, 0x44, 0x0F, 0x48, 0x7E, 0x10, 0x0F, 0x92, 0xC2, 0x0F, 0x9F, 0xC0, 0x09,
    0x84, 0x8E, 0x00, 0x01, 0x00, 0x00, 0x66, 0x41, 0x21, 0xD8, 0x41, 0x30, 0xD0, 0x48, 0x83, 0x6E,
    0x18, 0x05, 0x4D, 0x39, 0xD1, 0x50, 0x53, 0x68, 0x34, 0x12, 0x00, 0x00, 0x5F, 0x5D, 0xE8, 0x26,
    0x00, 0x00, 0x00, 0x58, 0x48, 0xF7, 0xD8, 0x48, 0x89, 0x84, 0xCE, 0x00, 0x04, 0x00, 0x00, 0xC7,
    0x84, 0x8E, 0x00, 0x08, 0x00, 0x00, 0xEF, 0xBE, 0xAD, 0xDE, 0x48, 0x8D, 0x54, 0x58, 0x07, 0x90,
    0xFF, 0xC9, 0x0F, 0x85, 0x64, 0xFF, 0xFF, 0xFF, 0xCC, 0x48, 0x89, 0xE0, 0xC3,
  ]
  // mov ecx, 50; mov esi, 0x3000; xor ebx, ebx
  // again: mov rax, [rsi+rcx*8]; add rax, rcx; cmp rax, r9; adc rbx, rax; cmp ebx, edx; sbb edx, ebx
  // imul r9, rax, -7
  // imul r10, [rsi+8]; movsx r11, byte [rsi+rcx]; movzx r12d, word [rsi+rcx*2]
  // movsxd r13, dword [rsi+4]; shl rax, cl; sar r9, 3; ror r10d, cl; rcl r11, 1
  // inc qword [rsi+rcx*8+512]; dec byte [rsi+3]; test byte [rsi+rcx], 0x40; cmovnz r14, r9
  // cmovs r15d, [rsi+16]; setc dl; setg al; or [rsi+rcx*4+256], eax; and r8w, bx; xor r8b, dl
  // sub qword [rsi+24], 5; cmp r9, r10; push rax; push rbx; push 0x1234; pop rdi; pop rbp
  // call sub1; pop rax; neg rax; mov [rsi+rcx*8+1024], rax; mov dword [rsi+rcx*4+2048], 0xDEADBEEF
  // lea rdx, [rax+rbx*2+7]; nop; dec ecx; jnz again; int3
  // sub1: mov rax, rsp; ret

  func makeMixedLoopCPU(fastPath: Bool) -> (CPU, TestRAM) {
    let (cpu, ram) = makeCPU64(Self.mixedLoop)
    ram.load((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }, at: 0x3000)
    cpu.fastPathEnabled = fastPath
    return (cpu, ram)
  }

  /// Registers, RIP, RFLAGS, the retired count, the data page and the top of the stack, by name.
  func snapshot(_ cpu: CPU, _ ram: TestRAM) -> [(String, UInt64)] {
    (0..<16).map { ("r\($0)", cpu.state.gpr($0)) }
      + [("rip", cpu.state.rip), ("rflags", cpu.state.rflags), ("retired", cpu.instructionsRetired)]
      + (0..<512).map { ("[0x\(String(0x3000 + 8 * $0, radix: 16))]", ram.qword(0x3000 + 8 * $0)) }
      + (0..<16).map { ("[0x\(String(0x7F80 + 8 * $0, radix: 16))]", ram.qword(0x7F80 + 8 * $0)) }
  }

  /// The fields that differ, as "name: a vs b" (at most five).
  func differences(_ a: [(String, UInt64)], _ b: [(String, UInt64)]) -> [String] {
    zip(a, b).filter { $0.1 != $1.1 }.prefix(5).map {
      "\($0.0): 0x\(String($0.1, radix: 16)) vs 0x\(String($1.1, radix: 16))"
    }
  }

  @Test func classifiesTheCommonShapes() {
    func form(_ bytes: [UInt8], _ mode: CodeMode = .bits64) -> FastForm {
      guard case .success(let ins) = Decoder.decode(bytes, mode: mode) else { return .generic }
      return FastForm.classify(ins, mode: mode)
    }
    #expect(form([0x48, 0x01, 0xD3]) == .addRR)  // add rbx, rdx
    #expect(form([0x48, 0x83, 0xC7, 0x08]) == .addRI)  // add rdi, 8
    #expect(form([0x48, 0x3B, 0x07]) == .cmpRM)  // cmp rax, [rdi]
    #expect(form([0x48, 0x85, 0x1F]) == .testMR)  // test [rdi], rbx
    #expect(form([0x80, 0x37, 0x01]) == .xorMI)  // xor byte [rdi], 1
    #expect(form([0x48, 0x8B, 0x07]) == .movRM)  // mov rax, [rdi]
    #expect(form([0x48, 0x89, 0x1F]) == .movMR)  // mov [rdi], rbx
    #expect(form([0x0F, 0xB6, 0xC0]) == .movRR)  // movzx eax, al
    #expect(form([0x48, 0x63, 0xC7]) == .movsxRR)  // movsxd rax, edi
    #expect(form([0x48, 0xC1, 0xC3, 0x0D]) == .shiftR)  // rol rbx, 13
    #expect(form([0x49, 0x0F, 0xAF, 0xC0]) == .imulR)  // imul rax, r8
    #expect(form([0x75, 0xE4]) == .jcc)  // jnz
    #expect(form([0xE8, 0, 0, 0, 0]) == .callRel)
    #expect(form([0xC3]) == .ret)
    #expect(form([0x53]) == .pushR)
    #expect(form([0x0F, 0x1F, 0x00]) == .nop)
    // The general path keeps LOCK, system instructions, high-byte registers and strings.
    #expect(form([0xF0, 0x48, 0x01, 0x1F]) == .generic)  // lock add [rdi], rbx
    #expect(form([0x0F, 0x05]) == .generic)  // syscall
    #expect(form([0x88, 0xE0]) == .generic)  // mov al, ah
    #expect(form([0xF3, 0xA4]) == .generic)  // rep movsb
    #expect(form([0xC2, 0x08, 0x00]) == .generic)  // ret 8
    #expect(form([0x01, 0xD8], .bits32) == .addRR)  // add eax, ebx in 32-bit code: the same forms
  }

  /// PAUSE is a fast NOP and uncounted unless pause-loop exiting asks for the count.
  @Test func pauseIsCountedOnlyWhenAsked() throws {
    guard case .success(let pause) = Decoder.decode([0xF3, 0x90], mode: .bits64) else {
      Issue.record("PAUSE does not decode")
      return
    }
    #expect(FastForm.classify(pause, mode: .bits64) == .nop)
    #expect(FastForm.classify(pause, mode: .bits64, countingPauses: true) == .generic)
    for counting in [false, true] {
      let (cpu, _) = makeCPU64([0xF3, 0x90, 0xF3, 0x90, 0xF3, 0x90, 0xCC])  // pause x3; int3
      cpu.countsPauses = counting
      _ = cpu.run(budget: 3)
      #expect(cpu.instructionsRetired == 3)
      #expect(cpu.pausesRetired == (counting ? 3 : 0))
      #expect(cpu.pauseLoopLength == (counting ? 3 : 0))
    }
  }

  @Test func fastAndGeneralPathsAgreeOnAMixedLoop() {
    let (fast, fastRAM) = makeMixedLoopCPU(fastPath: true)
    let (general, generalRAM) = makeMixedLoopCPU(fastPath: false)
    let fastEvent = fast.run(budget: 100_000)
    let generalEvent = general.run(budget: 100_000)
    guard case .exception(vector: 3, _) = fastEvent, case .exception(vector: 3, _) = generalEvent else {
      Issue.record("expected both runs to stop at INT3: fast \(fastEvent), general \(generalEvent)")
      return
    }
    #expect(fast.instructionsRetired > 50 * 38)
    let diff = differences(snapshot(fast, fastRAM), snapshot(general, generalRAM))
    #expect(diff.isEmpty, "fast vs general path: \(diff)")
  }

  @Test func runStopsAtExactlyTheBudgetLikeSingleSteps() {
    // Budgets that end mid-loop, in the fast loop and on general-path instructions alike.
    for budget: UInt64 in [1, 2, 7, 38, 39, 40, 41, 333, 1000] {
      let (looped, loopedRAM) = makeMixedLoopCPU(fastPath: true)
      _ = looped.run(budget: 5)  // warm the decode cache so the fast loop has work
      let (stepped, steppedRAM) = makeMixedLoopCPU(fastPath: true)
      for _ in 0..<5 { _ = stepped.step() }
      #expect(looped.run(budget: budget) == .budgetExhausted)
      for _ in 0..<budget { _ = stepped.step() }
      #expect(looped.instructionsRetired == 5 + budget)
      let diff = differences(snapshot(looped, loopedRAM), snapshot(stepped, steppedRAM))
      #expect(diff.isEmpty, "budget \(budget), run vs steps: \(diff)")
    }
  }

  @Test func aStoreIntoTheRunningPageReachesTheNextIteration() {
    // mov ecx, 5; xor ebx, ebx; again: mov eax, 1; add ebx, eax;
    // add dword [rel again+1], 10; dec ecx; jnz again; int3
    let (cpu, _) = makeCPU64([
      0xB9, 0x05, 0x00, 0x00, 0x00, 0x31, 0xDB, 0xB8, 0x01, 0x00, 0x00, 0x00, 0x01, 0xC3, 0x83, 0x05, 0xF3,
      0xFF, 0xFF, 0xFF, 0x0A, 0xFF, 0xC9, 0x75, 0xEE, 0xCC,
    ])
    guard case .exception(vector: 3, _) = cpu.run(budget: 1000) else {
      Issue.record("expected INT3")
      return
    }
    #expect(cpu.state.gpr(Reg.rbx) == 1 + 11 + 21 + 31 + 41)
  }

  @Test func aFastFormThatFaultsLeavesTheStateAsBefore() {
    // mov rax, [rdi] twice in a loop whose second pass reads unmapped memory: the cached fast form
    // declines and the general path raises #PF with RIP at the load.
    // again: mov rax, [rdi]; add rdi, 0x200000; jmp again
    let (cpu, _) = makeCPU64([0x48, 0x8B, 0x07, 0x48, 0x81, 0xC7, 0x00, 0x00, 0x20, 0x00, 0xEB, 0xF4])
    cpu.state.setGPR(Reg.rdi, 0x3000)
    cpu.state.setGPR(Reg.rax, 0x1111)
    let event = cpu.run(budget: 100)
    #expect(event == .exception(vector: 14, errorCode: 4))
    #expect(cpu.state.rip == 0x1000)
    #expect(cpu.state.gpr(Reg.rdi) == 0x20_3000)
    #expect(cpu.state.gpr(Reg.rax) == 0)  // the first pass loaded the zero at 0x3000
    #expect(cpu.state.cr2 == 0x20_3000)
  }
}

import Testing

@testable import X86

/// The general path inside the page-local run loop (`CPU+GeneralInPage.swift`): instructions the
/// fast handlers do not cover run in place, and a fault one of them raises is delivered there.
/// `run(budget:)` must end exactly where as many `step()` calls end, with the fast path on and off.
@Suite struct GeneralInPageTests {
  /// Real mode, code at 0000:0100: a loop whose DIV divides by zero every fourth pass (#DE,
  /// delivered through the IVT to 0000:0200, which counts in DI, makes the divisor 1 and IRETs
  /// back to the DIV), with NEG (no fast form) and fast forms around it.
  ///
  ///       mov cx, 20; xor bx, bx
  ///     again: mov ax, cx; xor dx, dx; mov si, cx; and si, 3; div si; add bx, ax; neg bx
  ///       dec cx; jnz again; hlt
  ///     handler (0x200): inc di; mov si, 1; iret
  func makeDivideLoopCPU(_ model: CPUModel, fastPath: Bool) -> (CPU, TestRAM) {
    let (cpu, ram) = makeCPUReal(
      model,
      [
        0xB9, 0x14, 0x00, 0x31, 0xDB, 0x89, 0xC8, 0x31, 0xD2, 0x89, 0xCE, 0x83, 0xE6, 0x03, 0xF7, 0xF6, 0x01, 0xC3,
        0xF7, 0xDB, 0x49, 0x75, 0xEE, 0xF4,
      ])
    ram.load([0x47, 0xBE, 0x01, 0x00, 0xCF], at: 0x200)
    ram.load([0x00, 0x02, 0x00, 0x00], at: 0)  // IVT entry 0: 0000:0200
    cpu.fastPathEnabled = fastPath
    return (cpu, ram)
  }

  func snapshot(_ cpu: CPU, _ ram: TestRAM) -> [UInt64] {
    (0..<8).map { cpu.state.gpr($0) } + [cpu.state.rip, cpu.state.rflags, cpu.instructionsRetired]
      + (0..<16).map { UInt64(ram.word(0xFE0 + 2 * $0)) }
  }

  /// For each budget: `run(budget:)` on one CPU and as many `step()` calls on another, both made
  /// by `make` and warmed up by `warmUp` instructions (so the page loop finds cached code), end
  /// with the same event and the same `snapshot`.
  func expectLoopMatchesSteps(
    budgets: [UInt64], warmUp: UInt64, make: () -> (CPU, TestRAM), snapshot: (CPU, TestRAM) -> [UInt64]
  ) {
    for budget in budgets {
      let (looped, loopedRAM) = make()
      _ = looped.run(budget: warmUp)
      let (stepped, steppedRAM) = make()
      for _ in 0..<warmUp { _ = stepped.step() }
      let event = looped.run(budget: budget)
      var steppedEvent: CPUEvent = .budgetExhausted
      for _ in 0..<budget {
        if let e = stepped.step() {
          steppedEvent = e
          break
        }
      }
      #expect(event == steppedEvent, "budget \(budget)")
      #expect(snapshot(looped, loopedRAM) == snapshot(stepped, steppedRAM), "budget \(budget)")
    }
  }

  @Test(arguments: [CPUModel.i80386, .host64], [true, false])
  func faultsDeliveredInTheLoopMatchSingleSteps(model: CPUModel, fastPath: Bool) {
    expectLoopMatchesSteps(
      budgets: [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 40, 57, 1000], warmUp: 3,
      make: { makeDivideLoopCPU(model, fastPath: fastPath) }, snapshot: snapshot)
    let (cpu, _) = makeDivideLoopCPU(model, fastPath: fastPath)
    #expect(cpu.run(budget: 10_000) == .halt)
    #expect(cpu.state.gpr(Reg.rdi) & 0xFFFF == 5)  // CX = 20, 16, 12, 8, 4
  }

  /// 64-bit code: SSE instructions (no fast forms) run in place in the page loop, MASKMOVDQU's
  /// implicit store among them, and a misaligned MOVDQA faults there on the last pass:
  ///
  ///       mov ecx, 6
  ///     again: paddb xmm0, xmm1; pxor xmm2, xmm0; maskmovdqu xmm0, xmm1; add rdi, 16
  ///       movdqa [rsi], xmm2; add rsi, 16; dec ecx; cmp ecx, 1; jne again
  ///       add rsi, 8; movdqa [rsi], xmm2   ; #GP(0): misaligned
  func makeSSELoopCPU(fastPath: Bool) -> (CPU, TestRAM) {
    let (cpu, ram) = makeCPU64([
      0xB9, 0x06, 0x00, 0x00, 0x00,  // mov ecx, 6
      0x66, 0x0F, 0xFC, 0xC1,  // paddb xmm0, xmm1
      0x66, 0x0F, 0xEF, 0xD0,  // pxor xmm2, xmm0
      0x66, 0x0F, 0xF7, 0xC1,  // maskmovdqu xmm0, xmm1
      0x48, 0x83, 0xC7, 0x10,  // add rdi, 16
      0x66, 0x0F, 0x7F, 0x16,  // movdqa [rsi], xmm2
      0x48, 0x83, 0xC6, 0x10,  // add rsi, 16
      0xFF, 0xC9,  // dec ecx
      0x83, 0xF9, 0x01,  // cmp ecx, 1
      0x75, 0xE1,  // jne again
      0x48, 0x83, 0xC6, 0x08,  // add rsi, 8
      0x66, 0x0F, 0x7F, 0x16,  // movdqa [rsi], xmm2
    ])
    var image = [UInt8](repeating: 0, count: 512)
    image[0] = 0x7F
    image[1] = 0x03
    image[24] = 0x80
    image[25] = 0x1F
    for j in 0..<16 { image[160 + 16 + j] = UInt8(j % 2 == 0 ? 0x80 | j : j) }  // xmm1: every other byte selects
    cpu.loadFXSAVEImage(image)
    cpu.state.setGPR(Reg.rdi, 0x3000)
    cpu.state.setGPR(Reg.rsi, 0x4000)
    cpu.fastPathEnabled = fastPath
    return (cpu, ram)
  }

  @Test(arguments: [true, false]) func sseInstructionsRunInPlaceAndMatchSingleSteps(fastPath: Bool) {
    func state(_ cpu: CPU, _ ram: TestRAM) -> [UInt64] {
      (0..<8).map { cpu.state.gpr($0) } + [cpu.state.rip, cpu.instructionsRetired]
        + (0..<24).map { ram.qword(0x3000 + 8 * $0) } + (0..<16).map { ram.qword(0x4000 + 8 * $0) }
        + [cpu.xmm(0).0, cpu.xmm(0).1, cpu.xmm(2).0, cpu.xmm(2).1]
    }
    expectLoopMatchesSteps(
      budgets: [1, 4, 9, 10, 23, 40, 47, 48, 49, 60, 1000], warmUp: 2, make: { makeSSELoopCPU(fastPath: fastPath) },
      snapshot: state)
    let (cpu, ram) = makeSSELoopCPU(fastPath: fastPath)
    #expect(cpu.run(budget: 10_000) == .exception(vector: 13, errorCode: 0))
    // The first pass stores xmm0 = xmm1's even bytes at 0x3000, the second 2 * xmm1's at 0x3010.
    #expect(ram.byte(0x3000) == 0x80 && ram.byte(0x3002) == 0x82, "MASKMOVDQU stored the selected bytes")
    #expect(ram.byte(0x3001) == 0 && ram.byte(0x3003) == 0, "and only those")
    #expect(ram.byte(0x3010) == 0x00 && ram.byte(0x3012) == 0x04)
  }
}

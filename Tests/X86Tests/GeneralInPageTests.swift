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

  @Test(arguments: [CPUModel.i80386, .host64], [true, false])
  func faultsDeliveredInTheLoopMatchSingleSteps(model: CPUModel, fastPath: Bool) {
    for budget: UInt64 in [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 40, 57, 1000] {
      let (looped, loopedRAM) = makeDivideLoopCPU(model, fastPath: fastPath)
      _ = looped.run(budget: 3)  // fill the decode cache so the page loop has work
      let (stepped, steppedRAM) = makeDivideLoopCPU(model, fastPath: fastPath)
      for _ in 0..<3 { _ = stepped.step() }
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
    let (cpu, _) = makeDivideLoopCPU(model, fastPath: fastPath)
    #expect(cpu.run(budget: 10_000) == .halt)
    #expect(cpu.state.gpr(Reg.rdi) & 0xFFFF == 5)  // CX = 20, 16, 12, 8, 4
  }
}

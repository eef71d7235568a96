import CNative
import Testing

@testable import Oracles

/// Short programs on the model with the translator attached (the difftest's `--engine dbt` setup,
/// 4-level paging at CPL 3) against the same programs on the interpreter with the same paging:
/// registers, RIP, RFLAGS, the sandbox and the outcome must agree, and translated code must have
/// run them. Each program is a translator bug the difftest found; no host CPU needed.
@Suite struct TranslatedProgramTests {
  static let arithmetic: UInt64 = FlagBits.cf | FlagBits.pf | FlagBits.af | FlagBits.zf | FlagBits.sf | FlagBits.of

  /// Runs `code` from `rflags` (and `gpr`) on dbt and on the paged interpreter.
  func runBoth(_ code: [UInt8], rflags: UInt64, gpr: [UInt64] = []) throws -> (dbt: RunResult, interp: RunResult) {
    var registers = (0..<16).map { UInt64($0) &* 0x0123_4567_89AB_CDEF }
    for (i, v) in gpr.enumerated() { registers[i] = v }
    registers[4] = CN_SANDBOX_ADDR + 0x1000
    let initial = MachineState(
      gpr: registers, rip: CN_CODE_ADDR, rflags: rflags, sandbox: Array(repeating: 0x5A, count: Int(CN_SANDBOX_SIZE)))
    let dbt = try ModelRunner(engine: .dbt)
    let interp = try ModelRunner(engine: .interp, paging: true)
    let d = dbt.run(code: code, initial: initial)
    let i = interp.run(code: code, initial: initial)
    #expect(dbt.translatedInstructions > 0, "the translator ran nothing")
    #expect(d.outcome == i.outcome)
    #expect(d.state.gpr == i.state.gpr)
    #expect(d.state.rip == i.state.rip)
    #expect(d.state.rflags & Self.arithmetic == i.state.rflags & Self.arithmetic)
    #expect(d.state.sandbox == i.state.sandbox)
    return (d, i)
  }

  /// ROL/ROR by an immediate write only CF and OF: SF ZF AF PF keep the guest's values. The back
  /// end once treated them as writing every flag, so the host's unrelated SF ZF AF PF reached the
  /// guest (difftest, class `shift`: `rol r8d, 0x38`, `ror r9w, 0x3f`).
  @Test(arguments: [0x8D5 as UInt64, 0x001])
  func rotatesByImmediateKeepTheOtherFlags(rflags: UInt64) throws {
    let code: [UInt8] = [
      0x41, 0xC1, 0xC0, 0x38,  // rol r8d, 0x38
      0x66, 0x41, 0xC1, 0xC9, 0x3F,  // ror r9w, 0x3f
      0x48, 0xD1, 0xC2,  // rol rdx, 1
    ]
    let (d, _) = try runBoth(code, rflags: rflags)
    #expect(d.outcome == .completed)
    let kept = FlagBits.sf | FlagBits.zf | FlagBits.af | FlagBits.pf
    #expect(d.state.rflags & kept == rflags & kept)
  }

  /// SYSCALL and SYSRETQ end a block through their helper; one that faults changes nothing and
  /// leaves RIP at it for the interpreter to raise the fault (here #UD: EFER.SCE is clear), after
  /// the block's earlier instructions completed.
  @Test(arguments: [[0x0F, 0x05] as [UInt8], [0x48, 0x0F, 0x07]])
  func aFastSystemCallThatFaultsIsRaisedAtItself(instruction: [UInt8]) throws {
    let code: [UInt8] = [0xB9, 0x05, 0x00, 0x00, 0x00, 0x48, 0xFF, 0xC2] + instruction  // mov ecx, 5; inc rdx
    let (d, _) = try runBoth(code, rflags: 0x202)
    #expect(d.outcome == .fault(vector: 6, errorCode: 0))
    #expect(d.state.rip == CN_CODE_ADDR + 8)
    #expect(d.state.gpr[1] == 5)
  }

  /// IRETQ goes through the same helper: one whose stack is not canonical faults in the helper
  /// with nothing changed, and the interpreter raises the fault at the IRETQ with the stack
  /// pointer the block set.
  @Test func anIRETQThatFaultsIsRaisedAtItself() throws {
    let code: [UInt8] = [
      0x48, 0xFF, 0xC2,  // inc rdx
      0x48, 0xBC, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,  // mov rsp, 0x8000_0000_0000_0000
      0x48, 0xCF,  // iretq
    ]
    let (d, i) = try runBoth(code, rflags: 0x202, gpr: [0, 0, 41])
    guard case .fault = d.outcome else {
      Issue.record("IRETQ did not fault: \(d.outcome)")
      return
    }
    #expect(d.outcome == i.outcome)
    #expect(d.state.rip == CN_CODE_ADDR + 13)
    #expect(d.state.gpr[4] == 0x8000_0000_0000_0000)
    #expect(d.state.gpr[2] == 42)
  }
}

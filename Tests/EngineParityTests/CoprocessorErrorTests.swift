import Interpreter
import TestHostSupport
import Testing
import Translator
import VMM

/// x87 errors with CR0.NE clear (the PC's MS-DOS compatible reporting): a waiting instruction
/// after an unmasked exception freezes with FERR#, the VMM raises IRQ 13, the handler writes port
/// 0xF0 and returns to the instruction. With FNCLEX in the handler the instruction then runs
/// normally; without, IGNNE# (asserted by the 0xF0 write) lets it and later ones run with the
/// exception still pending.
@Suite struct CoprocessorErrorTests {
  /// The 8259 pair at vectors 0x20/0x28 with IRQ 2 and IRQ 13 unmasked; CR0.NE cleared; 1 / 0
  /// with ZE unmasked, then two FWAITs. 0x9100 counts IRQ 13, 0x9004 says the code after the
  /// FWAITs ran, 0x9008 holds the final FSW. 0x9200 (preset) = 1 leaves the exception pending.
  static let guest = #"""
    main:
      GATE 0x2D, ferr_handler
      PIC_INIT 0xFB, 0xDF
      movq %cr0, %rax
      andq $~0x20, %rax
      movq %rax, %cr0
      sti
      fninit
      fldcw fcw(%rip)
      fld1
      fldz
      .byte 0xDE, 0xF9
      fwait
      fwait
      movl $2, 0x9004
      fnstsw 0x9008
      EXIT
    ferr_handler:
      pushq %rax
      pushq %rdx
      incl 0x9100
      OUT 0xF0, 0x00
      cmpl $0, 0x9200
      jne 1f
      fnclex
    1:
      OUT 0xA0, 0x20
      OUT 0x20, 0x20
      popq %rdx
      popq %rax
      iretq
    fcw:
      .word 0x37B
    """#

  static func check(_ run: APICTestGuest.Run, leftPending: Bool) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9100) == 1, "one IRQ 13")
    #expect(try run.u32(0x9004) == 2, "the FWAITs completed")
    let fsw = try run.u32(0x9008) & 0xFFFF
    if leftPending {
      #expect(fsw & 0x84 == 0x84, "ZE and ES still set: IGNNE# let the FWAITs run")
    } else {
      #expect(fsw & 0x84 == 0, "FNCLEX in the handler")
    }
  }

  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"], [false, true])
  func ferrRaisesIRQ13AndTheHandlerReleasesTheInstruction(engine: String, leftPending: Bool) throws {
    let e: any Engine = engine == "dbt" ? TranslatorEngine() : InterpreterEngine()
    let run = try APICTestGuest.run(Self.guest, on: e, presets: [0x9200: leftPending ? 1 : 0])
    try Self.check(run, leftPending: leftPending)
  }
}

import Testing
import X86

@testable import Oracles

/// The system-level difftest (`trivisor difftest --mode system --engine dbt`): random programs at
/// CPL 0 and 3 with page faults, PTE and CR3 changes, self-modifying code, SYSCALL/SYSRET, I/O,
/// debug registers and timer interrupts, on the model with the translator and without it.
@Suite struct SystemDiffTests {
  @Test func translatorMatchesTheInterpreterOnRandomSystemPrograms() throws {
    var options = SystemDiffOptions(instructionCount: 15_000, seed: 20261205)
    options.itemsPerProgram = 40
    options.instructionLimit = 5_000
    let tester = try SystemDiffTester(options: options)
    let report = tester.run()
    for m in report.mismatches { Issue.record(Comment(rawValue: m)) }
    #expect(report.mismatchCount == 0)
    #expect(report.instructions >= 15_000)
    // Translated code ran, and the programs met the system events they were made for.
    #expect(report.translatedInstructions > report.instructions / 5)
    #expect(report.eventKinds["timer", default: 0] > 0)
    #expect(report.exceptionVectors[14, default: 0] > 0)
    #expect(report.exceptionVectors[13, default: 0] > 0)
  }

  /// Program 270 of seed 4250, reduced to the five items that showed it: a loop that clears a
  /// PTE's present bit and reloads CR3, debug registers armed and cleared, PTEs made not present
  /// without INVLPG, and a loop of read-modify-writes. When generated code stored through any
  /// dirty write entry of the TLB, a read-modify-write went through an entry left stale by a
  /// page-table write, where the interpreter, whose store took its general path (the page was
  /// not in its write host-page cache), also translated the address for reading and faulted: the
  /// #PF came two instructions later on dbt. Stores now need the page in that cache, as the
  /// interpreter's fast path does.
  @Test func readModifyWritesFaultWhereTheInterpreterDoes() throws {
    let tester = try SystemDiffTester(options: SystemDiffOptions(instructionCount: 1, seed: 4250))
    let kept: Set<Int> = [12, 21, 24, 25, 27]
    var generator = SystemProgramGenerator(
      seed: 12_893_088_964_501_259_476, items: 60, skip: Set(0..<60).subtracting(kept))
    let program = generator.generate()
    let (interp, dbt, difference) = tester.compare(program)
    #expect(difference == nil, "\(difference ?? "")")
    #expect(interp.events.count == dbt.events.count)
    #expect(interp.events.count > 6)
  }

  /// The generator is deterministic: the same seed gives the same program.
  @Test func programsRepeat() {
    var a = SystemProgramGenerator(seed: 7, items: 50)
    var b = SystemProgramGenerator(seed: 7, items: 50)
    let p = a.generate()
    let q = b.generate()
    #expect(p.sections.map(\.bytes) == q.sections.map(\.bytes))
    #expect(p.sections[0].bytes.count > 500)
  }

  /// A reduced program (items left out) still assembles and runs to its exit.
  @Test func reducedProgramsStillRun() throws {
    var g = SystemProgramGenerator(seed: 9, items: 30, skip: Set(0..<30).subtracting([3, 17]))
    let p = g.generate()
    let runner = try SystemRunner(translated: true)
    let trace = runner.run(p)
    #expect(trace.events.last?.kind == .end("exit port"))
  }

  /// A store into the instruction right after it, into a block a chained branch reaches, and into
  /// a translated loop body on every iteration: both runs see the new code at once.
  @Test func selfModifyingCodeInTranslatedLoops() throws {
    let program = SystemProgram.handWritten { a in
      let patched = a.newLabel()
      let top = a.newLabel()
      a.movImm32(15, 50)
      a.bind(top)
      a.bind(patched)
      a.raw([0x05, 1, 0, 0, 0])  // add eax, 1 (the immediate grows by one each iteration)
      a.raw([0x48, 0x01, 0xC3])  // add rbx, rax
      a.movAddress(6, patched, addend: 1)
      a.raw([0x83, 0x06, 0x01])  // add dword [rsi], 1
      a.raw([0x41, 0xFF, 0xCF])  // dec r15d
      a.jcc(5, top)
      a.raw([0x89, 0xD8, 0xE6, 0xE0])  // mov eax, ebx; out 0xe0, al
      a.movImm32(2, UInt32(SystemLayout.exitPort))
      a.raw([0xEF])
    }
    let interp = try SystemRunner(translated: false).run(program)
    let runner = try SystemRunner(translated: true)
    let dbt = runner.run(program)
    #expect(interp.events == dbt.events)
    // The k-th iteration adds k to eax, and rbx sums eax: 1 + 3 + 6 + ... + 1275 = 22100.
    #expect(dbt.state.first { $0.name == "rbx" }?.value == 22100)
    #expect((runner.translator?.statistics.invalidations ?? 0) > 10)
  }
}

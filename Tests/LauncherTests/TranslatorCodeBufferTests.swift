import GuestImages
import Launcher
import Testing
import Translator
import VMM

/// A code buffer far too small for the guest's code fills up again and again; the translator
/// starts over each time (every block retranslated on its next use) and the guest cannot tell.
@Suite struct TranslatorCodeBufferTests {
  @Test func aFullCodeBufferIsEmptiedAndTheSelfTestStillPasses() throws {
    let run = try ReferenceGuest.run(
      engine: TranslatorEngine(codeBufferBytes: 64 << 10), commandLine: "selftest", timeoutSeconds: 600)
    let report = SelfTestReport(output: run.output)
    #expect(report.allPassed, "failed \(report.failed)\n\(run.output)")
    #expect(run.outcome.exitStatus == 0)
    let counters = Dictionary(uniqueKeysWithValues: run.outcome.statistics.engineCounters.map { ($0.name, $0.value) })
    #expect((counters["dbt-cache-flushes"] ?? 0) > 0, "\(counters)")
    #expect((counters["dbt-translated-instructions"] ?? 0) > 0)
  }
}

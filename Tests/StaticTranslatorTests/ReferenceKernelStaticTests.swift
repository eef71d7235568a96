import GuestImages
import Launcher
import Testing
import Translator
import VMM

@testable import StaticTranslator

/// The reference kernel's self-test (ring 0 and ring 3, system calls, interrupts, paging) translated
/// ahead of time and run `--deterministic` on sbt: byte for byte what dbt does, the same number
/// of instructions, with blocks from the file doing part of the work.
@Suite struct ReferenceKernelStaticTests {
  @Test func sbtRunsTheSelfTestExactlyAsDBT() throws {
    let report = try StaticTranslation.translate(
      image: try GuestImages.referenceKernel, options: LoadOptions(commandLine: "selftest"),
      ramSize: ReferenceGuest.benchMemoryBytes)
    #expect(report.blocksSkipped == 0)
    let set = StaticTranslationSet(
      try TranslationFile(
        parsing: report.file.serialized(), expectedFingerprint: StaticTranslationSet.currentFingerprint))
    let dbt = try ReferenceGuest.run(
      engine: TranslatorEngine(deterministic: true), commandLine: "selftest", timeoutSeconds: 600)
    let sbt = try ReferenceGuest.run(
      engine: StaticTranslatorEngine(translations: set, deterministic: true), commandLine: "selftest",
      timeoutSeconds: 600)
    #expect(sbt.output == dbt.output)
    #expect(sbt.output.contains("SELFTEST SUMMARY"))
    #expect(sbt.outcome.reason == dbt.outcome.reason && sbt.outcome.exitStatus == dbt.outcome.exitStatus)
    #expect(sbt.outcome.statistics.instructionsRetired == dbt.outcome.statistics.instructionsRetired)
    let counters = Dictionary(
      sbt.outcome.statistics.engineCounters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    // Blocks come from the file (most installed with the first block of their page, before they
    // ran: one lookup for the page).
    #expect((counters["sbt-blocks-installed"] ?? 0) > 100)
    #expect((counters["sbt-blocks-installed-ahead"] ?? 0) > 0)
    #expect((counters["sbt-pages-matched"] ?? 0) > 0)
  }
}

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

  /// The paravirtual self-test (`--pv`: the kernel at ring 3, hypercalls through the page) on sbt
  /// with a translation file made from the same image: what dbt prints, every check passed, no
  /// privileged instruction, and part of the work done by blocks from the file (its PV entry and
  /// backend are found through the ELF symbols).
  @Test func sbtRunsTheParavirtualSelfTestAsDBT() throws {
    let report = try StaticTranslation.translate(
      image: try GuestImages.referenceKernel, options: LoadOptions(commandLine: "selftest"),
      ramSize: ReferenceGuest.benchMemoryBytes)
    let set = StaticTranslationSet(
      try TranslationFile(
        parsing: report.file.serialized(), expectedFingerprint: StaticTranslationSet.currentFingerprint))
    let dbt = try ReferenceGuest.run(
      engine: TranslatorEngine(deterministic: true), commandLine: "selftest", timeoutSeconds: 600, paravirtual: true)
    let sbt = try ReferenceGuest.run(
      engine: StaticTranslatorEngine(translations: set, deterministic: true), commandLine: "selftest",
      timeoutSeconds: 600, paravirtual: true)
    func withoutRunstate(_ output: String) -> [Substring] {
      output.split(separator: "\n").filter { !$0.hasPrefix("PV-RUNSTATE ") }
    }
    #expect(sbt.output.hasPrefix("trivisor-kernel: mode=selftest timer_hz=100 platform=paravirtual"))
    #expect(SelfTestReport(output: sbt.output).allPassed, "\(sbt.output)")
    #expect(withoutRunstate(sbt.output) == withoutRunstate(dbt.output))
    #expect(sbt.outcome.exitStatus == 0 && dbt.outcome.exitStatus == 0)
    #expect(sbt.outcome.statistics.privilegedInstructionFaults == 0)
    let counters = Dictionary(
      sbt.outcome.statistics.engineCounters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    #expect((counters["sbt-pages-matched"] ?? 0) > 0)
    #expect((counters["sbt-blocks-installed"] ?? 0) > 100, "\(counters)")
  }
}

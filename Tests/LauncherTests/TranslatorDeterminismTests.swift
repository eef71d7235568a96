import Interpreter
import Launcher
import Testing
import Translator
import VMM

/// `--deterministic` runs of `dbt` and `interp` are identical (issue #12, "Proof"): the same
/// console output, the same exit and the same number of instructions retired, for the reference
/// kernel's self-test (guest time, and so every timer interrupt, follows the instruction count).
/// `.ci/run` compares a benchmark run the same way from a release build.
@Suite struct TranslatorDeterminismTests {
  @Test func dbtAndInterpRunTheSelfTestIdentically() throws {
    let commandLine = "selftest"
    let interp = try ReferenceGuest.run(
      engine: InterpreterEngine(deterministic: true), commandLine: commandLine, timeoutSeconds: 600)
    let dbt = try ReferenceGuest.run(
      engine: TranslatorEngine(deterministic: true), commandLine: commandLine, timeoutSeconds: 600)
    #expect(dbt.output == interp.output)
    #expect(dbt.outcome.reason == interp.outcome.reason && dbt.outcome.exitStatus == interp.outcome.exitStatus)
    #expect(dbt.outcome.statistics.instructionsRetired == interp.outcome.statistics.instructionsRetired)
    // And the translator did the work.
    let translated = dbt.outcome.statistics.engineCounters.first { $0.name == "dbt-translated-instructions" }
    #expect((translated?.value ?? 0) > (dbt.outcome.statistics.instructionsRetired ?? 0) / 2)
  }
}

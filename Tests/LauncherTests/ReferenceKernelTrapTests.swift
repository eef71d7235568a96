import GuestImages
import Launcher
import TestHostSupport
import Testing
import VMM

/// The reference kernel's self-test on `--engine trap`: its kernel and user tasks run at real ring
/// 3 under the monitor, every check passes, and `--stats` shows the monitor's work (traps by
/// kind, shadow faults and resyncs). The same self-test on `--engine hybrid`, whose kernel code
/// runs on dbt and user code on a trap vCPU, switches sides.
@Suite struct ReferenceKernelTrapTests {
  @Test(.requires(.kvm)) func selfTestPassesOnTrap() throws {
    let run = try ReferenceKernelParavirtTests.boot("trap", commandLine: "selftest", paravirtual: false)
    let report = SelfTestReport(output: run.output)
    #expect(report.allPassed, "failed \(report.failed)\n\(run.output)")
    #expect(report.passed == ReferenceKernelOutput.selfTestChecks)
    #expect(run.outcome.reason == .powerOff, "\(run.outcome.reason)")
    #expect(run.outcome.exitStatus == 0)
    let counters = Dictionary(
      run.outcome.statistics.engineCounters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    for name in [
      "trap-traps", "trap-gp", "trap-pf", "trap-syscall", "trap-interrupts", "shadow-faults", "shadow-resyncs",
    ] {
      #expect((counters[name] ?? 0) > 0, "\(name): \(counters)")
    }
  }

  /// The self-test's pass on hybrid is in `ReferenceGuestBootTests` (every engine); here its ring
  /// switches show: both ways at least once per user task, and kernel page-table writes found on
  /// the dbt side (the self-test maps pages for its tasks while user code is shadowed).
  @Test(.requires(.kvm)) func hybridSwitchesSidesOnTheSelfTest() throws {
    let run = try ReferenceKernelParavirtTests.boot("hybrid", commandLine: "selftest", paravirtual: false)
    #expect(SelfTestReport(output: run.output).allPassed, "\(run.output)")
    let counters = Dictionary(
      run.outcome.statistics.engineCounters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    let toUser = counters["hybrid-switches-to-user"] ?? 0
    let toKernel = counters["hybrid-switches-to-kernel"] ?? 0
    #expect(toUser > 10, "\(counters)")
    #expect(toKernel >= toUser - 1 && toKernel <= toUser + 1, "\(counters)")
    #expect((counters["hybrid-pt-frames-written"] ?? 0) > 0, "\(counters)")
  }
}

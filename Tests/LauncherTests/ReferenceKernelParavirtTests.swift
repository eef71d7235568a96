import GuestImages
import Launcher
import TestHostSupport
import Testing
import VMM

/// The reference kernel booted deprivileged (`trivisor run --pv`): its paravirtual backend
/// (guests/kernel/Kernel/Platform/ParavirtPlatform.swift) passes the self-test on `interp` and
/// `dbt` with the output of native mode, and never executes a privileged instruction.
@Suite struct ReferenceKernelParavirtTests {
  static let engines = ["interp", "dbt"]

  static func boot(_ name: String, commandLine: String, paravirtual: Bool) throws -> ReferenceGuest.CapturedRun {
    guard let entry = EngineRegistry.entries.first(where: { $0.name == name }) else {
      throw UsageError("no engine \(name)")
    }
    let engine = try entry.make(false)
    return try ReferenceGuest.run(
      engine: engine, commandLine: commandLine, timeoutSeconds: 120, paravirtual: paravirtual)
  }

  /// The output without the mode line and the PV-only runstate line, and with the counters that
  /// depend on timing (tasks run, timer preemptions) blanked.
  static func comparable(_ output: String) -> [String] {
    output.split(separator: "\n").map(String.init).filter {
      !$0.hasPrefix("trivisor-kernel: mode=") && !$0.hasPrefix("PV-RUNSTATE ")
    }.map { line in
      guard line.hasPrefix("SMP-CPU ") else { return line }
      return line.split(separator: " ").map { word in
        word.hasPrefix("tasks=") || word.hasPrefix("preemptions=")
          ? String(word.prefix { $0 != "=" }) + "=N" : String(word)
      }.joined(separator: " ")
    }
  }

  @Test(arguments: engines) func selfTestPassesWithNativeOutputAndNoPrivilegedInstruction(_ engine: String) throws {
    let pv = try Self.boot(engine, commandLine: "selftest", paravirtual: true)
    let report = SelfTestReport(output: pv.output)
    #expect(report.allPassed, "\(engine): failed \(report.failed)\n\(pv.output)")
    #expect(report.passed == ReferenceKernelOutput.selfTestChecks, "\(engine)")
    #expect(pv.outcome.reason == .powerOff, "\(engine): \(pv.outcome.reason)")
    #expect(pv.outcome.exitStatus == 0)
    #expect(pv.output.hasPrefix("trivisor-kernel: mode=selftest timer_hz=100 platform=paravirtual cpus=1\n"))
    #expect(pv.outcome.statistics.privilegedInstructionFaults == 0, "\(engine)")
    // Its time per runstate, the steal time among them, printed before the exit status.
    let runstate = try #require(pv.output.split(separator: "\n").first { $0.hasPrefix("PV-RUNSTATE ") })
    #expect(runstate.contains(" steal_ns=") && runstate.contains(" blocked_ns="), "\(runstate)")
    #expect(!runstate.hasPrefix("PV-RUNSTATE running_ns=0 "), "it ran: \(runstate)")

    let native = try Self.boot(engine, commandLine: "selftest", paravirtual: false)
    #expect(native.outcome.statistics.privilegedInstructionFaults == nil)
    #expect(Self.comparable(pv.output) == Self.comparable(native.output), "\(engine)\n\(pv.output)\n\(native.output)")
  }

  /// kvm: the kernel boots deprivileged and never executes a privileged instruction. On this nested
  /// host SYSCALL from ring 3 reaches the monitor's SYSCALL stub still at ring 3; the host probe
  /// (`KVMSyscallProbe`) finds it and the monitor serves SYSCALL from the fetch fault there
  /// (docs/paravirtualization.md, "The deprivileged mode on kvm"), so every system call check
  /// passes. The host's KVM also shadows the guest's page tables, so the domain has it drop its
  /// shadows before the guest runs on tables the VMM changed (`shadowsGuestPageTables`); without
  /// that, two user tasks switching address spaces failed. The whole self-test passes.
  @Test(.requires(.kvm)) func selfTestOnKVM() throws {
    let pv = try Self.boot("kvm", commandLine: "selftest", paravirtual: true)
    #expect(pv.output.hasPrefix("trivisor-kernel: mode=selftest timer_hz=100 platform=paravirtual cpus=1\n"))
    #expect(pv.output.contains("SELFTEST SUMMARY"), "\(pv.output)")
    #expect(pv.outcome.statistics.privilegedInstructionFaults == 0)
    let report = SelfTestReport(output: pv.output)
    #expect(report.allPassed && report.passed == ReferenceKernelOutput.selfTestChecks, "failed \(report.failed)")
    #expect(pv.outcome.exitStatus == 0)
    // Native SYSCALL where the host has no quirk, served from its exception where it has.
    if let emulated = pv.outcome.statistics.emulatedSyscalls { #expect(emulated > 0) }
  }

  /// A failed check ends the PV run as it ends a native one: status 1 through Trivisor's
  /// exit-status shutdown reason, which `trivisor run` maps like isa-debug-exit 1 (exit status 3).
  @Test func aFailedCheckEndsTheRunWithStatus3() throws {
    let run = try Self.boot("interp", commandLine: "selftest inject-failure", paravirtual: true)
    #expect(run.output.contains("FAIL injected-failure"))
    #expect(run.outcome.reason == .debugExit(value: 1), "\(run.outcome.reason)")
    #expect(run.outcome.exitStatus == 3)
  }

  /// The counter is real: one CLI in the guest kernel (`privileged-probe`) is one fault, which the
  /// monitor reflects to the kernel's #GP handler (a kernel panic).
  @Test func aPrivilegedInstructionOfTheGuestKernelIsCounted() throws {
    let run = try Self.boot("interp", commandLine: "selftest privileged-probe", paravirtual: true)
    #expect(run.outcome.statistics.privilegedInstructionFaults == 1)
    #expect(run.output.contains("PANIC kernel exception vector=13 (#GP general protection)"), "\(run.output)")
    #expect(!run.output.contains("PASS boot"))
    #expect(run.outcome.exitStatus == 7, "a kernel panic: isa-debug-exit 3 natively, the exit-status shutdown here")
  }
}

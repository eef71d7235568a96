import GuestImages
import KVMEngine
import Launcher
import TestHostSupport
import Testing
import VMM

/// The reference guest kernel's self-test on every engine of the registry (kvm where /dev/kvm
/// works, interp once it is registered), booted exactly as `trivisor run` boots it.
@Suite struct ReferenceGuestBootTests {
  /// One self-test run per usable engine, shared by the tests below (a boot is the slow part).
  static let selfTestRuns: [(engine: String, run: Result<ReferenceGuest.CapturedRun, UsageError>)] =
    usableEngines.map { entry in (entry.name, bootSelfTest(entry, commandLine: "selftest")) }

  /// The engines usable on this host.
  static var usableEngines: [EngineRegistry.Entry] {
    EngineRegistry.entries.filter { $0.unavailableReason() == nil }
  }

  static func bootSelfTest(_ entry: EngineRegistry.Entry, commandLine: String) -> Result<
    ReferenceGuest.CapturedRun, UsageError
  > {
    do {
      let engine = try entry.make(false)
      return .success(try ReferenceGuest.run(engine: engine, commandLine: commandLine, timeoutSeconds: 120))
    } catch let error as UsageError {
      return .failure(error)
    } catch {
      return .failure(UsageError("\(error)"))
    }
  }

  /// interp always runs; kvm's share of the tests below shows here, skipped where it cannot run.
  @Test(.requires(.kvm)) func kvmIsAmongTheEnginesBooted() {
    #expect(Self.selfTestRuns.contains { $0.engine == "kvm" })
  }

  @Test func selfTestPassesOnEveryEngine() throws {
    #expect(!Self.selfTestRuns.isEmpty)
    print("reference guest self-test booted on: \(Self.selfTestRuns.map(\.engine).joined(separator: ", "))")
    for (engine, result) in Self.selfTestRuns {
      let run = try result.get()
      let report = SelfTestReport(output: run.output)
      #expect(report.allPassed, "\(engine): failed \(report.failed)\n\(run.output)")
      #expect(report.passed == ReferenceKernelOutput.selfTestChecks, "\(engine)")
      #expect(run.outcome.reason == .powerOff, "\(engine): \(run.outcome.reason)")
      #expect(run.outcome.exitStatus == 0)
      #expect(run.output.contains("trivisor-kernel: exit status 0"))
    }
  }

  /// The self-test's deliberately faulting tasks: each is killed with the right exception and
  /// reported, and the kernel keeps scheduling new tasks afterwards.
  @Test func faultingUserTasksAreKilledAndTheKernelSurvives() throws {
    #expect(!Self.selfTestRuns.isEmpty)
    for (engine, result) in Self.selfTestRuns {
      let run = try result.get()
      let lines = run.output.split(separator: "\n").map(String.init)
      let killed = lines.filter { $0.hasPrefix("KILLED ") }
      // A write to an unmapped user page, a ring-3 write to kernel memory, a division by zero, a
      // privileged instruction and a forged system-call entry (plus the clock-page write).
      #expect(
        killed.contains { $0.contains("vector=14 (#PF page fault)") && $0.contains("address=0x8000000000") },
        "\(engine): \(killed)")
      #expect(killed.contains { $0.contains("vector=14") && $0.contains("address=0x100000") }, "\(engine)")
      #expect(killed.contains { $0.contains("vector=0 (#DE divide error)") }, "\(engine)")
      #expect(killed.filter { $0.contains("vector=13 (#GP general protection)") }.count == 2, "\(engine)")
      #expect(!run.output.contains("PANIC"), "\(engine)")
      for check in [
        "fault-unmapped-write-killed", "fault-kernel-write-killed", "fault-divide-by-zero-killed",
        "fault-privileged-instruction-killed", "kernel-survives-faults", "no-leaked-frames",
      ] {
        #expect(lines.contains("PASS \(check)"), "\(engine): \(check)")
      }
      // Survival: the check after the last KILLED line ran a fresh task to completion.
      let lastKilled = lines.lastIndex { $0.hasPrefix("KILLED ") } ?? 0
      let survives = lines.firstIndex(of: "PASS kernel-survives-faults") ?? -1
      #expect(survives > lastKilled, "\(engine)")
    }
  }

  /// A failing self-test reaches the VMM as isa-debug-exit 1: exit status 3.
  @Test func aFailedCheckEndsTheRunWithStatus3() throws {
    #expect(!Self.usableEngines.isEmpty)
    for entry in Self.usableEngines {
      let run = try Self.bootSelfTest(entry, commandLine: "selftest inject-failure").get()
      #expect(run.output.contains("FAIL injected-failure"), "\(entry.name)")
      #expect(run.outcome.reason == .debugExit(value: 1), "\(entry.name): \(run.outcome.reason)")
      #expect(run.outcome.exitStatus == 3)
    }
  }

  /// `--irqchip kernel`: KVM's own PIC, PIT and local APIC drive the kernel's timer. On hosts whose
  /// in-kernel PIT reports channel 2 expired almost at once, the kernel must notice the implausible
  /// TSC figure and calibrate against timer ticks instead.
  @Test(.requires(.kvm, .kvmInKernelIRQChip)) func selfTestPassesWithKVMsInKernelIrqchip() throws {
    let engine = try KVMEngine()
    let run = try ReferenceGuest.run(
      engine: engine, commandLine: "selftest", timeoutSeconds: 120,
      engineOptions: EngineOptions(interruptController: .kernel))
    let report = SelfTestReport(output: run.output)
    #expect(report.allPassed, "failed \(report.failed)\n\(run.output)")
    #expect(report.passed == ReferenceKernelOutput.selfTestChecks)
    #expect(run.outcome.exitStatus == 0)
  }
}

import GuestImages
import Launcher
import TestHostSupport
import Testing
import VMM

/// The reference kernel's SMP mode (guests/kernel/Kernel/SMP) booted as `trivisor run --cpus N`
/// boots it: CPUs found in the VMM's MADT, APs started by INIT-SIPI-SIPI, every check of the
/// self-test passing, and one `SMP-CPU` line per CPU showing that each ran tasks and, for the APs,
/// answered IPIs and TLB shootdowns. Nothing here depends on timing: only on "at least one".
@Suite struct ReferenceKernelSMPTests {
  static func boot(_ engineName: String, cpus: Int, commandLine: String = "selftest") throws
    -> ReferenceGuest.CapturedRun
  {
    let entry = try #require(EngineRegistry.entries.first { $0.name == engineName })
    return try ReferenceGuest.run(
      engine: try entry.make(false), commandLine: commandLine, timeoutSeconds: 300, cpuCount: cpus)
  }

  /// Every self-test check passes and the per-CPU lines show each CPU's share.
  static func checkSelfTest(_ run: ReferenceGuest.CapturedRun, cpus: Int, engine: String) {
    let report = SelfTestReport(output: run.output)
    #expect(report.allPassed, "\(engine) x\(cpus): failed \(report.failed)\n\(run.output)")
    #expect(report.passed == ReferenceKernelOutput.selfTestChecks, "\(engine) x\(cpus)")
    #expect(run.outcome.exitStatus == 0, "\(engine) x\(cpus): \(run.outcome.reason)")
    #expect(!run.output.contains("PANIC"))
    let lines = run.output.split(separator: "\n").map(String.init)
    if cpus == 1 {
      // No platform tables with one vCPU: the kernel says so and runs uniprocessor.
      #expect(lines.contains("SMP: running on 1 CPU"), "\(run.output)")
    } else {
      #expect(lines.contains("SMP: MADT lists \(cpus) CPUs; boot CPU apic=0"), "\(run.output)")
      #expect(lines.contains("SMP: \(cpus) of \(cpus) CPUs online"))
      for ap in 1..<cpus { #expect(lines.contains("SMP: cpu \(ap) apic=\(ap) online"), "\(engine): AP \(ap)") }
    }
    let perCPU = PerCPUReport.all(in: run.output)
    #expect(perCPU.map(\.cpu) == Array(0..<cpus), "\(run.output)")
    for cpu in perCPU {
      #expect(cpu.online, "\(engine) x\(cpus): cpu \(cpu.cpu)")
      #expect(cpu.apicID == cpu.cpu)
      #expect((cpu.counters["tasks"] ?? 0) >= 1, "\(engine) x\(cpus): cpu \(cpu.cpu) ran no task")
      if cpu.cpu > 0 {
        #expect((cpu.counters["calls"] ?? 0) >= 1, "\(engine) x\(cpus): cpu \(cpu.cpu) answered no IPI")
        #expect((cpu.counters["shootdowns"] ?? 0) >= 1, "\(engine) x\(cpus): cpu \(cpu.cpu) saw no shootdown")
      }
    }
    #expect(lines.contains { $0.hasPrefix("SMP-SUMMARY cpus=\(cpus) online=\(cpus) ") })
    let counter = cpus * 100  // SMPSelfTest.incrementsPerTask per CPU
    #expect(lines.contains { $0.hasPrefix("SMP: shared counter \(counter) expected \(counter) ") })
  }

  @Test(arguments: [1, 2, 4]) func selfTestOnInterp(cpus: Int) throws {
    Self.checkSelfTest(try Self.boot("interp", cpus: cpus), cpus: cpus, engine: "interp")
  }

  /// The translator on several vCPUs: one translator per vCPU, shared code-page stamps.
  @Test(arguments: [2, 4]) func selfTestOnDBT(cpus: Int) throws {
    Self.checkSelfTest(try Self.boot("dbt", cpus: cpus), cpus: cpus, engine: "dbt")
  }

  @Test(.requires(.kvm), arguments: [2, 4]) func selfTestOnKVM(cpus: Int) throws {
    Self.checkSelfTest(try Self.boot("kvm", cpus: cpus), cpus: cpus, engine: "kvm")
  }

  /// `bench smp` on two vCPUs reports all four benchmarks, each inside its markers.
  @Test func multiprocessorBenchmarksReportOnTwoCPUs() throws {
    let run = try Self.boot(
      "interp", cpus: 2, commandLine: ReferenceKernelOutput.multiprocessorBenchCommandLine(scale: 1))
    #expect(run.outcome.exitStatus == 0, "\(run.output)")
    let names = BenchmarkResult.all(in: run.output).map(\.name)
    #expect(names == ReferenceKernelOutput.multiprocessorBenchmarkNames, "\(run.output)")
    #expect(run.output.contains("BENCH-DONE reported=4\n"))
    #expect(Set(run.exitsByBenchmark.keys) == Set(ReferenceKernelOutput.multiprocessorBenchmarkNames))
  }

  /// With one vCPU the IPI benchmarks say they cannot run, and the run still succeeds.
  @Test func multiprocessorBenchmarksSkipIPIsOnOneCPU() throws {
    let run = try Self.boot(
      "interp", cpus: 1, commandLine: ReferenceKernelOutput.multiprocessorBenchCommandLine(scale: 1))
    #expect(run.outcome.exitStatus == 0, "\(run.output)")
    #expect(BenchmarkResult.all(in: run.output).map(\.name) == ["spinlock", "parallel"])
    #expect(run.output.contains("BENCH-SKIP name=ipi reason=one-cpu"))
    #expect(run.output.contains("BENCH-SKIP name=tlbshoot reason=one-cpu"))
    #expect(run.output.contains("BENCH-DONE reported=2 skipped=2"))
  }
}

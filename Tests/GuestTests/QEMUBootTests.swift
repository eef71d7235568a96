import Foundation
import GuestImages
import TestHostSupport
import Testing

/// Boots the reference kernel under `qemu-system-x86_64 -kernel` (Multiboot, TCG).
@Suite(.requires(.qemu)) struct QEMUBootTests {
  static let selfTestNames = ReferenceKernelOutput.selfTestChecks
  static let benchmarkNames = ReferenceKernelOutput.benchmarkNames

  /// Runs the kernel with `commandLine` (the suite requires QEMU); nil after recording an issue
  /// when the kernel image is missing.
  /// `throughELF64Contract` boots it as a module of the ELF64 boot shim instead of by Multiboot.
  static func boot(
    commandLine: String, accelerator: String = "tcg", throughELF64Contract: Bool = false,
    machine: String = "pc", cpus: Int = 1
  ) throws -> HostProcess.Result? {
    guard let qemu = HostTools.find("qemu-system-x86_64") else {
      Issue.record("qemu-system-x86_64 disappeared")
      return nil
    }
    guard let kernel = GuestImages.referenceKernelURL else {
      Issue.record("reference kernel missing")
      return nil
    }
    var image = ["-kernel", kernel.path]
    if throughELF64Contract {
      guard let shim = GuestImages.elf64BootShimURL else {
        Issue.record("ELF64 boot shim missing")
        return nil
      }
      image = ["-kernel", shim.path, "-initrd", kernel.path]
    }
    return try HostProcess.run(
      qemu,
      ["-machine", machine, "-accel", accelerator] + image + [
        "-append", commandLine, "-serial", "stdio", "-display", "none", "-monitor", "none",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-no-reboot", "-m", "64", "-smp", "\(cpus)",
      ], timeout: 300)  // a watchdog for a hung QEMU: several TCG boots share a loaded host
  }

  static func lines(_ output: String) -> [Substring] { output.split(separator: "\n") }

  @Test func selfTestPassesAndPowersOffCleanly() throws {
    guard let result = try Self.boot(commandLine: "selftest") else { return }
    #expect(!result.timedOut)
    #expect(SelfTestReport(output: result.output).allPassed)
    let lines = Self.lines(result.output)
    for name in Self.selfTestNames {
      #expect(lines.contains { $0 == "PASS \(name)" }, "missing PASS \(name) in:\n\(result.output)")
    }
    #expect(!lines.contains { $0.hasPrefix("FAIL ") }, "\(result.output)")
    #expect(lines.contains("SELFTEST SUMMARY pass=\(Self.selfTestNames.count) fail=0"))
    #expect(result.status == 0, "QEMU exit status \(result.status)")
  }

  /// The kernel's SMP mode on another platform: SeaBIOS's ACPI tables (RSDP in the F segment) and
  /// QEMU's local APICs start all four CPUs, and each runs tasks and answers IPIs.
  @Test func selfTestPassesOnFourCPUs() throws {
    guard let result = try Self.boot(commandLine: "selftest", cpus: 4) else { return }
    #expect(!result.timedOut)
    #expect(SelfTestReport(output: result.output).allPassed, "\(result.output)")
    let lines = Self.lines(result.output)
    #expect(lines.contains("SMP: 4 of 4 CPUs online"), "\(result.output)")
    let perCPU = PerCPUReport.all(in: result.output)
    #expect(perCPU.count == 4)
    #expect(perCPU.allSatisfy { $0.online && ($0.counters["tasks"] ?? 0) >= 1 })
    #expect(perCPU.dropFirst().allSatisfy { ($0.counters["calls"] ?? 0) >= 1 && ($0.counters["shootdowns"] ?? 0) >= 1 })
    #expect(result.status == 0, "QEMU exit status \(result.status)")
  }

  @Test func faultingUserTaskIsKilledAndReportedAndKernelSurvives() throws {
    guard let result = try Self.boot(commandLine: "selftest") else { return }
    let lines = Self.lines(result.output)
    let killed = lines.filter { $0.hasPrefix("KILLED pid=") }
    #expect(killed.contains { $0.contains("vector=14") && $0.contains("address=0x8000000000") })
    #expect(killed.contains { $0.contains("vector=0") })
    #expect(killed.contains { $0.contains("vector=13") })
    // Work after the faults still runs.
    let lastKill = try #require(lines.lastIndex { $0.hasPrefix("KILLED") })
    let survived = try #require(lines.firstIndex(of: "PASS kernel-survives-faults"))
    #expect(survived > lastKill)
  }

  @Test func benchSmallReportsEveryBenchmark() throws {
    guard let result = try Self.boot(commandLine: ReferenceKernelOutput.benchCommandLine(scale: 1)) else { return }
    #expect(!result.timedOut)
    let results = BenchmarkResult.all(in: result.output)
    #expect(results.map(\.name) == Self.benchmarkNames, "\(result.output)")
    for benchmark in results {
      #expect(benchmark.iterations > 0, "\(benchmark)")
      #expect(benchmark.nanosecondsPerOperation > 0, "\(benchmark)")
    }
    #expect(Self.lines(result.output).contains("BENCH-DONE reported=\(Self.benchmarkNames.count)"))
    #expect(result.status == 0, "QEMU exit status \(result.status)")
  }

  @Test func bootsThroughTheELF64ContractWithCommandLineInRSI() throws {
    guard let result = try Self.boot(commandLine: "selftest hz=250", throughELF64Contract: true) else { return }
    #expect(!result.timedOut)
    let lines = Self.lines(result.output)
    #expect(lines.contains("trivisor-kernel: mode=selftest timer_hz=250"), "\(result.output)")
    #expect(lines.contains("SELFTEST SUMMARY pass=\(Self.selfTestNames.count) fail=0"), "\(result.output)")
    #expect(result.status == 0, "QEMU exit status \(result.status)")
  }

  @Test func failedSelfTestExitsWithStatusOneThroughDebugExit() throws {
    guard let result = try Self.boot(commandLine: "selftest inject-failure") else { return }
    let lines = Self.lines(result.output)
    #expect(lines.contains("FAIL injected-failure"))
    #expect(lines.contains("SELFTEST SUMMARY pass=\(Self.selfTestNames.count) fail=1"))
    #expect(result.status == (1 << 1) | 1, "QEMU exit status \(result.status)")
  }

  @Test func machineWithoutTimerFailsCleanlyInsteadOfHanging() throws {
    guard let result = try Self.boot(commandLine: "selftest", machine: "pc,pit=off") else { return }
    #expect(!result.timedOut)
    let lines = Self.lines(result.output)
    #expect(lines.contains("FAIL timer-interrupts"), "\(result.output)")
    #expect(result.status == (1 << 1) | 1, "QEMU exit status \(result.status)")
  }

  @Test(
    .enabled(
      if: ProcessInfo.processInfo.environment["TRIVISOR_TEST_QEMU_KVM"] == "1",
      "set TRIVISOR_TEST_QEMU_KVM=1 to also boot under qemu -accel kvm (slow on nested hosts)"),
    .requires(.kvm))
  func selfTestUnderKVMWhenRequested() throws {
    guard let result = try Self.boot(commandLine: "selftest", accelerator: "kvm") else { return }
    #expect(Self.lines(result.output).contains("SELFTEST SUMMARY pass=\(Self.selfTestNames.count) fail=0"))
    #expect(result.status == 0)
  }
}

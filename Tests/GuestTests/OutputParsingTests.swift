import GuestImages
import Testing

/// Parsing the kernel's console lines, independent of any VMM.
@Suite struct OutputParsingTests {
  @Test func parsesABenchLine() throws {
    let result = try #require(BenchmarkResult(line: "BENCH name=syscall iters=200 ns_per_op=430.2 cycles_per_op=1327"))
    #expect(
      result
        == BenchmarkResult(name: "syscall", iterations: 200, nanosecondsPerOperation: 430.2, cyclesPerOperation: 1327))
  }

  @Test func rejectsOtherAndMalformedLines() {
    #expect(BenchmarkResult(line: "BENCH-INFO tsc_hz=1 timer_hz=100 scale=1") == nil)
    #expect(BenchmarkResult(line: "BENCH name=in iters=x ns_per_op=1.0 cycles_per_op=1") == nil)
    #expect(BenchmarkResult(line: "BENCH name=in iters=1") == nil)
    #expect(BenchmarkResult(line: "PASS boot") == nil)
  }

  @Test func parsesPerCPULines() throws {
    let output = """
      PASS smp-lock-counter-exact
      SMP-CPU cpu=0 apic=0 online tasks=32 stolen=14 migrations=1 preemptions=4 ticks=0 reschedules=5 shootdowns=0 calls=0
      SMP-CPU cpu=1 apic=2 offline tasks=0 stolen=0 preemptions=0 ticks=0 reschedules=0 shootdowns=0 calls=0
      SMP-SUMMARY cpus=2 online=1 ipis_sent=49 shootdown_requests=4
      """
    let cpus = PerCPUReport.all(in: output)
    #expect(cpus.count == 2)
    let boot = try #require(cpus.first)
    #expect(boot.cpu == 0 && boot.apicID == 0 && boot.online)
    #expect(boot.counters["tasks"] == 32 && boot.counters["stolen"] == 14 && boot.counters["calls"] == 0)
    #expect(cpus[1].apicID == 2 && !cpus[1].online)
    #expect(PerCPUReport(line: "SMP-CPU cpu=1 tasks=x") == nil)
    #expect(PerCPUReport(line: "SMP-CPU apic=1 online") == nil)
    #expect(PerCPUReport(line: "SMP-SUMMARY cpus=2") == nil)
  }

  @Test func summarizesASelfTest() {
    let output = """
      PASS boot
      KILLED pid=12 vector=14 (#PF page fault) rip=0x1063e5 error=0x6 address=0x8000000000
      FAIL timer-interrupts
      SELFTEST SUMMARY pass=1 fail=1
      """
    let report = SelfTestReport(output: output)
    #expect(report.passed == ["boot"])
    #expect(report.failed == ["timer-interrupts"])
    #expect(report.killedTasks.count == 1)
    #expect(report.summary?.passed == 1 && report.summary?.failed == 1)
    #expect(!report.allPassed)
  }

  @Test func aRunWithoutSummaryHasNotPassed() {
    let output = ReferenceKernelOutput.selfTestChecks.map { "PASS \($0)" }.joined(separator: "\n")
    #expect(!SelfTestReport(output: output).allPassed)
    let complete = output + "\nSELFTEST SUMMARY pass=\(ReferenceKernelOutput.selfTestChecks.count) fail=0\n"
    #expect(SelfTestReport(output: complete).allPassed)
  }
}

/// What the reference kernel prints on its serial console, parsed (format: docs/guest-kernel.md).
public enum ReferenceKernelOutput {
  /// Every self-test check, in the order the kernel runs them.
  public static let selfTestChecks = [
    "boot", "timer-interrupts", "tsc-calibration", "syscall-getpid", "syscall-write", "syscall-mmap-munmap",
    "syscall-exit-status", "syscall-sleep", "tasks-yield-round-robin", "preemptive-scheduling",
    "clock-page-read-only", "demand-paging", "divide-error-handler", "fault-unmapped-write-killed",
    "fault-kernel-write-killed", "fault-divide-by-zero-killed", "fault-privileged-instruction-killed",
    "forged-syscall-entry-contained", "kernel-survives-faults", "user-cpu-work", "smp-cpus-online",
    "smp-every-cpu-ran-tasks", "smp-task-migration", "smp-ipi-delivery", "smp-tlb-shootdown", "smp-lock-counter-exact",
    "no-leaked-frames",
  ]

  /// Every benchmark, in the order the kernel runs them.
  public static let benchmarkNames = [
    "syscall", "in", "out", "cr3wr", "cr8wr", "pgfault", "divzero", "ptemod", "ptebatch", "ctxswitch", "timerirq",
    "console", "hash", "sort", "matmul",
  ]

  /// The multiprocessor suite (`bench smp`), in order; their marker ids follow `benchmarkNames`'.
  /// `ipi` and `tlbshoot` need two CPUs: with one the kernel prints `BENCH-SKIP` lines for them.
  public static let multiprocessorBenchmarkNames = ["ipi", "tlbshoot", "spinlock", "parallel"]

  /// Benchmark names by marker id (the id the kernel writes to the marker ports): the first
  /// default suite's 13, the multiprocessor suite, then the default suite's later additions.
  public static let benchmarkNamesByMarkerID =
    benchmarkNames.filter { $0 != "ptebatch" && $0 != "console" } + multiprocessorBenchmarkNames + [
      "ptebatch", "console",
    ]

  /// The kernel command line for a benchmark run with iteration multiplier `scale` (1 = small).
  public static func benchCommandLine(scale: Int) -> String { "bench scale=\(max(scale, 1))" }

  /// The command line of the multiprocessor suite.
  public static func multiprocessorBenchCommandLine(scale: Int) -> String { "bench smp scale=\(max(scale, 1))" }
}

/// One `SMP-CPU cpu=<i> apic=<id> online|offline tasks=<n> ...` line of the self-test: what one CPU
/// did (docs/guest-kernel.md).
public struct PerCPUReport: Sendable, Equatable {
  public var cpu: Int
  public var apicID: Int
  public var online: Bool
  /// Every `key=value` field of the line, numbers only (tasks, stolen, migrations, preemptions,
  /// ticks, reschedules, shootdowns, calls).
  public var counters: [String: Int]

  /// Parses an SMP-CPU line; nil for any other line.
  public init?(line: Substring) {
    let words = line.split(separator: " ")
    guard words.first == "SMP-CPU" else { return nil }
    var fields: [String: Int] = [:]
    var online: Bool?
    for word in words.dropFirst() {
      if word == "online" || word == "offline" {
        online = word == "online"
        continue
      }
      let parts = word.split(separator: "=", maxSplits: 1)
      guard parts.count == 2, let value = Int(parts[1]) else { return nil }
      fields[String(parts[0])] = value
    }
    guard let cpu = fields.removeValue(forKey: "cpu"), let apic = fields.removeValue(forKey: "apic"), let online
    else { return nil }
    self.cpu = cpu
    apicID = apic
    self.online = online
    counters = fields
  }

  /// Every SMP-CPU line of a run's console output.
  public static func all(in output: String) -> [PerCPUReport] {
    output.split(separator: "\n").compactMap { PerCPUReport(line: $0) }
  }
}

/// One `BENCH name=<name> iters=<N> ns_per_op=<X.Y> cycles_per_op=<C>` line.
public struct BenchmarkResult: Sendable, Equatable {
  public var name: String
  public var iterations: Int
  public var nanosecondsPerOperation: Double
  public var cyclesPerOperation: Int

  public init(name: String, iterations: Int, nanosecondsPerOperation: Double, cyclesPerOperation: Int) {
    self.name = name
    self.iterations = iterations
    self.nanosecondsPerOperation = nanosecondsPerOperation
    self.cyclesPerOperation = cyclesPerOperation
  }

  /// Parses a BENCH line; nil for any other line or a malformed one.
  public init?(line: Substring) {
    let words = line.split(separator: " ")
    guard words.first == "BENCH" else { return nil }
    var fields: [Substring: Substring] = [:]
    for word in words.dropFirst() {
      guard let equals = word.firstIndex(of: "=") else { return nil }
      fields[word[..<equals]] = word[word.index(after: equals)...]
    }
    guard let name = fields["name"], let iterations = fields["iters"].flatMap({ Int($0) }),
      let nanoseconds = fields["ns_per_op"].flatMap({ Double($0) }),
      let cycles = fields["cycles_per_op"].flatMap({ Int($0) })
    else { return nil }
    self.init(
      name: String(name), iterations: iterations, nanosecondsPerOperation: nanoseconds, cyclesPerOperation: cycles)
  }

  /// Every BENCH line of a run's console output.
  public static func all(in output: String) -> [BenchmarkResult] {
    output.split(separator: "\n").compactMap { BenchmarkResult(line: $0) }
  }
}

/// The self-test part of a run's console output.
public struct SelfTestReport: Sendable, Equatable {
  public var passed: [String] = []
  public var failed: [String] = []
  /// `KILLED ...` lines: user tasks the kernel killed (some on purpose).
  public var killedTasks: [String] = []
  /// The counts of the `SELFTEST SUMMARY pass=N fail=M` line, nil when the run never got there.
  public var summary: (passed: Int, failed: Int)? { summaryCounts.map { ($0[0], $0[1]) } }
  private var summaryCounts: [Int]?

  public init(output: String) {
    for line in output.split(separator: "\n") {
      if line.hasPrefix("PASS ") {
        passed.append(String(line.dropFirst(5)))
      } else if line.hasPrefix("FAIL ") {
        failed.append(String(line.dropFirst(5)))
      } else if line.hasPrefix("KILLED ") {
        killedTasks.append(String(line))
      } else if line.hasPrefix("SELFTEST SUMMARY ") {
        let counts = line.split(separator: " ").dropFirst(2).compactMap { word in
          word.split(separator: "=").last.flatMap { Int($0) }
        }
        if counts.count == 2 { summaryCounts = counts }
      }
    }
  }

  /// Every check passed and the summary agrees.
  public var allPassed: Bool {
    failed.isEmpty && summary.map { $0.failed == 0 && $0.passed == passed.count } == true
      && ReferenceKernelOutput.selfTestChecks.allSatisfy(passed.contains)
  }

  public static func == (lhs: SelfTestReport, rhs: SelfTestReport) -> Bool {
    lhs.passed == rhs.passed && lhs.failed == rhs.failed && lhs.killedTasks == rhs.killedTasks
      && lhs.summaryCounts == rhs.summaryCounts
  }
}

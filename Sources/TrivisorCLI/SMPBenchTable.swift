import GuestImages

/// The table of `trivisor bench smp`: the reference kernel's multiprocessor benchmarks, one column
/// per engine and vCPU count, every column measured in the same invocation, and the parallel job's
/// speedup over the same engine's 1-vCPU run.
struct SMPBenchTable {
  /// One guest run: an engine with a vCPU count.
  struct Column {
    var engine: String
    var cpus: Int
    var commandLine: String
    /// ns per operation by benchmark name (absent: skipped or failed).
    var nanosecondsPerOperation: [String: Double]
    var failure: String?

    var title: String { "\(engine) x\(cpus)" }

    /// The column from a run's console output.
    static func parse(engine: String, cpus: Int, commandLine: String, output: String, failure: String?) -> Column {
      var results: [String: Double] = [:]
      for r in BenchmarkResult.all(in: output) { results[r.name] = r.nanosecondsPerOperation }
      return Column(
        engine: engine, cpus: cpus, commandLine: commandLine, nanosecondsPerOperation: results, failure: failure)
    }
  }

  var host: String
  var buildConfiguration: String
  var columns: [Column]
  var notes: [String] = []

  static let benchmarks = ReferenceKernelOutput.multiprocessorBenchmarkNames

  /// The parallel job's speedup of `column` over the same engine's 1-vCPU column.
  func parallelSpeedup(_ column: Column) -> Double? {
    guard let base = columns.first(where: { $0.engine == column.engine && $0.cpus == 1 }),
      let one = base.nanosecondsPerOperation["parallel"], let this = column.nanosecondsPerOperation["parallel"],
      this > 0
    else { return nil }
    return one / this
  }

  var text: String {
    var lines = ["Trivisor SMP benchmarks (reference kernel 'bench smp'), \(buildConfiguration) build, on \(host)"]
    lines.append("ns per operation; every column measured in this run, side by side")
    var header = "benchmark".padding(toLength: 18, withPad: " ", startingAt: 0)
    for c in columns { header += " | " + c.title.leftPadded(14) }
    lines.append(header)
    for b in Self.benchmarks {
      var line = b.padding(toLength: 18, withPad: " ", startingAt: 0)
      for c in columns {
        let cell =
          c.nanosecondsPerOperation[b].map { BenchTable.formatNanoseconds($0) } ?? (c.failure == nil ? "-" : "FAILED")
        line += " | " + cell.leftPadded(14)
      }
      lines.append(line)
    }
    var speedup = "parallel speedup".padding(toLength: 18, withPad: " ", startingAt: 0)
    for c in columns {
      speedup += " | " + (parallelSpeedup(c).map { String(format: "%.2fx", $0) } ?? "-").leftPadded(14)
    }
    lines.append(speedup)
    lines.append("")
    lines.append(
      "ipi: cross-call round trip boot CPU -> CPU 1; tlbshoot: one page on every other CPU, all acknowledged; "
        + "spinlock: one ticket lock taken by every CPU in turn (per acquisition); "
        + "parallel: 4 ring-3 tasks of fixed work, per work unit (speedup: 1-vCPU time / this time)")
    for c in columns where c.failure != nil { lines.append("\(c.title) (\(c.commandLine)): FAILED: \(c.failure!)") }
    lines += notes
    return lines.joined(separator: "\n")
  }
}

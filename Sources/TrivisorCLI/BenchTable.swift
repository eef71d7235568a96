import Foundation
import GuestImages
import Launcher

/// The result table of `trivisor bench` (the reference guest's micro-benchmark suite): one row per
/// benchmark, one column per engine or peer VMM. Printed as text, written as JSON (`--json`) and
/// drawn as an SVG chart (`--svg`, `SVGChart`).
struct BenchTable: Codable, Equatable {
  /// One engine of Trivisor (`kvm`, `interp`) or a peer (`qemu-tcg`, `qemu-kvm`).
  struct Column: Codable, Equatable {
    var name: String
    /// A peer VMM rather than a Trivisor engine (no exit counts).
    var isPeer: Bool
    /// The kernel command line of the run, e.g. `bench scale=10`.
    var commandLine: String
    /// Wall time of the whole run (boot and power-off included), when it ran.
    var wallSeconds: Double?
    /// nil when the run completed; otherwise why the column is empty or partial.
    var failure: String?
    /// Benchmark name to its measurement.
    var results: [String: Measurement]
  }

  /// One benchmark on one engine.
  struct Measurement: Codable, Equatable {
    var iterations: Int
    /// Guest nanoseconds per operation (the kernel's TSC, calibrated against its PIT).
    var nanosecondsPerOperation: Double
    /// VM exits between the benchmark's markers divided by `iterations` (Trivisor engines only).
    var exitsPerOperation: Double?
    /// The same per exit reason.
    var exitsPerOperationByReason: [String: Double]?
    /// This column's time over the fastest column's, for this benchmark (1 = fastest).
    var ratioToFastest: Double?
    /// Guest MIPS in the benchmark's region, for engines that count instructions (interp).
    var guestMIPS: Double? = nil
    /// The trap engine's monitor traps between the benchmark's markers (the end marker's own
    /// trap taken off) divided by `iterations`; nil for other engines.
    var trapsPerOperation: Double? = nil
  }

  /// The engine counter that counts the trap engine's monitor traps (`TrapEngineStatistics`).
  static let trapCounter = "trap-traps"

  var host: String
  var date: String
  var buildConfiguration: String
  /// Row order.
  var benchmarks: [String]
  var columns: [Column]
  /// Free-form remarks (missing peers, host quirks).
  var notes: [String] = []

  /// What each benchmark measures (docs/benchmarks.md has the long form).
  static let descriptions: [String: String] = [
    "syscall": "getpid system call round trip (ring 3)",
    "in": "IN from port 0x61 (ring-0 loop)",
    "out": "OUT to port 0x80 (ring-0 loop)",
    "cr3wr": "CR3 write, same value: TLB flush (ring-0 loop)",
    "cr8wr": "CR8 write (ring-0 loop)",
    "pgfault": "demand-zero page fault plus munmap (ring 3)",
    "divzero": "#DE delivered to a ring-3 handler and resumed",
    "ptemod": "toggle a live PTE's RW bit + INVLPG (ring-0 loop)",
    "ptebatch": "one of 64 PTEs updated as a batch + one TLB flush (per PTE)",
    "ctxswitch": "task switch between two yielding tasks",
    "timerirq": "timer interrupt taken and returned from (median gap)",
    "console": "one 31-byte console line (UART bytes, or one console_io)",
    "hash": "FNV-1a over 16 KiB (ring 3)",
    "sort": "heap sort of 2048 UInt32 (ring 3)",
    "matmul": "32x32 UInt32 matrix multiply (ring 3)",
  ]

  init(
    host: String, date: String, buildConfiguration: String, benchmarks: [String] = ReferenceKernelOutput.benchmarkNames,
    columns: [Column], notes: [String] = []
  ) {
    self.host = host
    self.date = date
    self.buildConfiguration = buildConfiguration
    self.benchmarks = benchmarks
    self.columns = columns
    self.notes = notes
    computeRatios()
  }

  /// Builds a column from a run's console output (its BENCH lines) and, for Trivisor engines, the
  /// exits the benchmark markers attributed.
  static func column(
    name: String, isPeer: Bool, commandLine: String, output: String, exits: [String: BenchmarkExits]?,
    wallSeconds: Double?, failure: String?
  ) -> Column {
    var results: [String: Measurement] = [:]
    for r in BenchmarkResult.all(in: output) {
      var m = Measurement(iterations: r.iterations, nanosecondsPerOperation: r.nanosecondsPerOperation)
      if let region = exits?[r.name], r.iterations > 0 {
        let n = Double(r.iterations)
        m.exitsPerOperation = Double(region.total) / n
        m.exitsPerOperationByReason = region.byReason.mapValues { Double($0) / n }
        m.guestMIPS = region.mips
        // Both markers are OUTs that trap: the begin marker's trap is in the begin snapshot, the
        // end marker's in the end snapshot, so one trap of the difference is the end marker's.
        if let traps = region.engineCounters?[trapCounter] {
          m.trapsPerOperation = Double(traps > 0 ? traps - 1 : 0) / n
        }
      }
      results[r.name] = m
    }
    var failure = failure
    if failure == nil && !output.contains("BENCH-DONE") { failure = "the suite did not finish (no BENCH-DONE line)" }
    return Column(
      name: name, isPeer: isPeer, commandLine: commandLine, wallSeconds: wallSeconds, failure: failure,
      results: results)
  }

  private mutating func computeRatios() {
    for b in benchmarks {
      let times = columns.compactMap { $0.results[b]?.nanosecondsPerOperation }.filter { $0 > 0 }
      guard let fastest = times.min() else { continue }
      for i in columns.indices {
        guard let t = columns[i].results[b]?.nanosecondsPerOperation, t > 0 else { continue }
        columns[i].results[b]?.ratioToFastest = t / fastest
      }
    }
  }

  // MARK: Text

  /// The side-by-side table: per benchmark and column, ns/op, exits/op and the ratio to the fastest.
  var text: String {
    let nameWidth = max(10, (benchmarks.map(\.count).max() ?? 0) + 1)
    let cell = 30
    var lines = ["trivisor bench (\(buildConfiguration) build) on \(host), \(date)"]
    var header1 = "".padding(toLength: nameWidth, withPad: " ", startingAt: 0)
    var header2 = "benchmark".padding(toLength: nameWidth, withPad: " ", startingAt: 0)
    for c in columns {
      header1 += " | " + centered("\(c.name) [\(c.commandLine)]", cell + (c.hasTraps ? 10 : 0))
      header2 += " | " + "ns/op".leftPadded(12) + "exits/op".leftPadded(10)
      if c.hasTraps { header2 += "traps/op".leftPadded(10) }
      header2 += "xfast".leftPadded(8)
    }
    lines += [header1, header2]
    lines.append(String(repeating: "-", count: header2.count))
    for b in benchmarks {
      var line = b.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
      for c in columns {
        guard let m = c.results[b] else {
          line += " | " + "-".leftPadded(12) + "-".leftPadded(10) + (c.hasTraps ? "-".leftPadded(10) : "")
          line += "-".leftPadded(8)
          continue
        }
        line += " | " + Self.formatNanoseconds(m.nanosecondsPerOperation).leftPadded(12)
        line += (m.exitsPerOperation.map { Self.formatExits($0) } ?? (c.isPeer ? "n/a" : "?")).leftPadded(10)
        if c.hasTraps { line += (m.trapsPerOperation.map { Self.formatExits($0) } ?? "?").leftPadded(10) }
        line += (m.ratioToFastest.map { String(format: $0 < 100 ? "%.2f" : "%.0f", $0) } ?? "-").leftPadded(8)
      }
      lines.append(line)
    }
    for c in columns {
      let mips = benchmarks.compactMap { b in c.results[b]?.guestMIPS.map { (b, $0) } }
      guard !mips.isEmpty else { continue }
      lines.append(
        "\(c.name) guest MIPS: " + mips.map { "\($0.0) \(String(format: "%.1f", $0.1))" }.joined(separator: ", "))
    }
    lines.append("")
    for c in columns {
      var about = "\(c.name): kernel command line '\(c.commandLine)'"
      if let w = c.wallSeconds { about += String(format: ", whole run %.2f s", w) }
      if let f = c.failure { about += "; FAILED: \(f)" }
      lines.append(about)
    }
    lines.append(
      "exits/op: VM exits between the benchmark's begin and end markers / iterations "
        + "(n/a: peer VMM, not counted; ?: no marker region seen)")
    if columns.contains(where: \.hasTraps) {
      lines.append(
        "traps/op: the trap engine's monitor traps (every guest exception, privileged instruction, "
          + "shadow page fault) between the markers / iterations; exits/op counts only those that "
          + "reach the VMM (port I/O, HLT)")
    }
    lines.append("xfast: time per operation over the fastest column's for that benchmark")
    if columns.contains(where: { c in c.results.values.contains { $0.guestMIPS != nil } }) {
      lines.append(
        "guest MIPS: guest instructions retired between the markers per host microsecond (engines that count them)")
    }
    lines += notes
    return lines.joined(separator: "\n")
  }

  private func centered(_ s: String, _ width: Int) -> String {
    guard s.count < width else { return String(s.prefix(width)) }
    let left = (width - s.count) / 2
    return String(repeating: " ", count: left) + s + String(repeating: " ", count: width - s.count - left)
  }

  /// ns with a thousands separator and precision that fits the magnitude.
  static func formatNanoseconds(_ v: Double) -> String {
    if v < 10 { return String(format: "%.2f", v) }
    if v < 1000 { return String(format: "%.1f", v) }
    let digits = String(format: "%.0f", v)
    var grouped = ""
    for (i, ch) in digits.reversed().enumerated() {
      if i > 0 && i % 3 == 0 { grouped.append(" ") }
      grouped.append(ch)
    }
    return String(grouped.reversed())
  }

  static func formatExits(_ v: Double) -> String {
    if v == 0 { return "0" }
    if v < 0.01 { return String(format: "%.4f", v) }
    if v < 100 { return String(format: "%.2f", v) }
    return String(format: "%.0f", v)
  }

  // MARK: JSON

  func json() throws -> Data {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try e.encode(self)
  }
}

extension BenchTable.Column {
  /// Whether the column counts monitor traps (the trap engine): its cells get a traps/op field.
  var hasTraps: Bool { results.values.contains { $0.trapsPerOperation != nil } }
}

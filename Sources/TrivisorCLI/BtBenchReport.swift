import Foundation

/// The results of `trivisor bench bt`: per guest, one column per engine (`interp`, `dbt`, `sbt`)
/// with its start-up, translation, speed, code-cache and coverage figures, and the tested
/// behaviour of each engine on self-modifying code and precise faults. Printed as text tables,
/// written as JSON (`--json`) and drawn as SVG (`--svg`).
struct BtBenchReport: Codable, Equatable {
  /// The machine the run was made on (`HostDescription.current`).
  var host: String
  /// When (ISO 8601).
  var date: String
  /// `release` or `debug`.
  var buildConfiguration: String
  /// Runs per engine and guest (medians are reported).
  var rounds: Int
  /// One entry per guest measured (or skipped, with its note).
  var guests: [Guest]
  /// The behaviour rows, one per property and engine, from running the probe guests.
  var behaviour: [Behaviour]
  /// Remarks printed under the tables (host load, skipped guests).
  var notes: [String]

  /// One guest's measurements.
  struct Guest: Codable, Equatable {
    /// Stable name (`--only`): `kernel-bench`, `selftest`, `alu-loop`, `seabios`.
    var name: String
    /// What was run, in one line.
    var description: String
    /// One column per engine, in the order interp, dbt, sbt.
    var columns: [Column]
    /// Why the guest was not measured, or a remark on it.
    var note: String?
  }

  /// One engine's figures on one guest (medians over the rounds; nil where not applicable).
  struct Column: Codable, Equatable {
    /// `interp`, `dbt` or `sbt`.
    var engine: String
    /// Host wall time from the start of the run (machine creation) to the first console byte.
    var firstOutputSeconds: Double?
    /// Host wall time of the whole run.
    var wallSeconds: Double?
    /// Time the engine spent translating while the guest ran (`dbt-translation-ns`).
    var onlineTranslationSeconds: Double?
    /// Time the translate step took before the run (sbt: discovery, compiling, writing the file).
    var offlineTranslationSeconds: Double?
    /// Host code bytes the run put into the code cache (`dbt-host-bytes`).
    var codeCacheBytes: UInt64?
    /// Share of guest instructions run by code from the translation file.
    var staticShare: Double?
    /// Share run by code translated at run time.
    var dynamicShare: Double?
    /// Share run by the interpreter.
    var interpreterShare: Double?
    /// Steady-state nanoseconds per operation, by benchmark (the kernel's BENCH lines, or the
    /// ALU loop's ns per guest instruction).
    var nanosecondsPerOperation: [String: Double] = [:]
    /// Why the engine did not run to the end (nil when it did).
    var failure: String?
    /// A remark, e.g. why there is no translation file.
    var note: String?
  }

  /// One tested property of one engine.
  struct Behaviour: Codable, Equatable {
    /// `self-modifying code` or `precise faults`.
    var property: String
    /// The engine tested.
    var engine: String
    /// Whether the engine behaved correctly.
    var passed: Bool
    /// What was observed, in one line.
    var observed: String
  }

  /// The engines in column order.
  static let engines = ["interp", "dbt", "sbt"]

  /// The report as text: a header, one table per guest, the behaviour table, the notes.
  var text: String {
    var lines = ["trivisor bench bt (\(buildConfiguration) build, \(rounds) rounds, medians) on \(host), \(date)"]
    for guest in guests {
      lines.append("")
      lines.append("\(guest.name): \(guest.description)")
      if let note = guest.note { lines.append("  note: \(note)") }
      guard !guest.columns.isEmpty else { continue }
      lines.append(Self.row("", guest.columns.map(\.engine)))
      func add(_ label: String, _ value: (Column) -> String?) {
        let cells = guest.columns.map { value($0) ?? "-" }
        if cells.contains(where: { $0 != "-" }) { lines.append(Self.row(label, cells)) }
      }
      add("time to first output") { $0.firstOutputSeconds.map(Self.seconds) }
      add("total wall time") { $0.wallSeconds.map(Self.seconds) }
      add("online translation") { $0.onlineTranslationSeconds.map(Self.seconds) }
      add("offline translation") { $0.offlineTranslationSeconds.map(Self.seconds) }
      add("code cache") { $0.codeCacheBytes.map(Self.bytes) }
      add("static (file) share") { $0.staticShare.map(Self.percent) }
      add("dynamic share") { $0.dynamicShare.map(Self.percent) }
      add("interpreter share") { $0.interpreterShare.map(Self.percent) }
      let benchmarks = Set(guest.columns.flatMap { $0.nanosecondsPerOperation.keys }).sorted()
      for name in benchmarks {
        add("\(name) ns/op") { $0.nanosecondsPerOperation[name].map(BenchTable.formatNanoseconds) }
      }
      for column in guest.columns {
        if let f = column.failure { lines.append("  \(column.engine) FAILED: \(f)") }
        if let n = column.note { lines.append("  \(column.engine): \(n)") }
      }
    }
    if !behaviour.isEmpty {
      lines.append("")
      lines.append("behaviour (tested by running probe guests; yes = same as the interpreter's architectural result)")
      let engines = Self.engines.filter { e in behaviour.contains { $0.engine == e } }
      lines.append(Self.row("", engines))
      for property in Self.orderedUnique(behaviour.map(\.property)) {
        lines.append(
          Self.row(
            property,
            engines.map { e in
              behaviour.first { $0.property == property && $0.engine == e }.map { $0.passed ? "yes" : "NO" } ?? "-"
            }))
      }
      for b in behaviour { lines.append("  \(b.property), \(b.engine): \(b.observed)") }
    }
    if !notes.isEmpty {
      lines.append("")
      lines += notes.map { "note: \($0)" }
    }
    return lines.joined(separator: "\n")
  }

  /// The report as pretty-printed JSON with sorted keys.
  func json() throws -> Data {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try e.encode(self)
  }

  /// A table row: the label in 24 columns, each cell right-aligned in 14.
  static func row(_ label: String, _ cells: [String]) -> String {
    label.padding(toLength: 24, withPad: " ", startingAt: 0) + cells.map { $0.leftPadded(14) }.joined()
  }

  /// Seconds with a unit that keeps 3 significant digits (`12.3 ms`, `1.52 s`).
  static func seconds(_ s: Double) -> String {
    if s >= 10 { return String(format: "%.1f s", s) }
    if s >= 1 { return String(format: "%.2f s", s) }
    if s >= 0.01 { return String(format: "%.1f ms", s * 1e3) }
    if s >= 0.001 { return String(format: "%.2f ms", s * 1e3) }
    return String(format: "%.0f us", s * 1e6)
  }

  /// Bytes in KiB or MiB.
  static func bytes(_ b: UInt64) -> String {
    b >= 1 << 20 ? String(format: "%.1f MiB", Double(b) / 1_048_576) : String(format: "%.1f KiB", Double(b) / 1024)
  }

  /// A share (0...1) as a percentage with one decimal.
  static func percent(_ share: Double) -> String { String(format: "%.1f %%", share * 100) }

  /// `items` without repeats, in first-seen order.
  static func orderedUnique(_ items: [String]) -> [String] {
    var seen = Set<String>()
    return items.filter { seen.insert($0).inserted }
  }
}

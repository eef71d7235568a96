import ArgumentParser
import Foundation
import Testing

@testable import TrivisorCLI

/// `trivisor bench bt`: its table and JSON from synthetic results, its option checks, the
/// behaviour probes on every engine, and a smoke run of the smallest guest.
@Suite struct BtBenchTests {
  /// Kernel output with two benchmark lines.
  static let kernelOutput = """
    BENCH-INFO tsc_hz=2600000000 timer_hz=100 scale=10
    BENCH name=syscall iters=2000 ns_per_op=150.5 cycles_per_op=390
    BENCH name=hash iters=20 ns_per_op=15000.0 cycles_per_op=39000
    BENCH-DONE reported=2
    """

  /// A run as `BtRunner.run` would report it.
  static func observation(wall: Double, counters: [String: UInt64], instructions: UInt64?) -> BtRunner.Observation {
    BtRunner.Observation(
      firstOutputSeconds: 0.012, wallSeconds: wall, output: kernelOutput, counters: counters,
      instructions: instructions, failure: nil)
  }

  /// A report with three engines on one guest, a skipped guest and behaviour rows.
  static func report() -> BtBenchReport {
    let interp = BtRunner.summarize(
      engine: "interp", runs: [observation(wall: 2, counters: [:], instructions: 1000)])
    var dbt = BtRunner.summarize(
      engine: "dbt",
      runs: [
        observation(
          wall: 0.5,
          counters: ["dbt-translated-instructions": 900, "dbt-host-bytes": 3 << 20, "dbt-translation-ns": 40_000_000],
          instructions: 1000),
        observation(
          wall: 0.7,
          counters: ["dbt-translated-instructions": 900, "dbt-host-bytes": 3 << 20, "dbt-translation-ns": 60_000_000],
          instructions: 1000),
        observation(
          wall: 0.9,
          counters: ["dbt-translated-instructions": 900, "dbt-host-bytes": 3 << 20, "dbt-translation-ns": 80_000_000],
          instructions: 1000),
      ])
    dbt.note = "a remark"
    var sbt = BtBenchReport.Column(engine: "sbt")
    sbt.failure = "guest triple fault (shutdown)"
    sbt.offlineTranslationSeconds = 1.5
    return BtBenchReport(
      host: "Test CPU", date: "2026-01-01T00:00:00Z", buildConfiguration: "release", rounds: 3,
      guests: [
        .init(name: "kernel-bench", description: "the kernel", columns: [interp, dbt, sbt]),
        .init(name: "seabios", description: "SeaBIOS", columns: [], note: "skipped: missing"),
      ],
      behaviour: [
        .init(property: "self-modifying code", engine: "interp", passed: true, observed: "ok"),
        .init(property: "self-modifying code", engine: "sbt", passed: false, observed: "printed \"AYC\""),
        .init(property: "precise faults", engine: "dbt", passed: true, observed: "rip 0x10014"),
      ],
      notes: ["host load average 0.1"])
  }

  @Test func columnsAreMediansAndSharesFromTheCounters() {
    let report = Self.report()
    let dbt = report.guests[0].columns[1]
    #expect(dbt.wallSeconds == 0.7)
    #expect(dbt.onlineTranslationSeconds == 0.06)
    #expect(dbt.codeCacheBytes == 3 << 20)
    #expect(dbt.dynamicShare == 0.9)
    #expect(abs((dbt.interpreterShare ?? 0) - 0.1) < 1e-12)
    #expect(dbt.staticShare == nil)
    #expect(dbt.nanosecondsPerOperation == ["syscall": 150.5, "hash": 15000])
    #expect(report.guests[0].columns[0].interpreterShare == 1)

    let sbt = BtRunner.summarize(
      engine: "sbt",
      runs: [
        Self.observation(
          wall: 1, counters: ["dbt-translated-instructions": 950, "sbt-static-instructions": 900], instructions: 1000)
      ])
    #expect(sbt.staticShare == 0.9)
    #expect(abs((sbt.dynamicShare ?? 0) - 0.05) < 1e-12)
    #expect(abs((sbt.interpreterShare ?? 0) - 0.05) < 1e-12)
  }

  @Test func textHasOneTablePerGuestAndTheBehaviourTable() {
    let text = Self.report().text
    let lines = text.split(separator: "\n").map(String.init)
    #expect(lines[0].hasPrefix("trivisor bench bt (release build, 3 rounds, medians) on Test CPU"))
    #expect(lines.contains(BtBenchReport.row("", ["interp", "dbt", "sbt"])))
    #expect(lines.contains(BtBenchReport.row("total wall time", ["2.00 s", "700.0 ms", "-"])))
    #expect(lines.contains(BtBenchReport.row("online translation", ["-", "60.0 ms", "-"])))
    #expect(lines.contains(BtBenchReport.row("offline translation", ["-", "-", "1.50 s"])))
    #expect(lines.contains(BtBenchReport.row("code cache", ["-", "3.0 MiB", "-"])))
    #expect(lines.contains(BtBenchReport.row("dynamic share", ["-", "90.0 %", "-"])))
    #expect(lines.contains(BtBenchReport.row("syscall ns/op", ["150.5", "150.5", "-"])))
    // No column has a static share: the row is left out.
    #expect(!text.contains("static (file) share"))
    #expect(lines.contains("  sbt FAILED: guest triple fault (shutdown)"))
    #expect(lines.contains("  dbt: a remark"))
    #expect(lines.contains("  note: skipped: missing"))
    #expect(lines.contains(BtBenchReport.row("self-modifying code", ["yes", "-", "NO"])))
    #expect(lines.contains(BtBenchReport.row("precise faults", ["-", "yes", "-"])))
    #expect(lines.last == "note: host load average 0.1")
  }

  @Test func jsonRoundTripsAndTheChartHasTheBenchmarks() throws {
    let report = Self.report()
    let decoded = try JSONDecoder().decode(BtBenchReport.self, from: try report.json())
    #expect(decoded == report)
    let chart = report.chartTable
    #expect(chart.benchmarks == ["hash", "syscall"])
    #expect(chart.columns.map(\.name) == ["interp", "dbt", "sbt"])
    #expect(chart.columns[1].results["syscall"]?.nanosecondsPerOperation == 150.5)
    let svg = SVGChart(table: chart).svg
    #expect(svg.hasPrefix("<svg") && svg.contains("dbt"))
  }

  @Test func badOptionsAreRefused() throws {
    for arguments in [["--rounds", "0"], ["--rounds", "101"], ["--only", "linux"], ["--timeout=-1"]] {
      #expect(throws: ExitCode.self, "\(arguments)") { try BtBenchCommand.parse(arguments).checkedGuests() }
    }
    #expect(try BtBenchCommand.parse([]).checkedGuests() == BtBenchCommand.guestNames)
    #expect(
      try BtBenchCommand.parse(["--only", "seabios", "--only", "selftest"]).checkedGuests() == ["selftest", "seabios"])
  }

  @Test func probesPassOnEveryEngine() {
    let rows = BtBehaviourProbes.runAll(timeoutSeconds: 60)
    #expect(rows.count == 6)
    for row in rows { #expect(row.passed, "\(row.property), \(row.engine): \(row.observed)") }
    // The sbt self-modifying run used file blocks and rejected the page the guest wrote.
    let sbt = rows.first { $0.engine == "sbt" && $0.property == "self-modifying code" }
    #expect(sbt?.observed.contains("1 written pages rejected") == true)
  }

  @Test func probesDetectAWrongResult() throws {
    // The precise-fault guest with its first ADD changed to add 6: EBX at the fault is 706, not
    // 807, so the row reports a failure (the comparison is with the expected state, not a constant).
    var guest = BtBehaviourProbes.preciseFault
    guest[0x13] = 6
    let run = try BtBehaviourProbes.run(guest, engine: "interp", timeoutSeconds: 60)
    guard case .shutdown(_, let report) = run.outcome.reason else {
      Issue.record("expected a shutdown, got \(run.outcome.reason)")
      return
    }
    #expect(report.registers?.rip == 0x10014)
    #expect(report.registers?.rbx == 706)
  }

  @Test func smokeRunOfTheSelfTest() throws {
    let command = try BtBenchCommand.parse(["--allow-debug", "--only", "selftest", "--rounds", "1"])
    try command.run()
  }
}

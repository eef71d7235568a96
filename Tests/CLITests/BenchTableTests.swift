import Foundation
import GuestImages
import Launcher
import Testing

@testable import TrivisorCLI

/// Rendering of the `trivisor bench` table from canned kernel output: pure and fast.
@Suite struct BenchTableTests {
  static let fastOutput = """
    trivisor-kernel: mode=bench timer_hz=100
    BENCH-INFO tsc_hz=2600000000 timer_hz=100 scale=10
    BENCH name=syscall iters=2000 ns_per_op=150000.0 cycles_per_op=390000
    BENCH name=in iters=1000 ns_per_op=16000.5 cycles_per_op=41601
    BENCH name=hash iters=20 ns_per_op=15000.0 cycles_per_op=39000
    BENCH-DONE reported=3
    """
  static let slowOutput = """
    BENCH name=syscall iters=200 ns_per_op=300.0 cycles_per_op=780
    BENCH name=in iters=100 ns_per_op=250.0 cycles_per_op=650
    BENCH name=hash iters=2 ns_per_op=60000.0 cycles_per_op=156000
    BENCH-DONE reported=3
    """

  static func table() -> BenchTable {
    let exits: [String: BenchmarkExits] = [
      "syscall": BenchmarkExits(byReason: ["interrupt-window": 100, "io-out": 100]),
      "in": BenchmarkExits(byReason: ["io-in": 1000, "io-out": 2]),
    ]
    return BenchTable(
      host: "Test CPU <1>", date: "2026-01-01T00:00:00Z", buildConfiguration: "release",
      benchmarks: ["syscall", "in", "hash", "sort"],
      columns: [
        BenchTable.column(
          name: "kvm", isPeer: false, commandLine: "bench scale=10", output: fastOutput, exits: exits,
          wallSeconds: 2.5, failure: nil),
        BenchTable.column(
          name: "qemu-tcg", isPeer: true, commandLine: "bench scale=1", output: slowOutput, exits: nil,
          wallSeconds: 0.3, failure: nil),
        BenchTable.column(
          name: "broken", isPeer: false, commandLine: "bench scale=1", output: "BENCH name=in iters=1", exits: [:],
          wallSeconds: nil, failure: nil),
      ])
  }

  @Test func measurementsExitsAndRatios() throws {
    let t = Self.table()
    let kvm = t.columns[0]
    #expect(kvm.failure == nil)
    #expect(kvm.results["syscall"]?.exitsPerOperation == 0.1)
    #expect(kvm.results["syscall"]?.exitsPerOperationByReason == ["interrupt-window": 0.05, "io-out": 0.05])
    #expect(kvm.results["in"]?.exitsPerOperation == 1.002)
    #expect(kvm.results["hash"]?.exitsPerOperation == nil)  // no marker region seen: unknown, not 0
    #expect(kvm.results["syscall"]?.ratioToFastest == 500)
    #expect(kvm.results["hash"]?.ratioToFastest == 1)
    let tcg = t.columns[1]
    #expect(tcg.results["syscall"]?.ratioToFastest == 1)
    #expect(tcg.results["syscall"]?.exitsPerOperation == nil)
    #expect(tcg.results["hash"]?.ratioToFastest == 4)
    // A run that never finished is marked, and its malformed line ignored.
    #expect(t.columns[2].results.isEmpty)
    #expect(t.columns[2].failure?.contains("BENCH-DONE") == true)
  }

  @Test func textTableHasOneRowPerBenchmarkAndAColumnPerEngine() {
    let text = Self.table().text
    let lines = text.split(separator: "\n").map(String.init)
    #expect(lines[1].contains("kvm [bench scale=10]") && lines[1].contains("qemu-tcg [bench scale=1]"))
    let syscall = try? #require(lines.first { $0.hasPrefix("syscall ") })
    #expect(syscall?.contains("150 000") == true)
    #expect(syscall?.contains("500") == true)
    #expect(syscall?.contains("n/a") == true)  // the peer has no exit counts
    #expect(lines.first { $0.hasPrefix("in ") }?.contains("16 000") == true)
    #expect(lines.first { $0.hasPrefix("sort ") }?.contains(" - ") == true)
    #expect(text.contains("broken: kernel command line 'bench scale=1'; FAILED"))
  }

  @Test func jsonRoundTrips() throws {
    let t = Self.table()
    let decoded = try JSONDecoder().decode(BenchTable.self, from: try t.json())
    #expect(decoded == t)
    let object = try JSONSerialization.jsonObject(with: try t.json()) as? [String: Any]
    #expect((object?["columns"] as? [Any])?.count == 3)
  }

  @Test func svgIsAGroupedLogScaleBarChartWithLegend() {
    let svg = SVGChart(table: Self.table()).svg
    #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
    #expect(svg.hasSuffix("</svg>\n"))
    // One bar per measurement (3 + 3 + 0), each with a tooltip; the host is escaped.
    #expect(svg.components(separatedBy: "<title>").count - 1 == 6)
    #expect(svg.contains("Test CPU &lt;1&gt;"))
    #expect(!svg.contains("Test CPU <1>"))
    for label in ["kvm (Trivisor engine", "qemu-tcg (peer", "broken (Trivisor engine", "100 ns", "1 ms", "syscall"] {
      #expect(svg.contains(label), "\(label)")
    }
    // Log scale: the 250 ns bar is shorter than the 150 us one, but not 600 times shorter.
    func height(_ title: String) -> Double? {
      guard let r = svg.range(of: "<title>\(title)") else { return nil }
      let rect = svg[..<r.lowerBound].components(separatedBy: "<rect").last ?? ""
      guard let h = rect.range(of: "height=\"") else { return nil }
      return Double(rect[h.upperBound...].prefix { $0 != "\"" })
    }
    let short = height("qemu-tcg in: 250.0 ns/op") ?? 0
    let tall = height("kvm syscall: 150 000 ns/op") ?? 0
    #expect(short > 0 && tall > short && tall / short < 10, "\(short) \(tall)")
  }

  /// The trap engine's column: its monitor traps between the markers (the end marker's own trap
  /// taken off) per operation get their own field; other columns keep their layout.
  @Test func trapColumnShowsTrapsPerOperation() throws {
    var exits = BenchmarkExits(byReason: ["io-in": 1000])
    exits.engineCounters = ["trap-traps": 1001, "trap-gp": 1001]
    let table = BenchTable(
      host: "test", date: "now", buildConfiguration: "release", benchmarks: ["syscall", "in"],
      columns: [
        BenchTable.column(
          name: "kvm", isPeer: false, commandLine: "bench scale=10", output: Self.fastOutput,
          exits: ["in": BenchmarkExits(byReason: ["io-in": 1000])], wallSeconds: 1, failure: nil),
        BenchTable.column(
          name: "trap", isPeer: false, commandLine: "bench scale=10", output: Self.fastOutput,
          exits: ["in": exits], wallSeconds: 1, failure: nil),
      ])
    let trap = try #require(table.columns.last)
    #expect(trap.results["in"]?.trapsPerOperation == 1)
    #expect(trap.results["syscall"]?.trapsPerOperation == nil, "no marker region: unknown")
    #expect(table.columns[0].results["in"]?.trapsPerOperation == nil)
    #expect(trap.hasTraps && !table.columns[0].hasTraps)
    let lines = table.text.split(separator: "\n").map(String.init)
    let header = try #require(lines.first { $0.hasPrefix("benchmark") })
    #expect(header.components(separatedBy: "traps/op").count == 2, "only the trap column: \(header)")
    let row = try #require(lines.first { $0.hasPrefix("in ") })
    #expect(row.hasSuffix("1.00      1.00    1.00"), "\(row)")
    #expect(table.text.contains("traps/op: the trap engine's monitor traps"))
    let decoded = try JSONDecoder().decode(BenchTable.self, from: try table.json())
    #expect(decoded == table)
  }

  @Test func engineOptionTakesCommaSeparatedNames() throws {
    let options = try KernelBenchOptions.parse(["--engine", "kvm,interp", "--engine", "trap"])
    #expect(options.engines == ["kvm", "interp", "trap"])
    #expect(options.includes("trap") && options.includes("interp") && !options.includes("dbt"))
    #expect(try KernelBenchOptions.parse([]).includes("dbt"), "no --engine: every engine")
  }

  @Test func decadeLabels() {
    #expect(SVGChart.decadeLabel(0) == "1 ns")
    #expect(SVGChart.decadeLabel(2) == "100 ns")
    #expect(SVGChart.decadeLabel(4) == "10 us")
    #expect(SVGChart.decadeLabel(9) == "1 s")
  }

  @Test func nanosecondFormatting() {
    #expect(BenchTable.formatNanoseconds(1_234_567.8) == "1 234 568")
    #expect(BenchTable.formatNanoseconds(250) == "250.0")
    #expect(BenchTable.formatNanoseconds(3.14159) == "3.14")
  }
}

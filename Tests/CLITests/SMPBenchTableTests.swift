import Testing

@testable import TrivisorCLI

/// `trivisor bench smp`'s table from captured kernel output: cells, skips and the parallel speedup.
@Suite struct SMPBenchTableTests {
  static func column(_ engine: String, cpus: Int, _ output: String, failure: String? = nil) -> SMPBenchTable.Column {
    .parse(engine: engine, cpus: cpus, commandLine: "bench smp scale=1", output: output, failure: failure)
  }

  @Test func speedupIsOneCPUTimeOverThisTime() throws {
    let one = Self.column(
      "interp", cpus: 1,
      """
      BENCH-SKIP name=ipi reason=one-cpu
      BENCH-SKIP name=tlbshoot reason=one-cpu
      BENCH name=spinlock iters=50 ns_per_op=20.0 cycles_per_op=20
      BENCH name=parallel iters=20 ns_per_op=4000.0 cycles_per_op=4000
      """)
    let two = Self.column(
      "interp", cpus: 2,
      """
      BENCH name=ipi iters=20 ns_per_op=5000.0 cycles_per_op=5000
      BENCH name=tlbshoot iters=20 ns_per_op=6000.0 cycles_per_op=6000
      BENCH name=spinlock iters=100 ns_per_op=40.0 cycles_per_op=40
      BENCH name=parallel iters=20 ns_per_op=2000.0 cycles_per_op=2000
      """)
    let failed = Self.column("kvm", cpus: 2, "", failure: "timeout")
    let table = SMPBenchTable(host: "test host", buildConfiguration: "release", columns: [one, two, failed])
    #expect(table.parallelSpeedup(one) == 1)
    #expect(table.parallelSpeedup(two) == 2)
    #expect(table.parallelSpeedup(failed) == nil)  // no 1-vCPU kvm column
    #expect(one.nanosecondsPerOperation["ipi"] == nil)
    let lines = table.text.split(separator: "\n").map(String.init)
    let speedup = try #require(lines.first { $0.hasPrefix("parallel speedup") })
    #expect(speedup.contains("1.00x") && speedup.contains("2.00x"))
    let ipi = try #require(lines.first { $0.hasPrefix("ipi ") })
    #expect(ipi.contains("5 000"), "\(ipi)")
    #expect(ipi.contains("FAILED"))
    #expect(lines.contains { $0.contains("kvm x2") && $0.contains("FAILED: timeout") })
  }
}

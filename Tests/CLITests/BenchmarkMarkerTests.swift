import GuestImages
import Launcher
import TestHostSupport
import Testing
import VMM

@testable import TrivisorCLI

/// The exits `trivisor bench` attributes to each benchmark, on a real run of the reference kernel.
@Suite struct BenchmarkMarkerTests {
  /// On kvm every `in`/`out` iteration is exactly one port-I/O exit, so the attribution must show
  /// about one exit per operation (plus the odd timer interrupt), and ring-3 compute almost none.
  @Test(.requires(.kvm)) func portIOBenchmarksCostOneExitPerOperationOnKVM() throws {
    let entry = try #require(EngineRegistry.entries.first(where: { $0.name == "kvm" }))
    let run = try ReferenceGuest.run(engine: try entry.make(false), commandLine: "bench scale=1", timeoutSeconds: 120)
    #expect(run.outcome.exitStatus == 0, "\(run.outcome.reason)")
    let table = BenchTable(
      host: "test", date: "now", buildConfiguration: "debug",
      columns: [
        BenchTable.column(
          name: "kvm", isPeer: false, commandLine: "bench scale=1", output: run.output, exits: run.exitsByBenchmark,
          wallSeconds: run.wallSeconds, failure: nil)
      ])
    let kvm = try #require(table.columns.first)
    #expect(kvm.failure == nil)
    #expect(Set(kvm.results.keys) == Set(ReferenceKernelOutput.benchmarkNames))
    let portIn = try #require(kvm.results["in"])
    let portOut = try #require(kvm.results["out"])
    #expect(portIn.exitsPerOperation.map { $0 >= 1 && $0 < 1.5 } == true, "\(portIn)")
    #expect(portIn.exitsPerOperationByReason?["io-in"].map { $0 >= 1 && $0 < 1.1 } == true)
    #expect(portOut.exitsPerOperation.map { $0 >= 1 && $0 < 1.5 } == true, "\(portOut)")
    #expect(portOut.exitsPerOperationByReason?["io-out"].map { $0 >= 1 && $0 < 1.1 } == true)
    // No console output inside a region: the BENCH lines are printed after the end marker.
    #expect(kvm.results["cr3wr"]?.exitsPerOperation.map { $0 < 0.5 } == true)
  }

  /// On trap every IN traps to the monitor once (a #GP emulated into a port exit): the table's
  /// traps/op for `in` is one, and a ring-0 CR3 write is one trap too.
  @Test(.requires(.kvm)) func trapColumnCountsOneMonitorTrapPerPortAccess() throws {
    let entry = try #require(EngineRegistry.entries.first(where: { $0.name == "trap" }))
    if let why = entry.unavailableReason() {
      Issue.record("trap unavailable where kvm works: \(why)")
      return
    }
    let run = try ReferenceGuest.run(
      engine: try entry.make(false), commandLine: "bench scale=1", timeoutSeconds: 300)
    #expect(run.outcome.exitStatus == 0, "\(run.outcome.reason)")
    let table = BenchTable(
      host: "test", date: "now", buildConfiguration: "debug",
      columns: [
        BenchTable.column(
          name: "trap", isPeer: false, commandLine: "bench scale=1", output: run.output, exits: run.exitsByBenchmark,
          wallSeconds: run.wallSeconds, failure: nil)
      ])
    let trap = try #require(table.columns.first)
    #expect(trap.failure == nil)
    #expect(Set(trap.results.keys) == Set(ReferenceKernelOutput.benchmarkNames))
    for name in ["in", "cr3wr"] {
      let m = try #require(trap.results[name])
      #expect(m.trapsPerOperation.map { $0 >= 1 && $0 < 1.5 } == true, "\(name): \(m)")
    }
    // sort is ring-3 compute: once its pages are shadowed it runs without traps (it took
    // thousands per operation while freed page-table frames stayed write-protected).
    let sort = try #require(trap.results["sort"])
    #expect(sort.trapsPerOperation.map { $0 < 100 } == true, "\(sort)")
  }

  /// In PV mode the markers are Trivisor's marker hypercall: a CR3 switch is one hypercall (a
  /// multicall of `mmu_update` and `new_baseptr`) and the marker's own exit is not counted.
  @Test func paravirtualMarkersAttributeHypercalls() throws {
    let entry = try #require(EngineRegistry.entries.first(where: { $0.name == "interp" }))
    let run = try ReferenceGuest.run(
      engine: try entry.make(false), commandLine: "bench scale=1 only=cr3wr", timeoutSeconds: 120, paravirtual: true)
    #expect(run.outcome.exitStatus == 0, "\(run.outcome.reason)")
    let table = BenchTable(
      host: "test", date: "now", buildConfiguration: "debug",
      columns: [
        BenchTable.column(
          name: "interp+pv", isPeer: false, commandLine: "bench scale=1 only=cr3wr", output: run.output,
          exits: run.exitsByBenchmark, wallSeconds: run.wallSeconds, failure: nil)
      ])
    let cr3 = try #require(table.columns.first?.results["cr3wr"])
    #expect(cr3.exitsPerOperationByReason?["hypercall"].map { $0 >= 1 && $0 < 1.1 } == true, "\(cr3)")
  }
}

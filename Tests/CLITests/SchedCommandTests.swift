import ArgumentParser
import Foundation
import Testing

@testable import TrivisorCLI

/// `trivisor sched-sim` and `sched-report`: option checks, `--vm` syntax, and a trace written by
/// one and read by the other.
@Suite struct SchedCommandTests {
  @Test func vmSpecificationsParseEveryKey() throws {
    let spec = try VMSpec.parse("weight=512,cap=50,vcpus=3,demand=io:100:2000,pin=0-1+3", pcpus: 4)
    #expect(spec.share.weight == 512)
    #expect(spec.share.cap == 50)
    #expect(spec.vcpus == 3)
    #expect(spec.demand == .periodic(run: 100_000, sleep: 2_000_000))
    #expect(spec.pin == [0, 1, 3])
    #expect(try VMSpec.parse("demand=spin:20:60", pcpus: 1).demand == .spinlock(critical: 20_000, between: 60_000))
    #expect(try VMSpec.parse("", pcpus: 1) == VMSpec())
  }

  @Test(arguments: [
    "weight", "weight=0", "cap=-1", "vcpus=999", "demand=io:1", "demand=warp", "pin=2", "pin=1-0", "x=1",
  ])
  func badVMSpecificationsAreRefused(text: String) {
    #expect(throws: VMSpec.ParseError.self) { try VMSpec.parse(text, pcpus: 2) }
  }

  @Test func badOptionsEndWithAUsageError() throws {
    for arguments in [["--pcpus", "0"], ["--duration", "0"], ["--vm", "foo=1"], ["--spin-detection", "0"]] {
      let command = try SchedSimCommand.parse(arguments)
      #expect(throws: ExitCode.self) { try command.run() }
    }
  }

  @Test func aSimulatedTraceReadsBackInSchedReport() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-sched-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let trace = directory.appendingPathComponent("run.trace").path
    let svg = directory.appendingPathComponent("run.svg").path
    try SchedSimCommand.parse([
      "--pcpus", "2", "--vm", "weight=512,vcpus=2", "--vm", "cap=50", "--duration", "300", "--sched-trace", trace,
    ]).run()
    try SchedReportCommand.parse([trace, "--svg", svg, "--from", "100", "--to", "200"]).run()
    let picture = try String(contentsOfFile: svg, encoding: .utf8)
    #expect(picture.contains("pCPU 1"))
    #expect(throws: ExitCode.self) {
      try SchedReportCommand.parse([trace, "--svg", svg, "--from", "5", "--to", "5"]).run()
    }
    #expect(throws: ExitCode.self) { try SchedReportCommand.parse([svg]).run() }
  }
}

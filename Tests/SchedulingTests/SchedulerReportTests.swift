import Testing

@testable import Scheduling

/// The trace file, the report and the timeline picture of a scheduling run.
@Suite struct SchedulerReportTests {
  /// A 2-pCPU run: a CPU-bound VM of weight 512, a capped VM and an I/O VM.
  static func run() -> (SchedulerTraceFile.Configuration, SchedulerTrace, String) {
    let s = CreditScheduler(pcpus: 2)
    let shares = [VMShare(weight: 512), VMShare(weight: 256, cap: 30), VMShare()]
    for share in shares { s.addVM(share) }
    s.addVCPU(vm: 0)
    s.addVCPU(vm: 0)
    s.addVCPU(vm: 1)
    let io = s.addVCPU(vm: 2)!
    var sim = SchedulerSimulation(scheduler: s)
    sim.set(.periodic(run: 100_000, sleep: 2_000_000), for: io)
    let configuration = SchedulerTraceFile.Configuration(pcpus: 2, shares: shares, vcpus: s.vcpus)
    let trace = sim.run(for: 1_000_000_000, keepingEvents: true)
    var file = SchedulerTraceFile.header(configuration)
    for e in trace.events { file += SchedulerTraceFile.line(e) }
    file += SchedulerTraceFile.end(at: 1_000_000_000)
    return (configuration, trace, file)
  }

  @Test func aTraceFileReadsBackToTheSameTrace() throws {
    let (configuration, trace, file) = Self.run()
    let (readConfiguration, read) = try SchedulerTraceFile.parse(file)
    #expect(readConfiguration == configuration)
    #expect(read.intervals == trace.intervals)
    #expect(read.wakeLatencies == trace.wakeLatencies)
    #expect(read.stealTime == trace.stealTime)
    #expect(read.migrations == trace.migrations)
    #expect(read.duration == 1_000_000_000)
  }

  @Test func theReportShowsSharesCapsLatencyAndSteal() throws {
    let (configuration, trace, _) = Self.run()
    let report = SchedulerReport(
      trace: trace, shares: configuration.shares, vcpus: configuration.vcpus, pcpus: configuration.pcpus)
    #expect(report.rows.count == 3)
    #expect(report.rows[1].withinCap == true)
    #expect(abs(report.rows[1].percentOfOnePCPU - 30) < 1.5, "capped VM: \(report.rows[1].percentOfOnePCPU)%")
    #expect(report.rows[0].withinCap == nil)
    #expect(report.rows[2].wakeLatencyP99 <= 1_000_000, "BOOST: the I/O VM waits at most the rate limit")
    #expect(report.rows[0].stealPercent > 0, "3 runnable vCPUs on 2 pCPUs: somebody waits")
    #expect(report.utilizationPercent > 99)
    let text = report.text
    #expect(text.contains("cap-ok"))
    #expect(text.split(separator: "\n").count == 5)
  }

  @Test func theTimelineHasALanePerPCPUAndABoxPerRun() {
    let (configuration, trace, _) = Self.run()
    let svg = SchedulerTimelineSVG(trace: trace, pcpus: configuration.pcpus, title: "a <test>").svg
    #expect(svg.hasPrefix("<svg"))
    #expect(svg.hasSuffix("</svg>\n"))
    #expect(svg.contains("pCPU 0") && svg.contains("pCPU 1") && !svg.contains("pCPU 2"))
    #expect(svg.contains("a &lt;test&gt;"))
    #expect(svg.contains("<title>vm2.0</title>"))
    #expect(svg.contains(SchedulerTimelineSVG.colour(VCPUID(vm: 1, vcpu: 0))))
  }

  @Test(arguments: [
    ("", 1, "not a trivisor sched-trace file"),
    ("# trivisor sched-trace 1\n", 2, "no 'pcpus' line"),
    ("# trivisor sched-trace 1\npcpus 0\n", 2, "pcpus must be 1 to 4096"),
    ("# trivisor sched-trace 1\npcpus 1\nvm 1 weight 256 cap -\n", 3, "numbered 0, 1"),
    ("# trivisor sched-trace 1\npcpus 1\nvm 0 weight 256 cap x\n", 3, "not a positive percentage"),
    ("# trivisor sched-trace 1\npcpus 1\nvm 0 weight 256 cap -\nvcpu vm3.0\n", 4, "undeclared VM"),
    ("# trivisor sched-trace 1\npcpus 1\nvm 0 weight 256 cap -\nwoke vm0.0 5\n", 4, "not declared"),
    ("# trivisor sched-trace 1\npcpus 1\nvm 0 weight 256 cap -\nvcpu vm0.0\ndispatched vm0.0 p1 5\n", 5, "not a pCPU"),
    ("# trivisor sched-trace 1\npcpus 1\nvm 0 weight 256 cap -\nvcpu vm0.0\nwoke vm0.0 -5\n", 5, "not a time"),
    ("# trivisor sched-trace 1\npcpus 1\nend 5\nend 6\n", 4, "after the 'end' line"),
    ("# trivisor sched-trace 1\npcpus 1\nfrobnicate\n", 3, "unknown record"),
    ("# trivisor sched-trace 1\npcpus 1 2\n", 2, "needs 1 value(s)"),
  ])
  func badTraceFilesGetTheLineAndTheReason(text: String, line: Int, message: String) {
    #expect {
      _ = try SchedulerTraceFile.parse(text)
    } throws: { error in
      guard let e = error as? SchedulerTraceFile.Error else { return false }
      return e.line == line && e.message.contains(message)
    }
  }
}

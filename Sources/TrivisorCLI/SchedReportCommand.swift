import ArgumentParser
import Scheduling
import VMM

/// `trivisor sched-report`: reads a `--sched-trace` file and prints per-VM CPU share against
/// weight share, cap adherence, wake-up latency percentiles, migrations and steal time; draws the
/// timeline as SVG.
struct SchedReportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sched-report",
    abstract: "Summarize a scheduler trace (--sched-trace) and draw its timeline."
  )

  @Argument(help: "A trace file written with --sched-trace.")
  var trace: String

  @Option(help: "Write the timeline (one lane per pCPU, coloured by VM and vCPU) as SVG to this file.")
  var svg: String?

  @Option(help: "Draw only from this time on, in milliseconds.")
  var from: Int?

  @Option(help: "Draw only up to this time, in milliseconds.")
  var to: Int?

  func run() throws {
    let bytes = try readUserFile(trace, what: "trace file")
    let configuration: SchedulerTraceFile.Configuration
    let parsed: SchedulerTrace
    do throws(SchedulerTraceFile.Error) {
      (configuration, parsed) = try SchedulerTraceFile.parse(String(decoding: bytes, as: UTF8.self))
    } catch {
      throw usageFailure("\(trace): \(error)")
    }
    let report = SchedulerReport(
      trace: parsed, shares: configuration.shares, vcpus: configuration.vcpus, pcpus: configuration.pcpus)
    print(report.text, terminator: "")
    guard let svg else { return }
    var picture = SchedulerTimelineSVG(trace: parsed, pcpus: configuration.pcpus, title: "\(trace)")
    let start = UInt64(max(from ?? 0, 0)) * 1_000_000
    let end = to.map { UInt64(max($0, 0)) * 1_000_000 } ?? parsed.duration
    guard start < end else { throw usageFailure("--from must be before --to (and the end of the trace)") }
    picture.window = start..<end
    try hostFile { () throws(HostFileError) in try HostFile.write(Array(picture.svg.utf8), to: svg, what: "SVG file") }
  }
}

import ArgumentParser
import Foundation
import Launcher
import Scheduling
import Testing
import VMM

@testable import TrivisorCLI

/// `trivisor run` under a pCPU pool: option syntax, one usage line for bad values, a real run's
/// `--sched-trace` read back by `sched-report`, and several VMs (`--vm`) in one process with
/// their consoles prefixed and the failing VM named. Asserts what holds however busy the host
/// is (the runs end, every VM ran, pins hold), never shares or times.
@Suite struct RunSchedulingTests {
  @Test func pCPUListsParse() {
    #expect(RunSchedulingOptions.pcpuList("0-2,4") == [0, 1, 2, 4])
    #expect(RunSchedulingOptions.pcpuList("3") == [3])
    for bad in ["", "a", "2-1", "1-", "-1", "1,,2"] { #expect(RunSchedulingOptions.pcpuList(bad) == nil, "\(bad)") }
  }

  @Test func numaNodesMapOntoPCPUGroups() {
    #expect(RunSchedulingOptions.hostNodes(pcpus: 4, nodes: 2) == [[0, 1], [2, 3]])
    #expect(RunSchedulingOptions.hostNodes(pcpus: 1, nodes: 2) == nil)
    #expect(RunSchedulingOptions.vcpuNodes(cpus: 4, nodes: 2) == [0, 0, 1, 1])
    #expect(RunSchedulingOptions.vcpuNodes(cpus: 4, nodes: nil) == [])
  }

  @Test func pinsAreCheckedAgainstTheVMAndThePool() throws {
    let options = try RunSchedulingOptions.parse(["--pin", "0=1", "--pin", "1=0-1"])
    #expect(try options.pins(cpus: 2, pcpus: 2) == [0: [1], 1: [0, 1]])
    #expect(throws: UsageError.self) { try options.pins(cpus: 1, pcpus: 2) }
    #expect(throws: UsageError.self) { try options.pins(cpus: 2, pcpus: 1) }
    let twice = try RunSchedulingOptions.parse(["--pin", "0=1", "--pin", "0=0"])
    #expect(throws: UsageError.self) { try twice.pins(cpus: 2, pcpus: 2) }
    #expect(!(try RunSchedulingOptions.parse([])).enablesPool)
    #expect(try RunSchedulingOptions.parse(["--weight", "512"]).enablesPool)
  }

  @Test func coScheduleOptionParses() throws {
    #expect(try RunSchedulingOptions.coScheduleSkew(nil) == nil)
    #expect(try RunSchedulingOptions.coScheduleSkew("off") == nil)
    #expect(try RunSchedulingOptions.coScheduleSkew("relaxed") == SchedulerParameters.relaxedCoScheduleSkew)
    #expect(try RunSchedulingOptions.coScheduleSkew("500") == 500_000)
    for bad in ["strict", "0", "1000001", ""] {
      #expect(throws: UsageError.self) { try RunSchedulingOptions.coScheduleSkew(bad) }
    }
    let options = try RunSchedulingOptions.parse(["--co-schedule", "relaxed"])
    #expect(options.enablesPool)
    #expect(options.hasPoolOptions)
    #expect(try options.parameters().coScheduleSkew == SchedulerParameters.relaxedCoScheduleSkew)
    #expect(try RunSchedulingOptions.parse([]).parameters().coScheduleSkew == nil)
  }

  /// The spinlock row's run on interp (4 vCPUs on 2 pCPUs, spin detection and co-scheduling, 80
  /// acquisitions): the benchmark reports, and the spinners yielded or did not have to. Bounded
  /// by spin detection, whatever the host's load.
  @Test func theSpinlockRowsRunReports() throws {
    let interp = try #require(EngineRegistry.entries.first { $0.name == "interp" })
    let mode = try #require(SchedBenchSpinlock.modes.first { $0.name == "detect+co" })
    let sample = try SchedBenchSpinlock.runOnce(interp, mode: mode, scale: 1, timeout: 300)
    #expect(sample.nanosecondsPerAcquisition != nil)
    #expect(sample.wallSeconds > 0)
  }

  @Test func theSpinlockRowsFiguresAndFactor() {
    func sample(_ ns: Double?) -> SchedBenchSpinlock.Sample {
      SchedBenchSpinlock.Sample(nanosecondsPerAcquisition: ns, spinYields: 0, wallSeconds: 2)
    }
    #expect(SchedBenchSpinlock.median([3, nil, 1]) == 3)
    #expect(SchedBenchSpinlock.median([nil, nil, 1]) == nil)
    let rows = SchedBenchSpinlock.rows(
      engine: "interp",
      samples: [[sample(nil), sample(nil), sample(nil)], [sample(1000), sample(2000), sample(3000)], [], []],
      timeout: 12, acquisitions: 1000)
    #expect(rows.count == 2)
    #expect(rows[0][3] == "> 10.00 ms (timed out)")
    #expect(rows[1][3] == "2.0 us")
    #expect(rows[1][4] == "1.0 us - 3.0 us")
    #expect(rows[1][5] == "> 5000x")
    #expect(rows[1][6] == String(format: "> %.0fx", 1e7 / 3000))
    #expect(rows[0][6] == "-")
  }

  /// One `bench sched` scenario on interp: both CPU-bound guests stop at their timeout, the pool
  /// gave out CPU time and the guests counted loops (how much each got is the host's business).
  @Test func aBenchSchedScenarioRunsToItsEnd() throws {
    let interp = try #require(EngineRegistry.entries.first { $0.name == "interp" })
    let result = try SchedBench.run(interp, vms: [.spin(weight: 256), .spin(weight: 512)], seconds: 0.3)
    #expect(result.outcomes.count == 2)
    #expect(result.counts.reduce(0, +) > 0)
    #expect(!result.trace.intervals.isEmpty)
    let lane = result.trace.intervals.sorted { $0.start < $1.start }
    for (a, b) in zip(lane, lane.dropFirst()) { #expect(a.end <= b.start) }
  }

  @Test func badBenchSchedOptionsAreUsageErrors() throws {
    for arguments in [
      ["--seconds", "0"], ["--engine", "nope"], ["--spinlock-runs", "101"], ["--spinlock-scale", "0"],
      ["--spinlock-timeout", "0"],
    ] {
      let command = try SchedBenchCommand.parse(arguments)
      #expect(throws: ExitCode.self) { try command.run() }
    }
  }
}

/// The same through the executable.
@Suite(.enabled(if: TrivisorBinary.path != nil, "the trivisor executable was not built next to the tests"))
struct RunSchedulingBinaryTests {
  /// Runs trivisor, collecting stdout and stderr (small outputs only).
  static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: TrivisorBinary.path!)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let errText = Thread.detachedCollector(err.fileHandleForReading)
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), errText())
  }

  static func temporary(_ name: String) -> String {
    NSTemporaryDirectory() + "trivisor-sched-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(name)"
  }

  @Test(arguments: [
    ["--pcpus", "0"], ["--pcpus", "x"], ["--pin", "0"], ["--pin", "1=0"], ["--pin", "0=4", "--pcpus", "2"],
    ["--weight", "0"], ["--cap", "0"], ["--pcpus", "1", "--irqchip", "kernel"],
    ["--vm", "--bogus"], ["--vm", "--demo --pcpus 1"], ["--weight", "2", "--vm", "--demo"],
    ["--timeslice", "0"], ["--timeslice", "10001"], ["--rate-limit", "-1"], ["--rate-limit", "1000001"],
    ["--vm", "--demo --timeslice 5"],
  ])
  func badSchedulingOptionsAreOneUsageLine(arguments: [String]) throws {
    let extra = arguments.contains("--vm") ? [] : ["--demo"]
    let result = try Self.run(["run"] + extra + arguments)
    #expect(result.status == ExitStatus.usage, "\(arguments): \(result.stderr)")
    #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
  }

  /// The demo guest on one pCPU: the trace of the real run reads back in `sched-report`, which
  /// draws its timeline.
  @Test(arguments: ["interp", "dbt"]) func aRealRunsTraceReadsBack(engine: String) throws {
    let trace = Self.temporary("run.trace")
    let svg = Self.temporary("run.svg")
    defer {
      unlink(trace)
      unlink(svg)
    }
    let run = try Self.run([
      "run", "--demo", "--engine", engine, "--pcpus", "1", "--timeslice", "5", "--rate-limit", "500", "--sched-trace",
      trace,
    ])
    #expect(run.status == 0, "\(run.stderr)")
    let (configuration, recorded) = try SchedulerTraceFile.parse(try String(contentsOfFile: trace, encoding: .utf8))
    #expect(configuration.pcpus == 1 && configuration.vcpus == [VCPUID(vm: 0, vcpu: 0)])
    #expect(!recorded.intervals.isEmpty, "the vCPU ran")
    let report = try Self.run(["sched-report", trace, "--svg", svg])
    #expect(report.status == 0, "\(report.stderr)")
    #expect(try String(contentsOfFile: svg, encoding: .utf8).contains("pCPU 0"))
  }

  /// Three demo guests on interp, dbt and (when usable, else interp) kvm share one pCPU; each
  /// console line is prefixed with its VM, every VM ran, the pinned one only on its pCPU.
  @Test func severalVMsShareOnePoolAndTheirConsolesArePrefixed() throws {
    let trace = Self.temporary("vms.trace")
    defer { unlink(trace) }
    let third = FileManager.default.isWritableFile(atPath: "/dev/kvm") ? "kvm" : "interp"
    let run = try Self.run([
      "run", "--pcpus", "2", "--sched-trace", trace, "--vm", "--demo --engine interp --pin 0=1",
      "--vm", "--demo --engine dbt --weight 512", "--vm", "--demo --engine \(third) --cap 50",
    ])
    #expect(run.status == 0, "\(run.stderr)")
    for vm in 0..<3 {
      #expect(run.stdout.contains("[vm\(vm)] done; powering off"), "\(run.stdout)")
    }
    #expect(
      run.stdout.split(separator: "\n").allSatisfy {
        $0.hasPrefix("[vm0] ") || $0.hasPrefix("[vm1] ") || $0.hasPrefix("[vm2] ")
      })
    let (configuration, recorded) = try SchedulerTraceFile.parse(try String(contentsOfFile: trace, encoding: .utf8))
    #expect(configuration.shares == [VMShare(), VMShare(weight: 512), VMShare(cap: 50)])
    #expect(Set(recorded.intervals.map(\.vcpu.vm)) == [0, 1, 2])
    #expect(!recorded.intervals.contains { $0.vcpu.vm == 0 && $0.pcpu != 1 }, "vm0 is pinned to pCPU 1")
  }

  /// A VM that fails (a flat binary that faults with no IDT: a triple fault, status 6) is named;
  /// the other runs to its end and the exit status is the failing VM's.
  @Test func theFailingVMIsNamedAndGivesTheStatus() throws {
    let image = Self.temporary("ud2.bin")
    defer { unlink(image) }
    try Data([0x0F, 0x0B]).write(to: URL(fileURLWithPath: image))
    let run = try Self.run([
      "run", "--pcpus", "1", "--vm", "--demo --engine interp",
      "--vm", "--engine interp --no-reboot --flat-address 0x100000 \(image)",
    ])
    #expect(run.status == ExitStatus.shutdown, "\(run.stderr)")
    #expect(run.stderr.contains("[vm1]"), "\(run.stderr)")
    #expect(run.stdout.contains("[vm0] done; powering off"), "\(run.stdout)")
  }
}

extension Thread {
  /// Reads `handle` to its end on another thread; the returned function waits for the text.
  static func detachedCollector(_ handle: FileHandle) -> () -> String {
    let done = DispatchSemaphore(value: 0)
    let box = TextBox()
    Thread.detachNewThread {
      box.text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
      done.signal()
    }
    return {
      done.wait()
      return box.text
    }
  }
}

/// Text handed between threads (written once before a semaphore signal).
final class TextBox: @unchecked Sendable {
  var text = ""
}

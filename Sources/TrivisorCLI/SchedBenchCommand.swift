import ArgumentParser
import Foundation
import Launcher
import Scheduling
import VMM

/// `trivisor bench sched`: the pCPU pool with real guests on each engine — how well weights hold
/// (fairness), how soon an idle vCPU runs after its interrupt (wake-up latency), and what
/// overcommit costs (throughput of 1, 2 and 4 CPU-bound VMs on one pCPU).
struct SchedBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sched",
    abstract: "The vCPU scheduler with real guests: fairness, wake-up latency, overcommit throughput.",
    discussion: """
      Per engine, every VM a one-vCPU guest under one pool of one pCPU (docs/scheduling.md):
        fairness    two CPU-bound VMs weighted 256 and 512: the error of the heavier VM's share
                    against 2/3, from the scheduler's trace and from the guests' own loop counts;
        wake-up     a VM idling in HLT between 1 ms APIC timer ticks beside a CPU-bound VM: how
                    long the woken vCPU waits for the pCPU (p50, p99), from the trace;
        overcommit  1, 2 and 4 CPU-bound VMs: loop iterations per second of all VMs together,
                    against the 1-VM run;
        spinlock    (interp, dbt) the reference kernel's contended ticket lock, 4 vCPUs on a pool
                    of 2 pCPUs, without spin detection, with pause-loop exiting and directed
                    yield, with relaxed co-scheduling, and with both: ns per acquisition (median
                    and spread of --spinlock-runs runs, taken in turn) and the factor over none.
      The CPU-bound guest loops in ring 3 (kvm runs it natively; this project's hosts emulate
      guest ring 0), the idle guest runs a few ring-0 instructions per tick. Release builds only
      give meaningful figures; each scenario runs --seconds.
      """
  )

  @Option(name: .customLong("engine"), help: "Engines to measure (repeatable; default interp, dbt, kvm).")
  var engines: [String] = []

  @Option(help: "Seconds each scenario runs (0.1-60).")
  var seconds = 2.0

  @Option(name: .customLong("spinlock-runs"), help: "Runs of each spinlock mode (0: no spinlock row).")
  var spinlockRuns = 3

  @Option(
    name: .customLong("spinlock-scale"),
    help: "The spinlock benchmark's scale: 20 x scale acquisitions per vCPU (1-1000).")
  var spinlockScale = 500

  @Option(name: .customLong("spinlock-timeout"), help: "Seconds a spinlock run may take (1-600).")
  var spinlockTimeout = 30.0

  @Flag(name: .customLong("spinlock-only"), help: "Only the spinlock row.")
  var spinlockOnly = false

  @Option(help: "Write the wake-up scenario's timeline of the first engine as SVG to this file.")
  var svg: String?

  @Option(
    name: .customLong("sched-trace"),
    help: "Write the wake-up scenario's trace of the first engine to this file (trivisor sched-report reads it).")
  var tracePath: String?

  func run() throws {
    guard (0.1...60).contains(seconds) else { throw usageFailure("--seconds must be 0.1 to 60, not \(seconds)") }
    let names = engines.isEmpty ? ["interp", "dbt", "kvm"] : engines
    for name in names where !EngineRegistry.entries.contains(where: { $0.name == name }) {
      throw usageFailure("unknown engine '\(name)' (use \(EngineRegistry.names.joined(separator: ", ")))")
    }
    for path in [svg, tracePath].compactMap({ $0 }) {
      try hostFile { () throws(HostFileError) in try HostFile.checkOutputPath(path, what: "output file") }
    }
    guard (0...100).contains(spinlockRuns) else { throw usageFailure("--spinlock-runs must be 0 to 100") }
    guard (1...1000).contains(spinlockScale) else { throw usageFailure("--spinlock-scale must be 1 to 1000") }
    guard (1...600).contains(spinlockTimeout) else { throw usageFailure("--spinlock-timeout must be 1 to 600") }
    var rows: [[String]] = []
    var drewTimeline = false
    for entry in EngineRegistry.entries where names.contains(entry.name) && !spinlockOnly {
      if let why = entry.unavailableReason() {
        printError("bench sched: \(entry.name): unavailable, skipped: \(why)")
        continue
      }
      do {
        printError("bench sched: \(entry.name): fairness")
        let fair = try SchedBench.run(entry, vms: [.spin(weight: 256), .spin(weight: 512)], seconds: seconds)
        let traceShare = fair.cpuShare(of: 1)
        let loopShare = Double(fair.counts[1]) / Double(max(1, fair.counts[0] + fair.counts[1]))
        printError("bench sched: \(entry.name): wake-up latency")
        let wake = try SchedBench.run(
          entry, vms: [.idle, .spin(weight: 256)], seconds: seconds, keepingEvents: !drewTimeline)
        let latencies = wake.trace.wakeLatencies[VCPUID(vm: 0, vcpu: 0)] ?? []
        if !drewTimeline {
          drewTimeline = true
          try writeTimeline(wake, engine: entry.name)
        }
        var throughput: [Double] = []
        for n in [1, 2, 4] {
          printError("bench sched: \(entry.name): \(n) CPU-bound VMs")
          let over = try SchedBench.run(
            entry, vms: Array(repeating: .spin(weight: 256), count: n), seconds: seconds)
          throughput.append(Double(over.counts.reduce(0, +)) / over.wallSeconds)
        }
        rows.append([
          entry.name,
          String(format: "%.1f%%", abs(traceShare - 2.0 / 3) / (2.0 / 3) * 100),
          String(format: "%.1f%%", abs(loopShare - 2.0 / 3) / (2.0 / 3) * 100),
          "\(latencies.count)",
          Self.microseconds(SchedulerTrace.percentile(0.5, of: latencies)),
          Self.microseconds(SchedulerTrace.percentile(0.99, of: latencies)),
          String(format: "%.1f", throughput[0] / 1e6),
          String(format: "%.2f", throughput[1] / max(throughput[0], 1)),
          String(format: "%.2f", throughput[2] / max(throughput[0], 1)),
        ])
      } catch {
        printError("bench sched: \(entry.name): \(error)")
        rows.append([entry.name, "failed: \(oneLine("\(error)"))"])
      }
    }
    let spinRows = spinlockRuns > 0 ? runSpinlock(names) : []
    guard !rows.isEmpty || !spinRows.isEmpty else { throw usageFailure("no engine could run") }
    print("trivisor bench sched: \(isDebugBuild ? "debug" : "release") build")
    print("host: \(HostDescription.current)")
    if !rows.isEmpty {
      let header = [
        "engine", "fair-err", "fair-err(loops)", "wakes", "wake-p50", "wake-p99", "1x Mit/s", "2x/1x", "4x/1x",
      ]
      print("1 pCPU, \(seconds) s per scenario:")
      print(Self.table([header] + rows))
    }
    if !spinRows.isEmpty {
      let acquisitions = SchedBenchSpinlock.vcpus * 20 * spinlockScale
      print(
        "spinlock: \(SchedBenchSpinlock.vcpus) vCPUs on \(SchedBenchSpinlock.pcpus) pCPUs, \(acquisitions) acquisitions, "
          + "\(spinlockRuns) runs per mode taken in turn, timeout \(Int(spinlockTimeout)) s:")
      let header = ["engine", "mode", "runs", "median/acq", "spread", "median vs none", "worst vs none", "yields"]
      print(Self.table([header] + spinRows))
    }
    print(HostDescription.load)
  }

  /// The spinlock row per software engine (`SchedBenchSpinlock`); kvm leaves spinning to KVM's own
  /// pause-loop exiting, which the pool does not see.
  private func runSpinlock(_ names: [String]) -> [[String]] {
    var rows: [[String]] = []
    for entry in EngineRegistry.entries where names.contains(entry.name) && entry.name != "kvm" {
      if let why = entry.unavailableReason() {
        printError("bench sched: \(entry.name): unavailable, skipped: \(why)")
        continue
      }
      var samples = Array(repeating: [SchedBenchSpinlock.Sample](), count: SchedBenchSpinlock.modes.count)
      do {
        for run in 0..<spinlockRuns {
          for (m, mode) in SchedBenchSpinlock.modes.enumerated() {
            printError("bench sched: \(entry.name): spinlock, \(mode.name), run \(run + 1)")
            let sample = try SchedBenchSpinlock.runOnce(
              entry, mode: mode, scale: spinlockScale, timeout: spinlockTimeout)
            printError(
              "bench sched: \(entry.name): spinlock, \(mode.name): "
                + (sample.nanosecondsPerAcquisition.map { SchedBenchSpinlock.duration($0) } ?? "timed out")
                + ", \(sample.spinYields) yields")
            samples[m].append(sample)
          }
        }
      } catch {
        printError("bench sched: \(entry.name): spinlock: \(error)")
        rows.append([entry.name, "spinlock failed: \(oneLine("\(error)"))"])
        continue
      }
      rows += SchedBenchSpinlock.rows(
        engine: entry.name, samples: samples, timeout: spinlockTimeout,
        acquisitions: SchedBenchSpinlock.vcpus * 20 * spinlockScale)
    }
    return rows
  }

  /// Writes `--svg` and `--sched-trace` of `result`.
  private func writeTimeline(_ result: SchedBench.Result, engine: String) throws {
    if let svg {
      let picture = SchedulerTimelineSVG(
        trace: result.trace, pcpus: 1,
        title: "bench sched, \(engine): an idle VM (vm0, HLT between 1 ms ticks) and a CPU-bound VM (vm1) on 1 pCPU")
      try hostFile { () throws(HostFileError) in try HostFile.write(Array(picture.svg.utf8), to: svg, what: "SVG file")
      }
    }
    if let tracePath {
      try hostFile { () throws(HostFileError) in
        try HostFile.write(Array(result.traceText.utf8), to: tracePath, what: "--sched-trace file")
      }
    }
  }

  /// Nanoseconds as microseconds, one decimal.
  static func microseconds(_ ns: UInt64) -> String { String(format: "%.1fus", Double(ns) / 1000) }

  /// Left-aligned columns.
  static func table(_ rows: [[String]]) -> String {
    let columns = rows.map(\.count).max() ?? 0
    var widths = Array(repeating: 0, count: columns)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    return rows.map { row in
      row.enumerated().map { i, cell in cell.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0) }
        .joined().trimmingCharacters(in: .whitespaces)
    }.joined(separator: "\n")
  }
}

/// One scenario of `bench sched`: one-vCPU guests on a pool of one pCPU for a while.
enum SchedBench {
  /// A VM of a scenario.
  enum VM {
    /// The CPU-bound ring-3 loop (`SchedBenchGuestImages.spin`), with its weight.
    case spin(weight: Int)
    /// The HLT-between-ticks guest (`SchedBenchGuestImages.idle`).
    case idle
  }

  /// What a scenario measured.
  struct Result {
    /// The scheduler's trace.
    var trace: SchedulerTrace
    /// The trace as a file (with events only when kept).
    var traceText: String
    /// Per VM: the guest's own count (loop iterations, or ticks handled).
    var counts: [UInt64]
    /// How each VM's run ended.
    var outcomes: [RunOutcome]
    /// Wall time from the start of the pool to the last VM's end.
    var wallSeconds: Double

    /// VM `vm`'s part of the CPU time the trace gave out.
    func cpuShare(of vm: Int) -> Double {
      let all = trace.intervals.reduce(UInt64(0)) { $0 + $1.end - $1.start }
      return all == 0 ? 0 : Double(trace.cpuTime(ofVM: vm)) / Double(all)
    }
  }

  /// Runs `vms` on `entry`'s engine under one pool of `pcpus` pCPUs until `seconds` pass (each
  /// VM's timeout); throws when a VM stopped for another reason.
  static func run(
    _ entry: EngineRegistry.Entry, vms: [VM], seconds: Double, pcpus: Int = 1, keepingEvents: Bool = false
  ) throws -> Result {
    let session = SchedulingSession(pcpus: pcpus, keepingEvents: keepingEvents)
    var machines: [Machine] = []
    var memories: [GuestMemory] = []
    for vm in vms {
      let memory = try GuestMemory(ramSize: 2 << 20)
      var share = VMShare()
      switch vm {
      case .spin(let weight):
        share = VMShare(weight: weight)
        try memory.write(0x10000, bytes: SchedBenchGuestImages.spin)
      case .idle:
        try memory.write(0x10000, bytes: SchedBenchGuestImages.idle)
      }
      let userMode: Bool
      if case .spin = vm { userMode = true } else { userMode = false }
      let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000, userMode: userMode)
      var configuration = MachineConfiguration(timeoutSeconds: seconds)
      configuration.firmwareConfigurationDevice = false
      configuration.scheduling = session.addMachine(share: share, vcpuCount: 1)
      machines.append(
        try Machine(memory: memory, boot: boot, engine: try entry.make(false), configuration: configuration))
      memories.append(memory)
    }
    let outcomes = OutcomeBox(count: machines.count)
    let group = DispatchGroup()
    let start = DispatchTime.now().uptimeNanoseconds
    session.start()
    for (i, machine) in machines.enumerated() {
      group.enter()
      let box = MachineHandle(machine)
      Thread.detachNewThread {
        outcomes.set(i, box.machine.run())
        group.leave()
      }
    }
    group.wait()
    let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    session.finish()
    var counts: [UInt64] = []
    for (vm, memory) in zip(vms, memories) {
      if case .idle = vm {
        counts.append(try memory.read(UInt64.self, at: 0x9100))
      } else {
        counts.append(try memory.read(UInt64.self, at: 0x9000))
      }
    }
    let results = (0..<machines.count).map { outcomes.get($0) }
    for (i, outcome) in results.enumerated() {
      guard let outcome, case .timeout = outcome.reason else {
        throw EngineError("VM \(i) stopped: \(results[i]?.reason.description ?? "did not run")")
      }
    }
    return Result(
      trace: session.recordedTrace, traceText: keepingEvents ? session.traceFileText() : "", counts: counts,
      outcomes: results.compactMap { $0 }, wallSeconds: wall)
  }
}

/// A machine handed to its thread.
struct MachineHandle: @unchecked Sendable {
  let machine: Machine
  /// Hands `machine` over.
  init(_ machine: Machine) { self.machine = machine }
}

/// Outcomes set from several threads.
final class OutcomeBox: @unchecked Sendable {
  private let lock = NSLock()
  private var outcomes: [RunOutcome?]
  /// `count` outcomes, none set yet.
  init(count: Int) { outcomes = Array(repeating: nil, count: count) }
  /// Sets outcome `i`.
  func set(_ i: Int, _ outcome: RunOutcome) { lock.withLock { outcomes[i] = outcome } }
  /// Outcome `i`, if set.
  func get(_ i: Int) -> RunOutcome? { lock.withLock { outcomes[i] } }
}

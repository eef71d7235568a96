import ArgumentParser
import Scheduling
import VMM

/// `trivisor sched-sim`: the credit scheduler in virtual time with scripted vCPUs, to see and
/// measure the policy (shares, caps, BOOST, stealing, spin detection) without running guests.
struct SchedSimCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sched-sim",
    abstract: "Simulate the vCPU scheduler (Xen's credit policy) in virtual time and report it.",
    discussion: """
      Each --vm adds a VM: comma-separated key=value pairs, all optional:
        weight=N    relative share (default 256)       cap=P     percent of one pCPU
        vcpus=N     how many vCPUs (default 1)          demand=D  what every vCPU does:
          cpu             never blocks (default)
          io:RUN:SLEEP    runs RUN µs, sleeps SLEEP µs, again
          spin:CS:WORK    contends for the VM's spinlock: CS µs held, WORK µs between
          ticket:CS:WORK  the same with a ticket lock (waiters served in order)
          idle            never wakes
        pin=A-B|A+B+... hard affinity (pCPUs)
      Example: trivisor sched-sim --pcpus 1 --vm weight=256 --vm weight=512 --svg timeline.svg
      The run is deterministic: the same options always give the same report.
      """
  )

  @Option(help: "Physical CPUs to share (1-256).")
  var pcpus = 2

  @Option(name: .customLong("vm"), help: "A VM: weight=,cap=,vcpus=,demand=,pin= (repeat for more).")
  var vms: [String] = []

  @Option(help: "Virtual time to simulate, in milliseconds (1-600000).")
  var duration = 10_000

  @Option(name: .customLong("timeslice"), help: "Time slice in milliseconds (default 30).")
  var timeslice = 30

  @Option(name: .customLong("rate-limit"), help: "Least run time before a woken vCPU may preempt, µs (default 1000).")
  var rateLimit = 1000

  @Option(name: .customLong("spin-detection"), help: "Spinning vCPUs yield after this many µs of spinning.")
  var spinDetection: Int?

  @Option(
    name: .customLong("co-schedule"),
    help: "Relaxed co-scheduling: 'relaxed' (a 3 ms skew), a skew in µs, or 'off' (default).")
  var coSchedule: String?

  @Option(name: .customLong("sched-trace"), help: "Write every scheduling decision to this file.")
  var tracePath: String?

  @Option(help: "Write the timeline (one lane per pCPU) as SVG to this file.")
  var svg: String?

  func run() throws {
    guard (1...256).contains(pcpus) else { throw usageFailure("--pcpus must be 1 to 256, not \(pcpus)") }
    guard (1...600_000).contains(duration) else { throw usageFailure("--duration must be 1 to 600000 ms") }
    guard (1...10_000).contains(timeslice) else { throw usageFailure("--timeslice must be 1 to 10000 ms") }
    guard (0...1_000_000).contains(rateLimit) else { throw usageFailure("--rate-limit must be 0 to 1000000 µs") }
    if let spinDetection, !(1...1_000_000).contains(spinDetection) {
      throw usageFailure("--spin-detection must be 1 to 1000000 µs")
    }
    let specs: [VMSpec]
    do {
      specs = try (vms.isEmpty ? ["weight=256", "weight=512"] : vms).map { try VMSpec.parse($0, pcpus: pcpus) }
    } catch let error as VMSpec.ParseError {
      throw usageFailure("--vm: \(error.message)")
    }
    guard specs.reduce(0, { $0 + $1.vcpus }) <= 1024 else { throw usageFailure("at most 1024 vCPUs in all") }
    var parameters = SchedulerParameters(
      timeslice: UInt64(timeslice) * 1_000_000, rateLimit: UInt64(rateLimit) * 1_000,
      accountingPeriod: 30_000_000)
    do { parameters.coScheduleSkew = try RunSchedulingOptions.coScheduleSkew(coSchedule) } catch {
      throw usageFailure(error.description)
    }
    let scheduler = CreditScheduler(pcpus: pcpus, parameters: parameters)
    var simulation = SchedulerSimulation(scheduler: scheduler)
    simulation.spinDetectionWindow = spinDetection.map { UInt64($0) * 1_000 }
    for spec in specs {
      let vm = scheduler.addVM(spec.share)
      for _ in 0..<spec.vcpus {
        guard let v = scheduler.addVCPU(vm: vm, hardAffinity: spec.pin) else { continue }
        simulation.set(spec.demand, for: v)
      }
    }
    let nanoseconds = UInt64(duration) * 1_000_000
    let trace = simulation.run(for: nanoseconds, keepingEvents: tracePath != nil)
    let configuration = SchedulerTraceFile.Configuration(
      pcpus: pcpus, shares: specs.map(\.share), vcpus: scheduler.vcpus)
    if let tracePath {
      var text = SchedulerTraceFile.header(configuration)
      for event in trace.events { text += SchedulerTraceFile.line(event) }
      text += SchedulerTraceFile.end(at: nanoseconds)
      try hostFile { () throws(HostFileError) in
        try HostFile.write(Array(text.utf8), to: tracePath, what: "--sched-trace file")
      }
    }
    let report = SchedulerReport(trace: trace, shares: configuration.shares, vcpus: configuration.vcpus, pcpus: pcpus)
    print(report.text, terminator: "")
    for (vm, count) in trace.lockAcquisitions.sorted(by: { $0.key < $1.key }) {
      print("vm \(vm): \(count) spinlock critical sections completed")
    }
    if let svg {
      let picture = SchedulerTimelineSVG(
        trace: trace, pcpus: pcpus, title: "sched-sim: \(specs.count) VMs on \(pcpus) pCPUs, \(duration) ms")
      try hostFile { () throws(HostFileError) in try HostFile.write(Array(picture.svg.utf8), to: svg, what: "SVG file")
      }
    }
  }
}

/// One `--vm` of `sched-sim`.
struct VMSpec: Equatable {
  var share = VMShare()
  var vcpus = 1
  var demand = SchedulerSimulation.Demand.cpuBound
  var pin: Set<Int>?

  /// Why a `--vm` value was refused.
  struct ParseError: Error, Equatable {
    /// The one-line reason.
    let message: String
  }

  /// Parses `weight=512,cap=50,vcpus=2,demand=io:100:2000,pin=0-1`.
  static func parse(_ text: String, pcpus: Int) throws -> VMSpec {
    var spec = VMSpec()
    var weight = 256
    var cap: Int?
    for pair in text.split(separator: ",") {
      let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
      guard kv.count == 2 else { throw ParseError(message: "'\(pair)' is not key=value") }
      func number(_ s: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let n = Int(s), range.contains(n) else {
          throw ParseError(message: "\(kv[0])=\(s): expected \(range.lowerBound) to \(range.upperBound)")
        }
        return n
      }
      switch kv[0] {
      case "weight": weight = try number(kv[1], 1...65535)
      case "cap": cap = try number(kv[1], 1...25600)
      case "vcpus": spec.vcpus = try number(kv[1], 1...256)
      case "demand":
        let parts = kv[1].split(separator: ":").map(String.init)
        switch (parts.first, parts.count) {
        case ("cpu", 1): spec.demand = .cpuBound
        case ("idle", 1): spec.demand = .idle
        case ("io", 3):
          spec.demand = .periodic(
            run: UInt64(try number(parts[1], 1...10_000_000)) * 1_000,
            sleep: UInt64(try number(parts[2], 1...10_000_000)) * 1_000)
        case ("spin", 3):
          spec.demand = .spinlock(
            critical: UInt64(try number(parts[1], 1...10_000_000)) * 1_000,
            between: UInt64(try number(parts[2], 1...10_000_000)) * 1_000)
        case ("ticket", 3):
          spec.demand = .ticketLock(
            critical: UInt64(try number(parts[1], 1...10_000_000)) * 1_000,
            between: UInt64(try number(parts[2], 1...10_000_000)) * 1_000)
        default:
          throw ParseError(
            message: "demand=\(kv[1]): expected cpu, idle, io:RUN:SLEEP, spin:CS:WORK or ticket:CS:WORK")
        }
      case "pin":
        var set: Set<Int> = []
        for item in kv[1].split(separator: "+") {
          let bounds = item.split(separator: "-").map(String.init)
          guard (1...2).contains(bounds.count) else { throw ParseError(message: "pin=\(kv[1]): expected A-B or A+B") }
          let low = try number(bounds[0], 0...(pcpus - 1))
          let high = try number(bounds.count == 2 ? bounds[1] : bounds[0], low...(pcpus - 1))
          set.formUnion(low...high)
        }
        spec.pin = set
      default:
        throw ParseError(message: "unknown key '\(kv[0])' (weight, cap, vcpus, demand, pin)")
      }
    }
    spec.share = VMShare(weight: weight, cap: cap)
    return spec
  }
}

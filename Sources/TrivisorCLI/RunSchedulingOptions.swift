import ArgumentParser
import Launcher
import Scheduling
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// `trivisor run`'s scheduling options: the shared pCPU pool (`--pcpus`, `--sched-trace`) and
/// this VM's share and placement in it (`--weight`, `--cap`, `--pin`, `--host-affinity`). The
/// pool is on only when one of them is given: without it every vCPU thread runs whenever the
/// host lets it, with no cost on the run loop but a nil check.
struct RunSchedulingOptions: ParsableArguments {
  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Run the vCPUs under a pool of N physical CPUs shared by Xen's credit scheduler (docs/scheduling.md); default with any other scheduling option: the host's cores.",
      valueName: "N"))
  var pcpus: Int?

  @Option(
    parsing: .unconditionalSingleValue,
    help: ArgumentHelp(
      "Hard affinity: vCPU V may only run on these pCPUs of the pool (e.g. 0=1 or 2=0-1,3); repeatable.",
      valueName: "V=PCPUS"))
  var pin: [String] = []

  @Option(parsing: .unconditional, help: "This VM's weight in the pool (1-65535, default 256).")
  var weight: Int?

  @Option(
    parsing: .unconditional,
    help: ArgumentHelp("Most CPU this VM may use, in percent of one pCPU (1-25600).", valueName: "PERCENT"))
  var cap: Int?

  @Flag(
    name: .customLong("host-affinity"),
    help:
      "Also bind each --pin'ned vCPU's thread to the host CPUs of the same numbers (sched_setaffinity; those the host has)."
  )
  var hostAffinity = false

  @Option(
    name: .customLong("pause-loop"), parsing: .unconditional,
    help: ArgumentHelp(
      "Pause-loop exiting on interp and dbt: a vCPU spinning this many PAUSEs in a row (each within 64 instructions of the last) yields its pCPU to a sibling (0: off; default 256; kvm: KVM's own PLE).",
      valueName: "PAUSES"))
  var pauseLoop: Int?

  @Option(
    name: .customLong("sched-trace"), parsing: .unconditional,
    help: ArgumentHelp(
      "Write every scheduling decision of the run to this file (trivisor sched-report FILE [--svg OUT] reads it).",
      valueName: "FILE"))
  var schedTrace: String?

  @Option(
    name: .customLong("timeslice"), parsing: .unconditional,
    help: ArgumentHelp(
      "The pool's time slice in milliseconds (1-10000, default 30, as Xen's credit scheduler).", valueName: "MS"))
  var timeslice: Int?

  @Option(
    name: .customLong("rate-limit"), parsing: .unconditional,
    help: ArgumentHelp(
      "The least time a vCPU runs before a woken one may preempt it, in microseconds (0-1000000, default 1000).",
      valueName: "US"))
  var rateLimit: Int?

  @Option(
    name: .customLong("co-schedule"), parsing: .unconditional,
    help: ArgumentHelp(
      "Relaxed co-scheduling of each VM's vCPUs: 'relaxed' (a vCPU more than 3 ms of run time ahead of its slowest runnable sibling waits for it), a skew in microseconds, or 'off' (the default).",
      valueName: "MODE"))
  var coSchedule: String?

  /// Whether any option asks for the pool.
  var enablesPool: Bool {
    pcpus != nil || !pin.isEmpty || weight != nil || cap != nil || hostAffinity || schedTrace != nil
      || pauseLoop != nil || timeslice != nil || rateLimit != nil || coSchedule != nil
  }

  /// Whether an option of the pool itself (not of one VM) is given.
  var hasPoolOptions: Bool {
    pcpus != nil || schedTrace != nil || timeslice != nil || rateLimit != nil || coSchedule != nil
  }

  /// The skew `--co-schedule` allows: nil for `off` (or none given), 3 ms for `relaxed`, else the
  /// value in microseconds (1-1000000).
  static func coScheduleSkew(_ text: String?) throws(UsageError) -> UInt64? {
    guard let text, text != "off" else { return nil }
    if text == "relaxed" { return SchedulerParameters.relaxedCoScheduleSkew }
    guard let us = Int(text), (1...1_000_000).contains(us) else {
      throw UsageError("--co-schedule must be off, relaxed or a skew of 1 to 1000000 µs, not '\(text)'")
    }
    return UInt64(us) * 1000
  }

  /// The policy's parameters: `--timeslice` and `--rate-limit`; credits are accounted every 30 ms
  /// as with Xen's credit scheduler.
  func parameters() throws(UsageError) -> SchedulerParameters {
    let slice = timeslice ?? 30
    let limit = rateLimit ?? 1000
    guard (1...10_000).contains(slice) else { throw UsageError("--timeslice must be 1 to 10000 ms, not \(slice)") }
    guard (0...1_000_000).contains(limit) else {
      throw UsageError("--rate-limit must be 0 to 1000000 µs, not \(limit)")
    }
    let nanoseconds = UInt64(slice) * 1_000_000
    var parameters = SchedulerParameters(
      timeslice: nanoseconds, rateLimit: UInt64(limit) * 1000, accountingPeriod: SchedulerParameters().accountingPeriod)
    parameters.coScheduleSkew = try Self.coScheduleSkew(coSchedule)
    return parameters
  }

  /// The pool's pCPU count: `--pcpus` or the host's cores.
  func pcpuCount() throws(UsageError) -> Int {
    guard let pcpus else { return max(1, HostCPU.count) }
    guard (1...1024).contains(pcpus) else { throw UsageError("--pcpus must be 1 to 1024, not \(pcpus)") }
    return pcpus
  }

  /// The VM's share: `--weight`, `--cap`.
  func share() throws(UsageError) -> VMShare {
    if let weight, !(1...65535).contains(weight) {
      throw UsageError("--weight must be 1 to 65535, not \(weight)")
    }
    if let cap, !(1...25600).contains(cap) { throw UsageError("--cap must be 1 to 25600 percent, not \(cap)") }
    return VMShare(weight: weight ?? 256, cap: cap)
  }

  /// The pause-loop exiting threshold: `--pause-loop` or the default.
  func pauseLoopPauses() throws(UsageError) -> UInt64 {
    guard let pauseLoop else { return VCPUScheduling.defaultPauseLoopPauses }
    guard (0...4096).contains(pauseLoop) else { throw UsageError("--pause-loop must be 0 to 4096, not \(pauseLoop)") }
    return UInt64(pauseLoop)
  }

  /// The `--pin` values for a VM of `cpus` vCPUs on `pcpus` pCPUs: vCPU index to pCPUs.
  func pins(cpus: Int, pcpus: Int) throws(UsageError) -> [Int: Set<Int>] {
    var pins: [Int: Set<Int>] = [:]
    for text in pin {
      let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      guard parts.count == 2, let v = Int(parts[0]), v >= 0 else {
        throw UsageError("invalid --pin '\(text)' (use VCPU=PCPUS, e.g. 0=1 or 1=0-2,4)")
      }
      guard v < cpus else { throw UsageError("--pin '\(text)': the VM has vCPUs 0 to \(cpus - 1)") }
      guard pins[v] == nil else { throw UsageError("--pin: vCPU \(v) is pinned twice") }
      guard let set = Self.pcpuList(String(parts[1])), !set.isEmpty else {
        throw UsageError("invalid --pin '\(text)': PCPUS is a list like 0-2,4")
      }
      if let bad = set.filter({ $0 >= pcpus }).min() {
        throw UsageError("--pin '\(text)': pCPU \(bad) is not in the pool (0 to \(pcpus - 1))")
      }
      pins[v] = set
    }
    return pins
  }

  /// "0-2,4" as {0, 1, 2, 4}; nil when malformed.
  static func pcpuList(_ text: String) -> Set<Int>? {
    var set = Set<Int>()
    for item in text.split(separator: ",", omittingEmptySubsequences: false) {
      let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
      guard (1...2).contains(bounds.count), let low = Int(bounds[0]), low >= 0,
        let high = bounds.count == 2 ? Int(bounds[1]) : low, high >= low, high < 4096
      else { return nil }
      set.formUnion(low...high)
    }
    return set
  }

  /// The pool's host NUMA nodes for `--numa N` VMs: the pCPUs split into `nodes` consecutive
  /// groups (as even as integer division makes them; nil with fewer pCPUs than nodes, or none).
  static func hostNodes(pcpus: Int, nodes: Int?) -> [[Int]]? {
    guard let nodes, nodes > 1, pcpus >= nodes else { return nil }
    return (0..<nodes).map { n in Array((n * pcpus / nodes)..<((n + 1) * pcpus / nodes)) }
  }

  /// The host node of each of `cpus` vCPUs split into `nodes` virtual nodes the way
  /// `NUMATopology.evenlySplit` splits them (virtual node n maps to host node n).
  static func vcpuNodes(cpus: Int, nodes: Int?) -> [Int?] {
    guard let nodes, nodes > 1 else { return [] }
    return (0..<cpus).map { i in (0..<nodes).first { n in i >= n * cpus / nodes && i < (n + 1) * cpus / nodes } }
  }
}

/// The host's processors.
enum HostCPU {
  /// Online processors (at least 1).
  static var count: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

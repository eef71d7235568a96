import Scheduling

/// One process's vCPU scheduling: a `CreditScheduler` over `pcpus` pCPUs driven by a
/// `PhysicalCPUPool` on host time, the VMs added to it (`addMachine`, one call per machine, each
/// giving that machine's `MachineConfiguration.scheduling`), and the trace of every decision
/// (`SchedulerTrace`, written as a `SchedulerTraceFile` by `traceFileText`). Used by
/// `trivisor run --pcpus` and `trivisor bench sched`.
///
/// Threading: `addMachine` before `start`; the rest from any thread.
public final class SchedulingSession: @unchecked Sendable {
  /// The policy.
  public let scheduler: CreditScheduler
  /// The pool every machine of the session runs under.
  public let pool: PhysicalCPUPool
  /// Each VM's share, by VM index.
  public private(set) var shares: [VMShare] = []
  /// The hard affinity asked for each vCPU (nil: any pCPU).
  public private(set) var pins: [VCPUID: Set<Int>] = [:]
  private let clock = HostClock()
  /// The trace, touched only under the pool's lock (the scheduler's observer runs under it). Its
  /// own object, which the observer holds: the pool's timekeeper may still take a last step
  /// after the session is gone.
  private final class TraceBox {
    /// The trace so far.
    var trace: SchedulerTrace
    /// A box holding `trace`.
    init(_ trace: SchedulerTrace) { self.trace = trace }
  }
  private let box: TraceBox

  /// A session over `pcpus` pCPUs grouped into host NUMA `nodes` (nil: one node); with
  /// `keepingEvents` the trace keeps every event (for a trace file or a test).
  public init(
    pcpus: Int, nodes: [[Int]]? = nil, parameters: SchedulerParameters = SchedulerParameters(),
    keepingEvents: Bool = false
  ) {
    scheduler = CreditScheduler(pcpus: pcpus, nodes: nodes, parameters: parameters)
    let clock = self.clock
    pool = PhysicalCPUPool(scheduler: scheduler, clock: { clock.nanoseconds })
    let box = TraceBox(SchedulerTrace(keepingEvents: keepingEvents))
    self.box = box
    scheduler.observer = { event in box.trace.record(event) }
  }

  /// Adds a VM with `share` and `vcpuCount` vCPUs: `pins[i]` the pCPUs vCPU `i` may use (hard
  /// affinity), `nodes[i]` the host node its virtual NUMA node maps to (soft affinity), and with
  /// `bindHostThreads` each pinned vCPU's thread is bound to the host CPUs of the same numbers
  /// (those the host has); `pauseLoopPauses` is the pause-loop exiting threshold (0: off).
  /// Returns the machine's `MachineConfiguration.scheduling`.
  public func addMachine(
    share: VMShare = VMShare(), vcpuCount: Int, pins: [Int: Set<Int>] = [:], nodes: [Int?] = [],
    bindHostThreads: Bool = false, pauseLoopPauses: UInt64 = VCPUScheduling.defaultPauseLoopPauses
  ) -> VCPUScheduling {
    let vm = scheduler.addVM(share)
    shares.append(share)
    var ids: [VCPUID] = []
    var host: [[Int]?] = []
    for i in 0..<vcpuCount {
      let node = nodes.indices.contains(i) ? nodes[i] : nil
      guard let id = scheduler.addVCPU(vm: vm, hardAffinity: pins[i], node: node) else { continue }
      ids.append(id)
      if let pin = pins[i] { self.pins[id] = pin }
      host.append(bindHostThreads ? pins[i].map { $0.sorted() } : nil)
    }
    var scheduling = VCPUScheduling(pool: pool, vcpus: ids, hostCPUs: host)
    scheduling.pauseLoopPauses = pauseLoopPauses
    return scheduling
  }

  /// Starts the pool's timekeeper; false when its thread could not be created.
  @discardableResult
  public func start() -> Bool { pool.start() }

  /// Stops the pool (vCPU threads still under it run on without it) and closes the trace at now.
  public func finish() {
    pool.stop()
    let now = pool.now
    pool.withLock { box.trace.finish(at: now) }
  }

  /// The trace so far (complete after `finish`).
  public var recordedTrace: SchedulerTrace { pool.withLock { box.trace } }

  /// The trace file's configuration: pCPUs, shares, vCPUs.
  public var traceConfiguration: SchedulerTraceFile.Configuration {
    SchedulerTraceFile.Configuration(pcpus: scheduler.pcpuCount, shares: shares, vcpus: scheduler.vcpus)
  }

  /// The whole trace as a `SchedulerTraceFile` (needs `keepingEvents`; after `finish`).
  public func traceFileText() -> String {
    let trace = recordedTrace
    var text = SchedulerTraceFile.header(traceConfiguration)
    for event in trace.events { text += SchedulerTraceFile.line(event) }
    text += SchedulerTraceFile.end(at: trace.duration)
    return text
  }

  /// The per-VM report of the run (after `finish`).
  public func report() -> SchedulerReport {
    SchedulerReport(
      trace: recordedTrace, shares: shares, vcpus: scheduler.vcpus, pcpus: scheduler.pcpuCount)
  }
}

/// The scheduler in virtual time with scripted vCPU demand: the deterministic mode in which the
/// policy is tested without threads. The same `CreditScheduler` drives real vCPU threads.
///
/// The loop jumps from event to event (an accounting period, a slice end, a preemption request, a
/// vCPU finishing its burst and blocking, a blocked vCPU's wake-up), so a 10-second run takes
/// milliseconds; nothing depends on the host's speed or load.
public struct SchedulerSimulation {
  /// What a vCPU wants, as a script.
  public enum Demand: Sendable, Equatable {
    /// Never blocks (a CPU hog).
    case cpuBound
    /// Runs `run` nanoseconds, blocks `sleep` nanoseconds (woken by a timer or I/O), again.
    case periodic(run: UInt64, sleep: UInt64)
    /// Never wakes (a vCPU halted for good).
    case idle
  }

  /// The scheduler being driven.
  public let scheduler: CreditScheduler
  private var demands: [VCPUID: Demand] = [:]

  /// A simulation of `scheduler` (with its VMs and vCPUs added).
  public init(scheduler: CreditScheduler) { self.scheduler = scheduler }

  /// Sets what `vcpu` does (vCPUs without a demand are `.cpuBound`).
  public mutating func set(_ demand: Demand, for vcpu: VCPUID) { demands[vcpu] = demand }

  /// Runs for `duration` nanoseconds of virtual time from 0 and returns the trace.
  public func run(for duration: UInt64, keepingEvents: Bool = false) -> SchedulerTrace {
    var trace = SchedulerTrace(keepingEvents: keepingEvents)
    let scheduler = self.scheduler
    let previousObserver = scheduler.observer
    var recorded: [SchedulerEvent] = []
    scheduler.observer = { recorded.append($0) }
    defer { scheduler.observer = previousObserver }
    let pcpus = scheduler.pcpuCount
    let vcpus = scheduler.vcpus
    func demand(_ v: VCPUID) -> Demand { demands[v] ?? .cpuBound }

    var burstLeft: [VCPUID: UInt64] = [:]
    var wakeAt: [VCPUID: UInt64] = [:]
    var sliceEnd = [UInt64](repeating: .max, count: pcpus)
    var runningSince = [UInt64?](repeating: nil, count: pcpus)
    var nextAccounting = scheduler.parameters.accountingPeriod
    var now: UInt64 = 0

    func flush() {
      for e in recorded { trace.record(e) }
      recorded.removeAll(keepingCapacity: true)
    }
    func dispatch(_ p: Int) {
      let (v, until) = scheduler.schedule(p, at: now)
      sliceEnd[p] = until
      runningSince[p] = v == nil ? nil : now
    }

    for v in vcpus {
      switch demand(v) {
      case .cpuBound: scheduler.wake(v, at: 0)
      case .periodic(let run, _):
        burstLeft[v] = max(run, 1)
        scheduler.wake(v, at: 0)
      case .idle: break
      }
    }
    scheduler.account(at: 0)
    for p in 0..<pcpus { dispatch(p) }
    flush()

    while now < duration {
      // The next event.
      var next = min(duration, nextAccounting)
      for p in 0..<pcpus {
        next = min(next, sliceEnd[p], scheduler.preemptionDue[p] ?? .max)
        if let v = scheduler.runningVCPU(on: p), let left = burstLeft[v], let since = runningSince[p] {
          next = min(next, since &+ left)
        }
      }
      for (_, t) in wakeAt { next = min(next, t) }
      next = max(next, now)
      // Time passes: running vCPUs use up their bursts.
      for p in 0..<pcpus {
        if let v = scheduler.runningVCPU(on: p), let left = burstLeft[v], let since = runningSince[p] {
          let used = next - since
          burstLeft[v] = left > used ? left - used : 0
          runningSince[p] = next
        }
      }
      now = next
      if now >= duration { break }
      if now >= nextAccounting {
        scheduler.account(at: now)
        nextAccounting += scheduler.parameters.accountingPeriod
      }
      for (v, t) in wakeAt.sorted(by: { $0.key < $1.key }) where t <= now {
        wakeAt[v] = nil
        if case .periodic(let run, _) = demand(v) { burstLeft[v] = max(run, 1) }
        scheduler.wake(v, at: now)
      }
      for p in 0..<pcpus {
        if let v = scheduler.runningVCPU(on: p), burstLeft[v] == 0, case .periodic(_, let sleep) = demand(v) {
          scheduler.block(v, at: now)
          wakeAt[v] = now &+ max(sleep, 1)
          dispatch(p)
        }
      }
      for p in 0..<pcpus where sliceEnd[p] <= now || (scheduler.preemptionDue[p] ?? .max) <= now {
        dispatch(p)
      }
      flush()
    }
    flush()
    trace.finish(at: duration)
    return trace
  }
}

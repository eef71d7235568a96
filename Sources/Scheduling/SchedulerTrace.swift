/// What a scheduler run looked like: who ran where and when, how long woken vCPUs waited, and
/// how often vCPUs moved. Built from `SchedulerEvent`s; `SchedulerSimulation` returns one.
public struct SchedulerTrace: Sendable {
  /// `vcpu` ran on `pcpu` during [`start`, `end`).
  public struct Interval: Sendable, Equatable {
    /// Who ran.
    public var vcpu: VCPUID
    /// Where.
    public var pcpu: Int
    /// From.
    public var start: UInt64
    /// To (exclusive).
    public var end: UInt64
  }

  /// Every run interval, in the order they ended.
  public private(set) var intervals: [Interval] = []
  /// Per vCPU: from each wake-up to its next dispatch, in nanoseconds.
  public private(set) var wakeLatencies: [VCPUID: [UInt64]] = [:]
  /// How many times a vCPU was stolen by another pCPU.
  public private(set) var migrations = 0
  /// Per vCPU: how many times it moved to another pCPU.
  public private(set) var migrationsByVCPU: [VCPUID: Int] = [:]
  /// Per vCPU: steal time, nanoseconds it was runnable but not running (waiting for a pCPU).
  public private(set) var stealTime: [VCPUID: UInt64] = [:]
  /// Per VM: spinlock acquisitions completed (`SchedulerSimulation.Demand.spinlock`).
  public private(set) var lockAcquisitions: [Int: Int] = [:]
  /// The events in order, when recording them was asked for.
  public private(set) var events: [SchedulerEvent] = []

  private var open: [Int: (VCPUID, UInt64)] = [:]
  private var woken: [VCPUID: UInt64] = [:]
  /// Since when each runnable, not running vCPU has waited.
  private var waiting: [VCPUID: UInt64] = [:]
  private let keepsEvents: Bool

  /// An empty trace; with `keepingEvents` every event is kept in `events` too.
  public init(keepingEvents: Bool = false) { keepsEvents = keepingEvents }

  /// Adds one event.
  public mutating func record(_ event: SchedulerEvent) {
    if keepsEvents { events.append(event) }
    switch event {
    case .woke(let v, let t):
      if woken[v] == nil { woken[v] = t }
      if waiting[v] == nil { waiting[v] = t }
    case .dispatched(let v, let p, let t):
      open[p] = (v, t)
      if let w = woken.removeValue(forKey: v) { wakeLatencies[v, default: []].append(t - min(w, t)) }
      if let w = waiting.removeValue(forKey: v) { stealTime[v, default: 0] += t - min(w, t) }
    case .descheduled(let v, let p, let t):
      if let (running, start) = open.removeValue(forKey: p), running == v, t > start {
        intervals.append(Interval(vcpu: v, pcpu: p, start: start, end: t))
      }
      waiting[v] = t  // until it blocks or parks
    case .migrated(let v, _, _, _):
      migrations += 1
      migrationsByVCPU[v, default: 0] += 1
    case .blocked(let v, _), .parked(let v, _):
      waiting[v] = nil
    case .priorityChanged:
      break
    }
  }

  /// Counts one completed critical section of VM `vm`.
  public mutating func noteLockAcquired(vm: Int) { lockAcquisitions[vm, default: 0] += 1 }

  /// Closes the intervals still open at `time` (the end of a run).
  public mutating func finish(at time: UInt64) {
    for (p, (v, start)) in open.sorted(by: { $0.key < $1.key }) where time > start {
      intervals.append(Interval(vcpu: v, pcpu: p, start: start, end: time))
    }
    open = [:]
    for (v, since) in waiting where time > since { stealTime[v, default: 0] += time - since }
    waiting = [:]
    duration = max(duration, time)
  }

  /// The time the trace covers (set by `finish`).
  public private(set) var duration: UInt64 = 0

  /// CPU time `vcpu` received.
  public func cpuTime(of vcpu: VCPUID) -> UInt64 {
    intervals.reduce(0) { $0 + ($1.vcpu == vcpu ? $1.end - $1.start : 0) }
  }

  /// CPU time VM `vm`'s vCPUs received together.
  public func cpuTime(ofVM vm: Int) -> UInt64 {
    intervals.reduce(0) { $0 + ($1.vcpu.vm == vm ? $1.end - $1.start : 0) }
  }

  /// The `fraction` (0...1) percentile of `values` (nearest rank); 0 for none.
  public static func percentile(_ fraction: Double, of values: [UInt64]) -> UInt64 {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
  }
}

/// The scheduler in virtual time with scripted vCPU demand: the deterministic mode in which the
/// policy is tested without threads. The same `CreditScheduler` drives real vCPU threads.
///
/// The loop jumps from event to event (an accounting period, a slice end, a preemption request, a
/// vCPU finishing a phase of its script, a blocked vCPU's wake-up), so a 10-second run takes
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
    /// Contends for its VM's one spinlock: works `between` nanoseconds, takes the lock (spinning
    /// while another vCPU of the VM holds it), holds it `critical` nanoseconds, releases it, again.
    /// A lock holder that loses its pCPU keeps the lock: its siblings spin (lock-holder preemption).
    case spinlock(critical: UInt64, between: UInt64)
    /// As `spinlock`, but the VM's lock is a ticket lock (the reference kernel's): waiters take it
    /// in the order they asked, so a waiter that loses its pCPU holds up everyone after it too
    /// (lock-waiter preemption), not only a holder that loses it.
    case ticketLock(critical: UInt64, between: UInt64)

    /// The critical section and the work between, for the lock demands.
    var lock: (critical: UInt64, between: UInt64, ticket: Bool)? {
      switch self {
      case .spinlock(let critical, let between): return (critical, between, false)
      case .ticketLock(let critical, let between): return (critical, between, true)
      case .cpuBound, .periodic, .idle: return nil
      }
    }
  }

  /// The scheduler being driven.
  public let scheduler: CreditScheduler
  /// With a value, a vCPU that has spun this long (running time) yields its pCPU
  /// (`CreditScheduler.yield`), as a VMM with pause-loop exiting would make it; nil: spinners
  /// spin until their slice ends.
  public var spinDetectionWindow: UInt64?
  private var demands: [VCPUID: Demand] = [:]

  /// A simulation of `scheduler` (with its VMs and vCPUs added).
  public init(scheduler: CreditScheduler) { self.scheduler = scheduler }

  /// Sets what `vcpu` does (vCPUs without a demand are `.cpuBound`).
  public mutating func set(_ demand: Demand, for vcpu: VCPUID) { demands[vcpu] = demand }

  /// Where a vCPU is in its script.
  private enum Phase {
    /// Running without an end of its own (CPU-bound, or spinning without detection).
    case open
    /// `left` nanoseconds of running until its phase ends (a burst, work, a critical section,
    /// or the spin-detection window).
    case timed(left: UInt64)
  }

  /// Runs for `duration` nanoseconds of virtual time from 0 and returns the trace.
  public func run(for duration: UInt64, keepingEvents: Bool = false) -> SchedulerTrace {
    var state = RunState(simulation: self, trace: SchedulerTrace(keepingEvents: keepingEvents))
    let previousObserver = scheduler.observer
    defer { scheduler.observer = previousObserver }
    let box = EventBox()
    scheduler.observer = { box.events.append($0) }
    state.start(box)
    // Each step handles what is due; many steps at one instant would mean the policy keeps
    // asking itself to pick again without progress: stop rather than spin.
    var stepsAtThisInstant = 0
    while state.now < duration && stepsAtThisInstant < 10_000 {
      let before = state.now
      state.step(until: duration, box)
      stepsAtThisInstant = state.now == before ? stepsAtThisInstant + 1 : 0
    }
    state.flush(box)
    state.trace.finish(at: duration)
    return state.trace
  }

  /// Collects the scheduler's events during one step.
  private final class EventBox {
    var events: [SchedulerEvent] = []
  }

  /// The simulation's mutable state during `run`.
  private struct RunState {
    let simulation: SchedulerSimulation
    var trace: SchedulerTrace
    var now: UInt64 = 0
    var phase: [VCPUID: Phase] = [:]
    var spinning: Set<VCPUID> = []
    var holder: [Int: VCPUID] = [:]
    /// Ticket locks: per VM the next ticket and the one served; per vCPU its ticket.
    var nextTicket: [Int: UInt64] = [:]
    var serving: [Int: UInt64] = [:]
    var ticket: [VCPUID: UInt64] = [:]
    var wakeAt: [VCPUID: UInt64] = [:]
    var sliceEnd: [UInt64]
    var lastAdvance: UInt64 = 0
    var nextAccounting: UInt64

    var scheduler: CreditScheduler { simulation.scheduler }

    init(simulation: SchedulerSimulation, trace: SchedulerTrace) {
      self.simulation = simulation
      self.trace = trace
      sliceEnd = Array(repeating: .max, count: simulation.scheduler.pcpuCount)
      nextAccounting = simulation.scheduler.parameters.accountingPeriod
    }

    func demand(_ v: VCPUID) -> Demand { simulation.demands[v] ?? .cpuBound }

    mutating func flush(_ box: EventBox) {
      for e in box.events { trace.record(e) }
      box.events.removeAll(keepingCapacity: true)
    }

    /// The phase a vCPU enters when it starts its script or wakes.
    mutating func begin(_ v: VCPUID) {
      switch demand(v) {
      case .cpuBound, .idle: phase[v] = .open
      case .periodic(let run, _): phase[v] = .timed(left: max(run, 1))
      case .spinlock(_, let between), .ticketLock(_, let between): phase[v] = .timed(left: max(between, 1))
      }
    }

    mutating func dispatch(_ p: Int) {
      let (v, until) = scheduler.schedule(p, at: now)
      sliceEnd[p] = until
      if let v { arrived(v) }
    }

    /// Whether the lock of `v`'s VM is `v`'s to take now: free, and for a ticket lock its turn.
    func mayTake(_ v: VCPUID) -> Bool {
      guard holder[v.vm] == nil, let lock = demand(v).lock else { return false }
      return !lock.ticket || ticket[v] == serving[v.vm, default: 0]
    }

    /// A spinner that gets a pCPU while the lock is its to take takes it at once.
    mutating func arrived(_ v: VCPUID) {
      guard spinning.contains(v), let critical = demand(v).lock?.critical, mayTake(v) else { return }
      spinning.remove(v)
      holder[v.vm] = v
      phase[v] = .timed(left: max(critical, 1))
    }

    mutating func start(_ box: EventBox) {
      for v in scheduler.vcpus where demand(v) != .idle {
        begin(v)
        scheduler.wake(v, at: 0)
      }
      scheduler.account(at: 0)
      for p in 0..<scheduler.pcpuCount { dispatch(p) }
      flush(box)
    }

    /// Advances to the next event and handles everything due then.
    mutating func step(until duration: UInt64, _ box: EventBox) {
      var next = min(duration, nextAccounting)
      for p in 0..<scheduler.pcpuCount {
        next = min(next, sliceEnd[p], scheduler.preemptionDue[p] ?? .max)
        if let v = scheduler.runningVCPU(on: p), case .timed(let left) = phase[v] {
          next = min(next, left > UInt64.max - now ? UInt64.max : now + left)
        }
      }
      for (_, t) in wakeAt { next = min(next, t) }
      next = max(next, now)
      // Time passes for the running vCPUs' phases.
      let elapsed = next - now
      for p in 0..<scheduler.pcpuCount {
        if let v = scheduler.runningVCPU(on: p), case .timed(let left) = phase[v] {
          phase[v] = .timed(left: left > elapsed ? left - elapsed : 0)
        }
      }
      now = next
      if now >= duration { return }
      if now >= nextAccounting {
        scheduler.account(at: now)
        nextAccounting += scheduler.parameters.accountingPeriod
      }
      for (v, t) in wakeAt.sorted(by: { $0.key < $1.key }) where t <= now {
        wakeAt[v] = nil
        begin(v)
        scheduler.wake(v, at: now)
      }
      for p in 0..<scheduler.pcpuCount {
        guard let v = scheduler.runningVCPU(on: p), case .timed(0) = phase[v] else { continue }
        phaseEnded(v, on: p)
      }
      for p in 0..<scheduler.pcpuCount where sliceEnd[p] <= now || (scheduler.preemptionDue[p] ?? .max) <= now {
        dispatch(p)
      }
      flush(box)
    }

    /// `v`'s timed phase ended while it ran on `p`.
    mutating func phaseEnded(_ v: VCPUID, on p: Int) {
      switch demand(v) {
      case .periodic(_, let sleep):
        scheduler.block(v, at: now)
        wakeAt[v] = now &+ max(sleep, 1)
        dispatch(p)
      case .spinlock(let critical, let between), .ticketLock(let critical, let between):
        if holder[v.vm] == v {
          // Release; the next running spinner of the VM (whose turn it is) takes the lock.
          holder[v.vm] = nil
          serving[v.vm, default: 0] += 1
          trace.noteLockAcquired(vm: v.vm)
          phase[v] = .timed(left: max(between, 1))
          for q in 0..<scheduler.pcpuCount {
            if let w = scheduler.runningVCPU(on: q), w.vm == v.vm, spinning.contains(w), mayTake(w) {
              arrived(w)
              break
            }
          }
        } else if spinning.contains(v) {
          // The spin-detection window ran out: give the pCPU away.
          phase[v] = .timed(left: simulation.spinDetectionWindow ?? .max)
          scheduler.yield(v, at: now)
        } else if demand(v).lock?.ticket == true {
          // Takes the next ticket; spins until it is served.
          ticket[v] = nextTicket[v.vm, default: 0]
          nextTicket[v.vm, default: 0] += 1
          if mayTake(v) {
            holder[v.vm] = v
            phase[v] = .timed(left: max(critical, 1))
          } else {
            spinning.insert(v)
            phase[v] = simulation.spinDetectionWindow.map { .timed(left: max($0, 1)) } ?? .open
          }
        } else if holder[v.vm] == nil {
          holder[v.vm] = v
          phase[v] = .timed(left: max(critical, 1))
        } else {
          spinning.insert(v)
          phase[v] = simulation.spinDetectionWindow.map { .timed(left: max($0, 1)) } ?? .open
        }
      case .cpuBound, .idle:
        phase[v] = .open
      }
    }
  }
}

import Foundation
import Scheduling

/// The scheduler's policy driving real vCPU threads: a vCPU thread may run its guest only while it
/// holds one of the pool's physical CPUs, which `CreditScheduler` hands out. One pool serves every
/// engine the same way: a software engine's thread runs its slice in `run(budget:)`, a `kvm`
/// thread calls `KVM_RUN`; either way the pool ends a slice by `kick()`ing the vCPU, whose thread
/// then gives the pCPU back.
///
/// A vCPU thread's loop: `acquire` (blocks until the vCPU is dispatched on a pCPU), run the guest,
/// after each exit ask `mustYield` and, when true or when the guest idles, `release` (with
/// `blocking` when it waits for an interrupt; `wake` makes it runnable again). A timekeeper
/// (`tick`, on its own thread after `start()`) runs the accounting periods, ends slices and
/// carries out the preemptions the policy asks for.
///
/// Threading: every method is safe from any thread; the policy is only touched under the pool's
/// lock. A pCPU is given to a new vCPU only once its previous holder has released it, so two vCPU
/// threads never hold one pCPU.
public final class PhysicalCPUPool: @unchecked Sendable {
  /// The policy.
  public let scheduler: CreditScheduler
  private let clock: @Sendable () -> UInt64
  private let condition = NSCondition()
  /// Per pCPU: the vCPU whose thread holds it, or is about to take it.
  private var holder: [VCPUID?]
  /// Per pCPU: when its holder's slice ends.
  private var sliceEnd: [UInt64]
  /// Dispatch decisions the chosen vCPU threads have not picked up yet.
  private var granted: [VCPUID: Int] = [:]
  private var yieldRequested: Set<VCPUID> = []
  private var kicks: [VCPUID: @Sendable () -> Void] = [:]
  private var nextAccounting: UInt64
  private var stopped = false
  /// vCPUs whose next (or current) `acquire` returns nil without a pCPU (`interruptAcquire`).
  private var interrupted: Set<VCPUID> = []
  private let timekeeperWakeup = WakeupEvent()
  /// Per vCPU: what its thread waiting in `acquire` sleeps on, so that a dispatch wakes the one
  /// thread it concerns rather than every waiting one (a directed yield is a hand-off between two
  /// threads; on a busy host waking the others too delays it).
  private var waiters: [VCPUID: WakeupEvent] = [:]

  /// A pool handing out `scheduler`'s pCPUs, with time from `clock` (nanoseconds).
  public init(scheduler: CreditScheduler, clock: @escaping @Sendable () -> UInt64) {
    self.scheduler = scheduler
    self.clock = clock
    holder = Array(repeating: nil, count: scheduler.pcpuCount)
    sliceEnd = Array(repeating: .max, count: scheduler.pcpuCount)
    nextAccounting = clock()
  }

  /// Tells the pool how to make `vcpu`'s guest stop running promptly (`VirtualCPU.kick`).
  public func register(_ vcpu: VCPUID, kick: @escaping @Sendable () -> Void) {
    condition.lock()
    kicks[vcpu] = kick
    condition.unlock()
  }

  /// Starts the timekeeper thread; false when the host could not create it.
  @discardableResult
  public func start() -> Bool {
    PThread.detach { [self] in
      while true {
        let next = tick()
        condition.lock()
        let done = stopped
        condition.unlock()
        if done { return }
        let now = clock()
        timekeeperWakeup.wait(timeout: next > now ? next - now : 0)
      }
    }
  }

  /// Stops the pool: threads waiting in `acquire` return nil, the timekeeper ends.
  public func stop() {
    condition.lock()
    stopped = true
    condition.broadcast()
    for waiter in waiters.values { waiter.signal() }
    condition.unlock()
    timekeeperWakeup.signal()
  }

  /// Blocks until `vcpu` is dispatched; returns its pCPU (nil once the pool stopped, or when
  /// `interruptAcquire` called it off). A blocked vCPU that asks for a pCPU is woken first.
  public func acquire(_ vcpu: VCPUID) -> Int? {
    condition.lock()
    defer { condition.unlock() }
    if scheduler.state(of: vcpu) == .blocked {
      scheduler.wake(vcpu, at: clock())
      // A BOOSTed vCPU may preempt once the rate limit allows: the timekeeper must look again.
      timekeeperWakeup.signal()
    }
    dispatchIdlePCPUs(at: clock())
    while granted[vcpu] == nil && !stopped && !interrupted.contains(vcpu) {
      let waiter = waiters[vcpu] ?? WakeupEvent()
      waiters[vcpu] = waiter
      // The event latches: a grant made between the unlock and the wait is not lost.
      condition.unlock()
      waiter.wait(timeout: nil)
      condition.lock()
    }
    if stopped { return nil }
    interrupted.remove(vcpu)
    // A pCPU granted meanwhile is taken even when interrupted: the caller holds it and releases.
    if let p = granted.removeValue(forKey: vcpu) { return p }
    // Called off: the vCPU wants no pCPU while its thread is away (machine stop, pause, reset).
    scheduler.block(vcpu, at: clock())
    dispatchIdlePCPUs(at: clock())
    return nil
  }

  /// Makes the `acquire` of `vcpu` that is waiting, or else its next one, return nil at once:
  /// how a machine stop, pause or reset reaches a vCPU thread waiting for a pCPU. Any thread.
  public func interruptAcquire(_ vcpu: VCPUID) {
    condition.lock()
    interrupted.insert(vcpu)
    condition.broadcast()
    waiters[vcpu]?.signal()
    condition.unlock()
  }

  /// Whether `stop()` was called.
  public var isStopped: Bool {
    condition.lock()
    defer { condition.unlock() }
    return stopped
  }

  /// Runs `body` under the pool's lock, the one the policy is touched under (its observer is
  /// called under it too): to read the policy's state consistently from outside.
  public func withLock<T>(_ body: () throws -> T) rethrows -> T {
    condition.lock()
    defer { condition.unlock() }
    return try body()
  }

  /// The pool's clock now (nanoseconds).
  public var now: UInt64 { clock() }

  /// Whether `vcpu` should give its pCPU back now (its slice ended, or a woken vCPU preempts it).
  public func mustYield(_ vcpu: VCPUID) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    return yieldRequested.contains(vcpu)
  }

  /// `vcpu`'s thread gives its pCPU back: `blocking` when the guest waits for an interrupt (the
  /// vCPU takes no pCPU until `wake` or `acquire`), otherwise it stays runnable — and may be
  /// given a pCPU again at once, so a thread that stops running its vCPU must release with
  /// `blocking` (or the pool be stopped), or that pCPU waits for it.
  ///
  /// A blocking release from a thread that holds nothing withdraws the vCPU all the same: a pCPU
  /// granted to it and not taken yet goes to someone else, and a queued vCPU leaves its queue —
  /// what a thread that stops running its vCPU (machine stop, pause, reset) must do, since the
  /// vCPU may have been dispatched again right after its last non-blocking release.
  public func release(_ vcpu: VCPUID, blocking: Bool) {
    condition.lock()
    defer { condition.unlock() }
    let now = clock()
    if let p = holder.firstIndex(of: vcpu) {
      if granted[vcpu] != nil {
        guard blocking else { return }
        granted[vcpu] = nil
      }
      yieldRequested.remove(vcpu)
      if blocking { scheduler.block(vcpu, at: now) }
      holder[p] = nil
      dispatch(p, at: now)
    } else if blocking, let state = scheduler.state(of: vcpu), state != .blocked {
      scheduler.block(vcpu, at: now)
    } else {
      return
    }
    dispatchIdlePCPUs(at: now)
    condition.broadcast()
    timekeeperWakeup.signal()
  }

  /// An interrupt or event for `vcpu`: a blocked vCPU becomes runnable (and may preempt).
  public func wake(_ vcpu: VCPUID) {
    condition.lock()
    defer { condition.unlock() }
    scheduler.wake(vcpu, at: clock())
    dispatchIdlePCPUs(at: clock())
    condition.broadcast()
    timekeeperWakeup.signal()
  }

  /// `vcpu` spins (a PAUSE loop): it gives its pCPU back at once, and the policy hands it to a
  /// sibling of the same VM that was preempted while runnable (`CreditScheduler.yield`: a directed
  /// yield), else to anyone else.
  public func yieldSpinning(_ vcpu: VCPUID) {
    condition.lock()
    let kick: (@Sendable () -> Void)?
    if scheduler.yield(vcpu, at: clock()) != nil {
      yieldRequested.insert(vcpu)
      kick = kicks[vcpu]
    } else {
      kick = nil
    }
    condition.unlock()
    kick?()
  }

  /// One timekeeper step at the clock's time: an accounting period if one is due, slices ended
  /// and preemptions carried out (the holders are kicked), idle pCPUs given work. Returns when
  /// the next step is due. `start()` calls it on its own thread; tests call it directly.
  @discardableResult
  public func tick() -> UInt64 {
    condition.lock()
    let now = clock()
    if now >= nextAccounting {
      scheduler.account(at: now)
      nextAccounting = now &+ scheduler.parameters.accountingPeriod
    }
    var toKick: [@Sendable () -> Void] = []
    for p in 0..<scheduler.pcpuCount {
      guard let v = holder[p], granted[v] == nil else { continue }
      if sliceEnd[p] <= now || (scheduler.preemptionDue[p] ?? .max) <= now, !yieldRequested.contains(v) {
        yieldRequested.insert(v)
        if let kick = kicks[v] { toKick.append(kick) }
      }
    }
    dispatchIdlePCPUs(at: now)
    condition.broadcast()
    var next = nextAccounting
    for p in 0..<scheduler.pcpuCount {
      // An idle pCPU may have a pick due too (co-scheduling lets a held-back vCPU go).
      next = min(next, holder[p] != nil ? sliceEnd[p] : .max, scheduler.preemptionDue[p] ?? .max)
    }
    condition.unlock()
    for kick in toKick { kick() }
    return next
  }

  /// The vCPU holding `pcpu` (or granted it), if any.
  public func holder(of pcpu: Int) -> VCPUID? {
    condition.lock()
    defer { condition.unlock() }
    return holder.indices.contains(pcpu) ? holder[pcpu] : nil
  }

  /// Asks the policy whom `p` runs next and hands it over. Under the lock; `p` has no holder.
  private func dispatch(_ p: Int, at now: UInt64) {
    let (next, until) = scheduler.schedule(p, at: now)
    sliceEnd[p] = until
    guard let next else { return }
    holder[p] = next
    granted[next] = p
    waiters[next]?.signal()
  }

  /// Idle pCPUs the policy wants to pick again (work for them was queued) pick now.
  private func dispatchIdlePCPUs(at now: UInt64) {
    for p in 0..<scheduler.pcpuCount where holder[p] == nil {
      if let due = scheduler.preemptionDue[p], due <= now { dispatch(p, at: now) }
    }
  }
}

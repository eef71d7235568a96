import Foundation
import Scheduling
import Synchronization
import Testing

@testable import VMM

/// The scheduler driving real threads: a pCPU is held by one vCPU thread at a time, slices end
/// by a kick, blocked vCPUs hold nothing, affinity holds. Time is a manual clock: nothing here
/// depends on the host's speed.
@Suite struct PhysicalCPUPoolTests {
  /// A clock the test moves.
  final class ManualClock: Sendable {
    let now = Atomic<UInt64>(0)
    func advance(_ ns: UInt64) { now.add(ns, ordering: .sequentiallyConsistent) }
  }

  @Test func threeThreadsShareOnePCPUNeverTwoAtOnceAndAllProgress() throws {
    let clock = ManualClock()
    let scheduler = CreditScheduler(pcpus: 1)
    let vm = scheduler.addVM()
    let vcpus = (0..<3).map { _ in scheduler.addVCPU(vm: vm)! }
    let pool = PhysicalCPUPool(scheduler: scheduler, clock: { clock.now.load(ordering: .sequentiallyConsistent) })
    let inside = Atomic<Int>(0)
    let worst = Atomic<Int>(0)
    let rounds = Atomic<Int>(0)
    let group = DispatchGroup()
    for v in vcpus {
      group.enter()
      Thread.detachNewThread {
        for round in 0..<200 {
          guard pool.acquire(v) == 0 else { break }
          let n = inside.add(1, ordering: .sequentiallyConsistent).newValue
          if n > worst.load(ordering: .sequentiallyConsistent) { worst.store(n, ordering: .sequentiallyConsistent) }
          clock.advance(1000)
          inside.subtract(1, ordering: .sequentiallyConsistent)
          rounds.add(1, ordering: .sequentiallyConsistent)
          // A thread that is done blocks: a runnable vCPU would be given the pCPU again.
          pool.release(v, blocking: round == 199)
        }
        group.leave()
      }
    }
    #expect(group.wait(timeout: .now() + 120) == .success, "every thread finished its rounds")
    pool.stop()
    #expect(worst.load(ordering: .sequentiallyConsistent) == 1)
    #expect(rounds.load(ordering: .sequentiallyConsistent) == 600)
  }

  @Test func aSliceEndsByAKickAndTheWaitingVCPUGetsThePCPU() throws {
    let clock = ManualClock()
    let scheduler = CreditScheduler(pcpus: 1)
    let a = scheduler.addVCPU(vm: scheduler.addVM())!
    let b = scheduler.addVCPU(vm: scheduler.addVM())!
    let pool = PhysicalCPUPool(scheduler: scheduler, clock: { clock.now.load(ordering: .sequentiallyConsistent) })
    let kicked = Atomic<Int>(0)
    pool.register(a) { kicked.add(1, ordering: .sequentiallyConsistent) }
    pool.register(b) { kicked.add(1, ordering: .sequentiallyConsistent) }
    pool.tick()  // the first accounting period
    #expect(pool.acquire(a) == 0)
    pool.wake(b)  // b wants the pCPU (before its thread asks, so the order is the test's)
    #expect(pool.holder(of: 0) == a, "a woken vCPU does not take a held pCPU")
    let bGot = Atomic<Int>(-1)
    let waiting = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      bGot.store(pool.acquire(b) ?? -2, ordering: .sequentiallyConsistent)
      waiting.signal()
    }
    #expect(!pool.mustYield(a))
    clock.advance(scheduler.parameters.timeslice)
    pool.tick()
    #expect(pool.mustYield(a), "the slice is over")
    #expect(kicked.load(ordering: .sequentiallyConsistent) == 1)
    #expect(pool.holder(of: 0) == a, "nobody else gets the pCPU before a gives it back")
    pool.release(a, blocking: false)
    #expect(waiting.wait(timeout: .now() + 60) == .success)
    #expect(bGot.load(ordering: .sequentiallyConsistent) == 0)
    #expect(pool.holder(of: 0) == b)
    pool.stop()
  }

  @Test func aBlockedVCPUHoldsNothingAndAWakeBringsItBack() throws {
    let clock = ManualClock()
    let scheduler = CreditScheduler(pcpus: 1)
    let vm = scheduler.addVM()
    let a = scheduler.addVCPU(vm: vm)!
    let b = scheduler.addVCPU(vm: vm)!
    let pool = PhysicalCPUPool(scheduler: scheduler, clock: { clock.now.load(ordering: .sequentiallyConsistent) })
    pool.tick()
    #expect(pool.acquire(a) == 0)
    pool.release(a, blocking: true)
    #expect(scheduler.state(of: a) == .blocked)
    #expect(pool.holder(of: 0) == nil)
    #expect(pool.acquire(b) == 0, "the pCPU a left is free at once")
    pool.wake(a)
    #expect(scheduler.state(of: a) == .runnable)
    pool.release(b, blocking: true)
    #expect(pool.acquire(a) == 0)
    pool.stop()
    #expect(pool.acquire(b) == nil, "a stopped pool grants nothing")
  }

  @Test func pinnedVCPUsOnlyEverGetTheirPCPUs() throws {
    let clock = ManualClock()
    let scheduler = CreditScheduler(pcpus: 3)
    let vm = scheduler.addVM()
    let pinned = (0..<4).map { i in scheduler.addVCPU(vm: vm, hardAffinity: [i % 2 == 0 ? 0 : 2])! }
    let pool = PhysicalCPUPool(scheduler: scheduler, clock: { clock.now.load(ordering: .sequentiallyConsistent) })
    let violations = Atomic<Int>(0)
    let group = DispatchGroup()
    for (i, v) in pinned.enumerated() {
      group.enter()
      Thread.detachNewThread {
        for round in 0..<100 {
          guard let p = pool.acquire(v) else { break }
          if p != (i % 2 == 0 ? 0 : 2) { violations.add(1, ordering: .sequentiallyConsistent) }
          clock.advance(500)
          pool.release(v, blocking: round == 99)
        }
        group.leave()
      }
    }
    #expect(group.wait(timeout: .now() + 120) == .success)
    pool.stop()
    #expect(violations.load(ordering: .sequentiallyConsistent) == 0)
  }

  /// A thread that stops running its vCPU right after a non-blocking release (a stop or pause
  /// found at the top of the loop) may leave a pCPU granted to it: its blocking release gives
  /// that pCPU back, and another vCPU gets it.
  @Test func aBlockingReleaseWithdrawsAGrantNotTakenYet() throws {
    let clock = ManualClock()
    let scheduler = CreditScheduler(pcpus: 1)
    let a = scheduler.addVCPU(vm: scheduler.addVM())!
    let b = scheduler.addVCPU(vm: scheduler.addVM())!
    let pool = PhysicalCPUPool(scheduler: scheduler, clock: { clock.now.load(ordering: .sequentiallyConsistent) })
    pool.tick()
    #expect(pool.acquire(a) == 0)
    pool.release(a, blocking: false)
    #expect(pool.holder(of: 0) == a, "nobody else wants it: a is dispatched again")
    pool.release(a, blocking: true)
    #expect(pool.holder(of: 0) == nil, "the grant a's thread never took is withdrawn")
    #expect(scheduler.state(of: a) == .blocked)
    #expect(pool.acquire(b) == 0)
    pool.stop()
  }
}

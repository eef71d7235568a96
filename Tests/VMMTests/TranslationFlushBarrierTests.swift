import Testing

@testable import VMM

/// The bookkeeping of `TranslationFlushBarrier`, without threads: which targets a flush's caller
/// waits for, and when the wait is over.
@Suite struct TranslationFlushBarrierTests {
  @Test func aTargetOutsideTheGuestIsNotWaitedFor() {
    let barrier = TranslationFlushBarrier(vcpuCount: 3)
    barrier.await(1, by: 0)
    #expect(!barrier.hasAwaited(0))
    #expect(barrier.settle(0))
    #expect(barrier.waits.load(ordering: .relaxed) == 0)
  }

  @Test func aTargetInTheGuestIsWaitedForUntilItsRunReturns() {
    let barrier = TranslationFlushBarrier(vcpuCount: 3)
    barrier.enteringGuest(1)
    barrier.enteringGuest(2)
    barrier.await(1, by: 0)
    barrier.await(2, by: 0)
    barrier.await(1, by: 0)  // asked twice, waited for once
    #expect(barrier.hasAwaited(0))
    #expect(barrier.slots[0].awaited.count == 2)
    #expect(!barrier.settle(0))
    #expect(!barrier.leftGuest(1), "nobody sleeps: no wake-up")
    #expect(!barrier.settle(0), "vCPU 2 still runs")
    // vCPU 2 leaves and enters again before the caller looks: the run that held the old
    // translation is over all the same (it flushed before the new one).
    _ = barrier.leftGuest(2)
    barrier.enteringGuest(2)
    #expect(barrier.settle(0))
    #expect(!barrier.hasAwaited(0))
    #expect(barrier.waits.load(ordering: .relaxed) == 2)
  }

  @Test func aRunThatEndsWakesSleepingWaiters() {
    let barrier = TranslationFlushBarrier(vcpuCount: 2)
    barrier.enteringGuest(1)
    barrier.await(1, by: 0)
    barrier.waiters.add(1, ordering: .sequentiallyConsistent)
    #expect(barrier.leftGuest(1))
    #expect(barrier.settle(0))
  }

  @Test func markingIsIdempotentAndTheCallerNeverWaitsForItself() {
    let barrier = TranslationFlushBarrier(vcpuCount: 2)
    barrier.enteringGuest(0)
    barrier.enteringGuest(0)
    #expect(barrier.slots[0].runState.load(ordering: .relaxed) == 1)
    barrier.await(0, by: 0)
    #expect(!barrier.hasAwaited(0))
    _ = barrier.leftGuest(0)
    _ = barrier.leftGuest(0)
    #expect(barrier.slots[0].runState.load(ordering: .relaxed) == 2)
    barrier.await(5, by: 0)  // no such vCPU
    #expect(!barrier.hasAwaited(0))
  }

  @Test func oneVCPUTracksNothing() {
    let barrier = TranslationFlushBarrier(vcpuCount: 1)
    #expect(!barrier.tracking)
    barrier.enteringGuest(0)
    #expect(barrier.slots[0].runState.load(ordering: .relaxed) == 0)
    #expect(!barrier.leftGuest(0))
  }

  @Test func abandoningForgetsTheWait() {
    let barrier = TranslationFlushBarrier(vcpuCount: 2)
    barrier.enteringGuest(1)
    barrier.await(1, by: 0)
    barrier.abandon(0)
    #expect(!barrier.hasAwaited(0))
  }
}

/// The runner's side of `TranslationFlushBarrier`: engine runs marked on it, and the wait after a
/// hypercall that flushed other vCPUs.
extension VCPURunner {
  /// The engine's run, with the barrier told when it returned (the mark before it is taken under
  /// the machine lock in the run loop: `TranslationFlushBarrier.enteringGuest`).
  func runGuest(budget: UInt64?) throws(EngineError) -> VMExit {
    let barrier = machine.paravirt.flushBarrier
    guard barrier.tracking else { return try vcpu.run(budget: budget) }
    defer { if barrier.leftGuest(index) { wakeFlushWaiters() } }
    return try vcpu.run(budget: budget)
  }

  /// Wakes the runners sleeping in `awaitRemoteFlushes`.
  private func wakeFlushWaiters() {
    let barrier = machine.paravirt.flushBarrier
    for runner in machine.runners where barrier.slots[runner.index].waiting.load(ordering: .sequentiallyConsistent) {
      runner.wakeup.signal()
    }
  }

  /// After a hypercall, the machine lock released: sleeps until every vCPU this one asked to
  /// flush and that was running guest code then has left that run. A control request (stop,
  /// pause, reset) or the run's timeout calls the wait off: the run loop acts on it next.
  func awaitRemoteFlushes() {
    let barrier = machine.paravirt.flushBarrier
    guard barrier.hasAwaited(index) else { return }
    let slot = barrier.slots[index]
    slot.waiting.store(true, ordering: .sequentiallyConsistent)
    barrier.waiters.add(1, ordering: .sequentiallyConsistent)
    defer {
      barrier.waiters.subtract(1, ordering: .sequentiallyConsistent)
      slot.waiting.store(false, ordering: .sequentiallyConsistent)
      barrier.abandon(index)
    }
    while !barrier.settle(index) {
      if machine.control.hasChanged(since: controlSeen) { return }
      let now = machine.hostClock.nanoseconds
      if let t = machine.timeoutDeadline, now >= t { return }
      wakeup.wait(timeout: machine.timeoutDeadline.map { $0 - now })
    }
  }
}

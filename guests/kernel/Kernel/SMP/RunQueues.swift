/// One run queue per CPU: task slots in FIFO order, guarded by the scheduler's lock (the caller
/// holds it for every method here). A CPU takes from its own queue first and otherwise steals the
/// oldest unpinned task from the longest other queue; new and woken tasks are pushed to an idle
/// CPU when there is one (push balancing), yielded and preempted ones stay on their CPU.
struct RunQueues {
  private let slots: UnsafeMutablePointer<Int>
  private let counts: UnsafeMutablePointer<Int>
  private let capacity: Int

  init(cpus: Int, capacity: Int) {
    self.capacity = capacity
    slots = UnsafeMutablePointer<Int>.allocate(capacity: cpus * capacity)
    slots.initialize(repeating: -1, count: cpus * capacity)
    counts = UnsafeMutablePointer<Int>.allocate(capacity: cpus)
    counts.initialize(repeating: 0, count: cpus)
  }

  func count(_ cpu: Int) -> Int { counts[cpu] }

  func push(_ slot: Int, cpu: Int) {
    slots[cpu * capacity + counts[cpu]] = slot
    counts[cpu] += 1
  }

  /// Removes and returns entry `position` of CPU `cpu`'s queue.
  private func remove(cpu: Int, at position: Int) -> Int {
    let base = slots + cpu * capacity
    let slot = base[position]
    var index = position
    while index + 1 < counts[cpu] {
      base[index] = base[index + 1]
      index += 1
    }
    counts[cpu] -= 1
    return slot
  }

  func popFirst(cpu: Int) -> Int? {
    counts[cpu] > 0 ? remove(cpu: cpu, at: 0) : nil
  }

  /// The oldest task that `mayRun` allows on `cpu` from the longest other queue holding one.
  func steal(for cpu: Int, cpus: Int, mayRun: (Int) -> Bool) -> Int? {
    var victim = -1
    var victimPosition = 0
    for other in 0..<cpus where other != cpu && counts[other] > 0 {
      guard victim < 0 || counts[other] > counts[victim] else { continue }
      for position in 0..<counts[other] where mayRun(slots[other * capacity + position]) {
        victim = other
        victimPosition = position
        break
      }
    }
    return victim >= 0 ? remove(cpu: victim, at: victimPosition) : nil
  }
}

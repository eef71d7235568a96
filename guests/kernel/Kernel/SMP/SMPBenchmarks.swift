/// The multiprocessor benchmarks (`bench smp`), run by BenchmarkSuite between its markers:
/// - `ipi`: a cross-call round trip to CPU 1 (IPI, the target wakes and runs the handler, writes
///   the answer; the boot CPU polls for it);
/// - `tlbshoot`: one page shot down on every other CPU, acknowledged by all;
/// - `spinlock`: every CPU takes and releases one ticket lock in a loop (ns per acquisition over all
///   CPUs' acquisitions: contention makes it grow with the CPU count); the CPUs first meet at a
///   start barrier, so they really contend (an AP that answers its cross-call late would
///   otherwise find the boot CPU done);
/// - `parallel`: a fixed CPU-bound ring-3 job split into four tasks, timed from the first spawn to
///   the last exit; the same job on 1, 2 and 4 vCPUs gives the speedup.
enum SMPBenchmarks {
  private static var benchLock: TicketLock! = nil
  private static var lockedCounter: UInt64 = 0
  /// The spinlock benchmark's start barrier: CPUs that arrived, and how many take part.
  private static var arrived: AtomicWord! = nil
  private static var participants: UInt64 = 0
  static let parallelTasks = 4

  static func initialize() {
    benchLock = TicketLock()
    arrived = AtomicWord()
  }

  /// Runs on every CPU of the spinlock benchmark (the APs through a cross-call): waits until every
  /// participant arrived, then takes and releases the lock `iterations` times.
  /// Returns the TSC when it passed the barrier.
  static func contendLock(iterations: Int) -> UInt64 {
    arrived.add(1)
    while arrived.load() < participants { Platform.spinWaitHint() }
    let started = Platform.readTimestampCounter()
    for _ in 0..<iterations {
      benchLock.acquire()
      lockedCounter += 1
      benchLock.release()
    }
    return started
  }

  /// Cycles for `iterations` IPI round trips to CPU 1; nil with fewer than two CPUs.
  static func interprocessorInterrupt(iterations: Int) -> UInt64? {
    guard SMP.isOnline(1) else { return nil }
    let start = Platform.readTimestampCounter()
    for iteration in 0..<iterations {
      guard CrossCall.call(.echo, argument: UInt64(iteration), onCPU: 1) == UInt64(iteration) + 1 else { return nil }
    }
    return Platform.readTimestampCounter() &- start
  }

  static func tlbShootdown(iterations: Int) -> UInt64? {
    guard SMP.onlineCount > 1 else { return nil }
    let start = Platform.readTimestampCounter()
    for _ in 0..<iterations {
      guard TLBShootdown.invalidatePage(SMPSelfTest.scratchPage) else { return nil }
    }
    return Platform.readTimestampCounter() &- start
  }

  /// Cycles for `iterations` acquisitions on every online CPU; the total acquisitions in `count`.
  static func spinLock(iterations: Int) -> (cycles: UInt64, acquisitions: Int)? {
    lockedCounter = 0
    arrived.store(0)
    participants = 1
    for cpu in 1..<max(SMP.cpuSlots, 1) where SMP.isOnline(cpu) { participants += 1 }
    var posted: [(cpu: Int, before: UInt64)] = []
    for cpu in 1..<max(SMP.cpuSlots, 1) where SMP.isOnline(cpu) {
      posted.append((cpu, CrossCall.post(.contendLock, argument: UInt64(iterations), toCPU: cpu)))
    }
    // Timed from the boot CPU's pass through the start barrier: the contended part only.
    let start = contendLock(iterations: iterations)
    for (cpu, before) in posted where CrossCall.wait(cpu: cpu, before: before) == nil { return nil }
    let cycles = Platform.readTimestampCounter() &- start
    let acquisitions = iterations * (posted.count + 1)
    guard lockedCounter == UInt64(acquisitions) else { return nil }
    return (cycles, acquisitions)
  }

  /// Cycles for the whole parallel job of `parallelTasks` x `units` work units.
  static func parallel(units: Int) -> UInt64? {
    let start = Platform.readTimestampCounter()
    var pids: [Int] = []
    for _ in 0..<parallelTasks {
      guard let pid = Scheduler.spawn(.benchParallelWork, argument: units) else { return nil }
      pids.append(pid)
    }
    Scheduler.runUntilAllExited()
    let cycles = Platform.readTimestampCounter() &- start
    for pid in pids {
      guard let result = Scheduler.reap(pid), result.killedBy == nil, result.status == 0 else { return nil }
    }
    return cycles
  }
}

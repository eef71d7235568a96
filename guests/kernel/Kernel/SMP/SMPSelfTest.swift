/// The self-test's multiprocessor checks (SelfTest.swift runs them on the boot CPU after the
/// uniprocessor ones) and the per-CPU lines
/// `SMP-CPU cpu=<i> apic=<id> online tasks=<n> stolen=<n> migrations=<n> preemptions=<n> ticks=<n>
/// reschedules=<n> shootdowns=<n> calls=<n>`.
/// With one CPU (no MADT) the IPI and shootdown checks have no other CPU to ask and pass.
enum SMPSelfTest {
  /// The lock-protected counter tasks on every CPU increment through a system call.
  private static var sharedCounter: UInt64 = 0
  private static var counterLock: TicketLock! = nil
  /// Increments per task of the counter check.
  static let incrementsPerTask = 100
  /// A kernel page the shootdown check remaps (the ELF loader's command-line area, read at boot).
  static let scratchPage: UInt64 = 0x6000

  static func initialize() { counterLock = TicketLock() }

  /// The system call's work: a read-modify-write with a gap, so that without the lock concurrent
  /// increments would be lost.
  static func incrementSharedCounter() {
    counterLock.acquire()
    let value = sharedCounter
    Platform.spinWaitHint()
    sharedCounter = value + 1
    counterLock.release()
  }

  /// Every CPU the kernel starts came up: all the MADT lists, up to the kernel's limit.
  static func cpusOnline() -> Bool {
    SMP.onlineCount == min(SMP.discoveredCount, KernelLayout.maximumCPUs) || (!SMP.enabled && SMP.onlineCount == 1)
  }

  /// One task pinned to each online CPU reports the CPU it ran on; and every CPU counts at least
  /// one task run.
  static func everyCPURanTasks() -> Bool {
    var pids: [(cpu: Int, pid: Int?)] = []
    for cpu in 0..<SMP.cpuSlots where SMP.isOnline(cpu) {
      pids.append((cpu, Scheduler.spawn(.cpuProbe, affinity: cpu)))
    }
    Scheduler.runUntilAllExited()
    var ok = true
    for (cpu, pid) in pids {
      let result = pid.flatMap { Scheduler.reap($0) }
      if result?.killedBy != nil || result?.status != cpu + 1 { ok = false }
      if PerCPU.cpu(cpu).pointee.tasksRun == 0 { ok = false }
    }
    return ok
  }

  /// One task moves itself to every CPU in turn (set_affinity) and finds itself there each time.
  static func taskMigrates() -> Bool {
    guard let pid = Scheduler.spawn(.migrator, argument: SMP.cpuSlots, affinity: 0) else { return false }
    Scheduler.runUntilAllExited()
    guard let result = Scheduler.reap(pid) else { return false }
    if result.killedBy == nil && result.status > 0 {
      Console.write("SMP: the migrating task did not arrive on cpu ")
      Console.write(decimal: result.status - 1)
      Console.newline()
    }
    return result.killedBy == nil && result.status == 0
  }

  /// One task per online CPU, pinned there, each incrementing the counter; the total is exact.
  static func lockedCounterIsExact() -> Bool {
    sharedCounter = 0
    var pids: [Int] = []
    for cpu in 0..<SMP.cpuSlots where SMP.isOnline(cpu) {
      if let pid = Scheduler.spawn(.sharedCounter, argument: incrementsPerTask, affinity: cpu) { pids.append(pid) }
    }
    Scheduler.runUntilAllExited()
    var ok = pids.count == SMP.onlineCount
    for pid in pids {
      let result = Scheduler.reap(pid)
      if result?.killedBy != nil || result?.status != 0 { ok = false }
    }
    let expected = UInt64(pids.count * incrementsPerTask)
    Console.write("SMP: shared counter ")
    Console.write(unsigned: sharedCounter)
    Console.write(" expected ")
    Console.write(unsigned: expected)
    Console.write(" (lock waits ")
    Console.write(unsigned: counterLock.spins.load())
    Console.write(" pauses)\n")
    return ok && sharedCounter == expected
  }

  /// Every other CPU answers a cross-call IPI with its argument plus one.
  static func interprocessorInterruptsArrive() -> Bool {
    var ok = true
    for cpu in 1..<max(SMP.cpuSlots, 1) where SMP.isOnline(cpu) {
      let argument = UInt64(1000 + cpu)
      if CrossCall.call(.echo, argument: argument, onCPU: cpu) != argument + 1 {
        Console.write("SMP: cpu ")
        Console.write(decimal: cpu)
        Console.write(" did not answer an IPI\n")
        ok = false
      }
    }
    return ok
  }

  /// Every other CPU reads a kernel page (caching its translation), the boot CPU points the page
  /// at another frame and shoots the translation down, and every CPU then reads the new frame.
  static func shootdownIsSeen() -> Bool {
    let others = (1..<max(SMP.cpuSlots, 1)).filter { SMP.isOnline($0) }
    guard !others.isEmpty else { return true }
    guard let first = FrameAllocator.allocate(), let second = FrameAllocator.allocate() else { return false }
    let firstValue: UInt64 = 0xF1F1_0001
    let secondValue: UInt64 = 0x5EC0_0002
    UnsafeMutablePointer<UInt64>(bitPattern: UInt(first))!.pointee = firstValue
    UnsafeMutablePointer<UInt64>(bitPattern: UInt(second))!.pointee = secondValue
    let entry = KernelLayout.firstPageTable + Int(scratchPage >> 12)
    let original = entry.pointee
    Platform.setPageTableEntry(entry, first | 0x3)
    Platform.invalidatePage(scratchPage)
    var ok = TLBShootdown.invalidatePage(scratchPage)
    for cpu in others where CrossCall.call(.read, argument: scratchPage, onCPU: cpu) != firstValue { ok = false }
    Platform.setPageTableEntry(entry, second | 0x3)
    Platform.invalidatePage(scratchPage)
    if !TLBShootdown.invalidatePage(scratchPage) { ok = false }
    for cpu in others {
      let seen = CrossCall.call(.read, argument: scratchPage, onCPU: cpu)
      if seen != secondValue {
        Console.write("SMP: cpu ")
        Console.write(decimal: cpu)
        Console.write(" still sees the old page after the shootdown\n")
        ok = false
      }
    }
    Platform.setPageTableEntry(entry, original)
    Platform.invalidatePage(scratchPage)
    TLBShootdown.invalidatePage(scratchPage)
    FrameAllocator.release(first)
    FrameAllocator.release(second)
    return ok
  }

  /// The per-CPU lines.
  static func report() {
    Console.lock()
    for cpu in 0..<SMP.cpuSlots {
      let data = PerCPU.cpu(cpu).pointee
      Console.write("SMP-CPU cpu=")
      Console.write(decimal: cpu)
      Console.write(" apic=")
      Console.write(decimal: Int(data.apicID))
      Console.write(SMP.isOnline(cpu) ? " online" : " offline")
      Console.write(" tasks=")
      Console.write(unsigned: data.tasksRun)
      Console.write(" stolen=")
      Console.write(unsigned: data.tasksStolen)
      Console.write(" migrations=")
      Console.write(unsigned: data.migrations)
      Console.write(" preemptions=")
      Console.write(unsigned: data.preemptions)
      Console.write(" ticks=")
      Console.write(unsigned: data.timerTicks)
      Console.write(" reschedules=")
      Console.write(unsigned: data.reschedulesReceived)
      Console.write(" shootdowns=")
      Console.write(unsigned: data.shootdownsServed)
      Console.write(" calls=")
      Console.write(unsigned: data.crossCallsServed)
      Console.newline()
    }
    Console.write("SMP-SUMMARY cpus=")
    Console.write(decimal: SMP.discoveredCount)
    Console.write(" online=")
    Console.write(decimal: SMP.onlineCount)
    Console.write(" ipis_sent=")
    Console.write(unsigned: SMP.interruptsSent.load())
    Console.write(" shootdown_requests=")
    Console.write(decimal: TLBShootdown.requests)
    Console.newline()
    Console.unlock()
  }
}

/// The boot self-test: prints `PASS name` or `FAIL name` per check, then
/// `SELFTEST SUMMARY pass=N fail=M`; the run's exit status is 0 when nothing failed.
enum SelfTest {
  private static var passed = 0
  private static var failed = 0

  static func run(injectFailure: Bool) -> Int {
    check("boot", true)
    let ticking = Timer.isTicking()
    check("timer-interrupts", ticking)
    check("tsc-calibration", Timer.timestampFrequency > 0)
    guard ticking else {
      // Sleeping and preemption need the timer: stop rather than wait forever.
      Console.write("SELFTEST stopped: no timer interrupts\n")
      return summary()
    }

    let (getpidPID, getpid) = runAlone(.getpid)
    check("syscall-getpid", getpid.map { $0.killedBy == nil && $0.status == getpidPID } ?? false)
    check("syscall-write", exitedCleanly(runAlone(.write).result))
    check("syscall-mmap-munmap", exitedCleanly(runAlone(.mmap).result))
    check("syscall-exit-status", runAlone(.exitStatus, argument: 42).result.map { $0.status == 42 } ?? false)
    check("syscall-sleep", exitedCleanly(runAlone(.sleep, argument: 3).result))

    let switchesBefore = Scheduler.contextSwitches
    let pingPong = runTogether(.yieldPingPong, .yieldPingPong, argument: 10)
    check("tasks-yield-round-robin", pingPong && Scheduler.contextSwitches - switchesBefore >= 20)
    let preemptionsBefore = Scheduler.preemptions
    let spinners = runTogether(.spin, .spin, argument: 4, affinity: 0)  // two tasks, one CPU
    check("preemptive-scheduling", spinners && Scheduler.preemptions - preemptionsBefore >= 2)

    check("clock-page-read-only", killed(.clockPage, by: Exceptions.pageFault))
    check("demand-paging", exitedCleanly(runAlone(.demandPaging).result))
    check("divide-error-handler", exitedCleanly(runAlone(.divideHandler).result))
    check("fault-unmapped-write-killed", killed(.faultUnmappedWrite, by: Exceptions.pageFault))
    check("fault-kernel-write-killed", killed(.faultKernelWrite, by: Exceptions.pageFault))
    check("fault-divide-by-zero-killed", killed(.faultDivideByZero, by: Exceptions.divideError))
    check("fault-privileged-instruction-killed", killed(.faultPrivileged, by: 13))
    let forged = runAlone(.forgedSyscallEntry, argument: Int(KernelLayout.syscallEntry)).result
    check("forged-syscall-entry-contained", forged.map { $0.killedBy == 13 } ?? false)
    let (afterPID, after) = runAlone(.getpid)
    check("kernel-survives-faults", after.map { $0.killedBy == nil && $0.status == afterPID } ?? false)
    check("user-cpu-work", exitedCleanly(runAlone(.cpuWork).result))
    check("smp-cpus-online", SMPSelfTest.cpusOnline())
    check("smp-every-cpu-ran-tasks", SMPSelfTest.everyCPURanTasks())
    check("smp-task-migration", SMPSelfTest.taskMigrates())
    check("smp-ipi-delivery", SMPSelfTest.interprocessorInterruptsArrive())
    check("smp-tlb-shootdown", SMPSelfTest.shootdownIsSeen())
    check("smp-lock-counter-exact", SMPSelfTest.lockedCounterIsExact())
    SMPSelfTest.report()
    check("no-leaked-frames", FrameAllocator.framesInUse == 0)
    if injectFailure { check("injected-failure", false) }

    return summary()
  }

  private static func summary() -> Int {
    Console.write("SELFTEST SUMMARY pass=")
    Console.write(decimal: passed)
    Console.write(" fail=")
    Console.write(decimal: failed)
    Console.newline()
    return failed == 0 ? 0 : 1
  }

  private static func check(_ name: StaticString, _ ok: Bool) {
    Console.lock()
    Console.write(ok ? "PASS " : "FAIL ")
    Console.write(name)
    Console.newline()
    Console.unlock()
    if ok { passed += 1 } else { failed += 1 }
  }

  private static func exitedCleanly(_ result: TaskResult?) -> Bool {
    guard let result else { return false }
    return result.killedBy == nil && result.status == 0
  }

  private static func killed(_ program: UserProgram, by vector: Int) -> Bool {
    runAlone(program).result.map { $0.killedBy == vector } ?? false
  }

  /// Runs one task to completion; its pid and result (nil when it could not start).
  private static func runAlone(_ program: UserProgram, argument: Int = 0) -> (pid: Int, result: TaskResult?) {
    guard let pid = Scheduler.spawn(program, argument: argument) else { return (0, nil) }
    Scheduler.runUntilAllExited()
    return (pid, Scheduler.reap(pid))
  }

  /// Runs two tasks side by side; true when both exited with status 0.
  private static func runTogether(
    _ first: UserProgram, _ second: UserProgram, argument: Int, affinity: Int? = nil
  ) -> Bool {
    let a = Scheduler.spawn(first, argument: argument, affinity: affinity)
    let b = Scheduler.spawn(second, argument: argument, affinity: affinity)
    Scheduler.runUntilAllExited()
    let resultA = a.flatMap { Scheduler.reap($0) }
    let resultB = b.flatMap { Scheduler.reap($0) }
    return exitedCleanly(resultA) && exitedCleanly(resultB)
  }
}

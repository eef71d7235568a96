/// Where every task starts (from `user_start` in Arch/user.S); the result is the exit status.
@_cdecl("user_main")
func userMain(_ program: Int, _ argument: Int) -> Int {
  guard let program = UserProgram(rawValue: program) else { return 127 }
  switch program {
  case .getpid: return Kernel.getpid()
  case .write: return SelfTestPrograms.write()
  case .mmap: return SelfTestPrograms.mapAndUnmap()
  case .yieldPingPong:
    for _ in 0..<argument { Kernel.yield() }
    return 0
  case .sleep: return SelfTestPrograms.sleep(ticks: argument)
  case .spin: return SelfTestPrograms.spin(ticks: argument)
  case .faultUnmappedWrite:
    Kernel.memory(UserWindow.base).pointee = 1
    return 0
  case .faultKernelWrite:
    Kernel.memory(0x10_0000).pointee = 1
    return 0
  case .faultDivideByZero: return user_divide_by_zero_loop(-1)
  case .faultPrivileged:
    user_privileged_instruction()
    return 0
  case .forgedSyscallEntry: return user_forged_syscall_entry(argument)
  case .clockPage: return SelfTestPrograms.clockPage()
  case .demandPaging: return SelfTestPrograms.demandPaging()
  case .divideHandler: return user_divide_by_zero_loop(5)
  case .exitStatus: return argument
  case .cpuWork: return SelfTestPrograms.cpuWork()
  case .benchSyscall: return Benchmarks.syscall(iterations: argument)
  case .benchPageFault: return Benchmarks.pageFault(iterations: argument)
  case .benchDivideByZero: return Benchmarks.divideByZero(iterations: argument)
  case .benchContextSwitch: return Benchmarks.contextSwitch(argument: argument)
  case .benchTimerInterrupt: return Benchmarks.timerInterrupt(argument: argument)
  case .benchHash: return Benchmarks.hash(iterations: argument)
  case .benchSort: return Benchmarks.sort(iterations: argument)
  case .benchMatrix: return Benchmarks.matrix(iterations: argument)
  case .cpuProbe: return Kernel.call(.cpuIndex) + 1
  case .migrator:
    for cpu in 0..<argument {
      guard Kernel.call(.setAffinity, cpu) == 0, Kernel.call(.cpuIndex) == cpu else { return 1 + cpu }
    }
    _ = Kernel.call(.setAffinity, -1)
    return 0
  case .sharedCounter:
    for _ in 0..<argument { _ = Kernel.call(.sharedCounterIncrement) }
    return 0
  case .benchParallelWork: return Benchmarks.parallelWork(units: argument)
  }
}

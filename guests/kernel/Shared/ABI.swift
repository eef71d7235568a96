// The ABI between the kernel and its ring-3 programs. This file is compiled into both the kernel
// and the user module, so both sides agree on every number.

/// System call numbers: RAX = number, arguments in RDI, RSI, RDX; result in RAX (negative = -errno).
/// SYSCALL clobbers RCX and R11.
enum SystemCall: Int {
  /// write(fd, buffer, length) -> length. fd 1 and 2 go to the serial console.
  case write = 0
  /// exit(status): ends the task.
  case exit = 1
  /// yield(): gives the CPU to the next runnable task.
  case yield = 2
  /// getpid() -> task id.
  case getpid = 3
  /// sleep(ticks): blocks for that many timer ticks.
  case sleep = 4
  /// mmap(address) -> address: maps a zeroed read-write page at a page-aligned address of the
  /// mmap area (not the clock page).
  case mmap = 5
  /// munmap(address) -> 0: unmaps a page of the user window (not the clock page).
  case munmap = 6
  /// ticks() -> timer ticks since boot.
  case ticks = 7
  /// set_trap_handler(vector, resume) -> 0: on that exception (only #DE, vector 0) resume at
  /// `resume` instead of killing the task. resume = 0 restores the default.
  case setTrapHandler = 8
  /// bench_report(benchmark, iterations, cycles) -> 0: the kernel prints the BENCH line.
  case benchReport = 9
  /// tsc_hz() -> the calibrated time-stamp counter frequency.
  case tscHz = 10
  /// cpu_index() -> the index of the CPU running the caller (0 = the boot CPU).
  case cpuIndex = 11
  /// shared_counter_increment() -> 0: adds one to the self-test's lock-protected kernel counter.
  case sharedCounterIncrement = 12
  /// set_affinity(cpu) -> 0: from now on run only on CPU `cpu` (-1: any), moving there at once
  /// (-EINVAL for a CPU that is not online).
  case setAffinity = 13
  /// preemptions() -> how many times the timer has preempted the calling task.
  case preemptions = 14
}

/// Error numbers returned (negated) by system calls.
enum SystemCallError: Int {
  case invalidArgument = 22  // EINVAL
  case noMemory = 12  // ENOMEM
  case badAddress = 14  // EFAULT
  case noSystemCall = 38  // ENOSYS
}

/// The user window: every task's private memory is one 2 MiB range, mapped by one page table.
enum UserWindow {
  static let base: UInt64 = 0x80_0000_0000
  static let size: UInt64 = 0x20_0000
  /// [base, base + mmapAreaSize): pages mapped only by mmap.
  static let mmapAreaSize: UInt64 = 0x10_0000
  /// [base + mmapAreaSize, base + size): demand-zero pages (stack at the top).
  static let demandAreaStart: UInt64 = base + mmapAreaSize
  static let stackTop: UInt64 = base + size
  static let pageSize: UInt64 = 4096
  /// The last page of the mmap area: the kernel's clock page, mapped read-only in every task.
  static let clockPage: UInt64 = base + mmapAreaSize - pageSize
}

/// The clock page's layout: what the kernel publishes for ring 3 to read without a system call.
enum ClockPageLayout {
  /// UInt64: timer ticks since boot, updated by every timer interrupt.
  static let ticksOffset = 0
  /// UInt64: the calibrated TSC frequency in Hz.
  static let timestampFrequencyOffset = 8
  /// UInt64: the timer frequency in Hz.
  static let timerHertzOffset = 16
}

/// The ring-3 programs the kernel can start (`user_main(program, argument)`).
enum UserProgram: Int {
  case getpid = 1
  case write = 2
  case mmap = 3
  case yieldPingPong = 4
  case sleep = 5
  case spin = 6
  case faultUnmappedWrite = 7
  case faultDivideByZero = 8
  case faultPrivileged = 9
  case faultKernelWrite = 10
  case demandPaging = 11
  case divideHandler = 12
  case exitStatus = 13
  case cpuWork = 14
  case forgedSyscallEntry = 15
  case clockPage = 16
  /// Exits with status cpu_index() + 1.
  case cpuProbe = 17
  /// Calls shared_counter_increment `argument` times.
  case sharedCounter = 18
  /// Moves itself to each of CPUs 0..<argument in turn with set_affinity and checks cpu_index()
  /// there; exits with 0, or 1 + the CPU it did not arrive on.
  case migrator = 19
  case benchSyscall = 20
  case benchPageFault = 21
  case benchDivideByZero = 22
  case benchContextSwitch = 23
  case benchTimerInterrupt = 24
  case benchHash = 25
  case benchSort = 26
  case benchMatrix = 27
  /// `argument` units of register-only integer work (the parallel benchmark's share).
  case benchParallelWork = 28
}

/// Benchmarks, in the order they run; `name` is what the BENCH line prints.
enum Benchmark: Int, CaseIterable {
  case syscall = 0
  case portIn = 1
  case portOut = 2
  case cr3Write = 3
  case cr8Write = 4
  case pageFault = 5
  case divideByZero = 6
  case pteUpdate = 7
  case contextSwitch = 8
  case timerInterrupt = 9
  case hash = 10
  case sort = 11
  case matrix = 12
  // The SMP suite (`bench smp`).
  case interprocessorInterrupt = 13
  case tlbShootdown = 14
  case spinLock = 15
  case parallel = 16
  // Added to the default suite later (their marker ids follow the multiprocessor suite's).
  case pageTableBatch = 17
  case consoleLine = 18

  /// The default suite's benchmarks (`bench`), in the order they run.
  static let uniprocessorSuite: [Int] = [0, 1, 2, 3, 4, 5, 6, 7, 17, 8, 9, 18, 10, 11, 12]
  /// `bench smp`.
  static let multiprocessorSuite: ClosedRange<Int> = 13...16

  var name: StaticString {
    switch self {
    case .syscall: "syscall"
    case .portIn: "in"
    case .portOut: "out"
    case .cr3Write: "cr3wr"
    case .cr8Write: "cr8wr"
    case .pageFault: "pgfault"
    case .divideByZero: "divzero"
    case .pteUpdate: "ptemod"
    case .pageTableBatch: "ptebatch"
    case .consoleLine: "console"
    case .contextSwitch: "ctxswitch"
    case .timerInterrupt: "timerirq"
    case .hash: "hash"
    case .sort: "sort"
    case .matrix: "matmul"
    case .interprocessorInterrupt: "ipi"
    case .tlbShootdown: "tlbshoot"
    case .spinLock: "spinlock"
    case .parallel: "parallel"
    }
  }
}

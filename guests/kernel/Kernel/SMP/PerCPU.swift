/// What the kernel keeps per CPU, in that CPU's page of `KernelLayout.perCPUPages`. GS holds the
/// page's address in ring 0 (IA32_GS_BASE; ring 3 runs with GS base 0 and the entry paths SWAPGS,
/// Arch/traps.S), and the first three words are read by assembly at fixed offsets: the page's own
/// address (0), the kernel stack `syscall_entry` switches to (8) and its scratch word (16). The
/// CPU's TSS lives at `taskStateOffset` in the same page.
struct PerCPU {
  /// Offset 0: the page's own address (`Platform.perCPUPage()` reads it through GS).
  var selfAddress: UInt64 = 0
  /// Offset 8: the ring-0 stack of the task running here (the SYSCALL entry's stack).
  var kernelStackTop: UInt64 = 0
  /// Offset 16: the SYSCALL entry's copy of the user RSP.
  var userStackScratch: UInt64 = 0
  /// 0 for the boot CPU, then in MADT order.
  var index = 0
  var apicID: UInt32 = 0
  /// Set by the CPU itself when it is ready to run tasks.
  var online: UInt64 = 0

  // The scheduler's state for this CPU (Kernel/Scheduler.swift).
  /// The task slot running here, -1 when the scheduler loop runs.
  var currentSlot = -1
  /// What the task that just switched back to the scheduler asked for.
  var request = SchedulerRequest.none
  /// The CR3 loaded here (the page-table root), read by other CPUs deciding shootdown targets.
  var loadedRoot: UInt64 = 0
  /// 1 while the scheduler loop halts waiting for work (a reschedule IPI wakes it).
  var idle: UInt64 = 0

  // Statistics, printed as the self-test's per-CPU lines.
  var tasksRun: UInt64 = 0
  var tasksStolen: UInt64 = 0
  /// Tasks this CPU sent to the CPU they were pinned to (set_affinity).
  var migrations: UInt64 = 0
  var preemptions: UInt64 = 0
  var timerTicks: UInt64 = 0
  var reschedulesReceived: UInt64 = 0
  var shootdownsServed: UInt64 = 0
  var crossCallsServed: UInt64 = 0

  // The cross-call mailbox (Kernel/SMP/CrossCall.swift).
  var crossCallFunction: UInt64 = 0
  var crossCallArgument: UInt64 = 0
  var crossCallResult: UInt64 = 0
  /// Incremented when the function has run (the caller polls it).
  var crossCallsDone: UInt64 = 0

  static let pageSize: UInt64 = 4096
  static let taskStateOffset = 2048

  /// This CPU's data.
  static var current: UnsafeMutablePointer<PerCPU> {
    UnsafeMutablePointer(bitPattern: UInt(Platform.perCPUPage()))!
  }

  /// CPU `index`'s data (valid for every index below `KernelLayout.maximumCPUs`).
  static func cpu(_ index: Int) -> UnsafeMutablePointer<PerCPU> {
    UnsafeMutablePointer(bitPattern: UInt(KernelLayout.perCPUPages + UInt64(index) * pageSize))!
  }

  static func taskStateSegment(_ cpu: UnsafeMutablePointer<PerCPU>) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(cpu) + taskStateOffset
  }

  /// Prepares CPU `index`'s page before the CPU uses it (the boot CPU's from kmain, an AP's from
  /// the boot CPU before its start-up IPI).
  static func prepare(index: Int, apicID: UInt32) -> UnsafeMutablePointer<PerCPU> {
    let cpu = Self.cpu(index)
    cpu.initialize(to: PerCPU())
    cpu.pointee.selfAddress = UInt64(UInt(bitPattern: cpu))
    cpu.pointee.index = index
    cpu.pointee.apicID = apicID
    let faultStack =
      index == 0
      ? KernelLayout.doubleFaultStackTop
      : KernelLayout.cpuFaultStacks + UInt64(index + 1) * KernelLayout.cpuFaultStackSize
    TaskStateSegment.initialize(cpu: cpu, doubleFaultStackTop: faultStack)
    return cpu
  }

  /// The top of an AP's scheduler stack.
  static func schedulerStackTop(_ index: Int) -> UInt64 {
    KernelLayout.cpuStacks + UInt64(index + 1) * KernelLayout.cpuStackSize
  }
}

/// A per-CPU field other CPUs read or write, for atomic access: `shared(&cpu.pointee.online)`.
/// The field lives in a per-CPU page, so its address outlives the call.
func shared(_ field: UnsafeMutablePointer<UInt64>) -> AtomicWord { AtomicWord(at: field) }

/// What a task asks of the scheduler loop when it switches back to it.
enum SchedulerRequest {
  case none
  case yield
  case preempted
  case sleep
  case exit
}

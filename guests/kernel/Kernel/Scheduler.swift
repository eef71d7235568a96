@_extern(c, "switch_context") func switch_context(_ save: UnsafeMutablePointer<UInt64>, _ next: UInt64)

/// A preemptive round-robin scheduler over a fixed table of tasks. The scheduler loop runs on the
/// boot stack; tasks switch to it (and it to them) with `switch_context`. The kernel is never
/// preempted: interrupts are off in ring 0 except while the loop idles.
enum Scheduler {
  private static var tasks: UnsafeMutablePointer<Task>! = nil
  /// Saved kernel stack pointers: one per task slot, then the scheduler's own.
  private static var stackPointers: UnsafeMutablePointer<UInt64>! = nil
  private static var current = -1
  private static var lastScheduled = -1
  private static var nextPID = 1
  private(set) static var contextSwitches = 0
  private(set) static var preemptions = 0

  static func initialize() {
    let count = KernelLayout.maximumTasks
    tasks = UnsafeMutablePointer<Task>.allocate(capacity: count)
    tasks.initialize(repeating: Task(), count: count)
    stackPointers = UnsafeMutablePointer<UInt64>.allocate(capacity: count + 1)
    stackPointers.initialize(repeating: 0, count: count + 1)
  }

  private static var schedulerStackPointer: UnsafeMutablePointer<UInt64> {
    stackPointers + KernelLayout.maximumTasks
  }

  static var currentPID: Int { current >= 0 ? tasks[current].pid : 0 }

  private static func stackTop(_ slot: Int) -> UInt64 {
    KernelLayout.taskStacks + UInt64(slot + 1) * KernelLayout.taskStackSize
  }

  /// Creates a runnable task executing `user_main(program, argument)` in ring 3.
  static func spawn(_ program: UserProgram, argument: Int = 0) -> Int? {
    var slot = 0
    while slot < KernelLayout.maximumTasks && tasks[slot].state != .free { slot += 1 }
    guard slot < KernelLayout.maximumTasks, let space = AddressSpace.create() else { return nil }
    // The new kernel stack: the user frame at the top, below it trap_return as the return address
    // of switch_context, below that its six callee-saved registers.
    let top = stackTop(slot)
    let framePointer = top - UInt64(TrapFrame.size)
    UnsafeMutablePointer<TrapFrame>(bitPattern: UInt(framePointer))!.pointee =
      TrapFrame.newTask(program: program.rawValue, argument: argument)
    let returnAddress = UnsafeMutablePointer<UInt64>(bitPattern: UInt(framePointer - 8))!
    returnAddress.pointee = KernelLayout.trapReturn
    let saved = UnsafeMutablePointer<UInt64>(bitPattern: UInt(framePointer - 8 - 48))!
    saved.initialize(repeating: 0, count: 6)
    stackPointers[slot] = framePointer - 8 - 48
    let pid = nextPID
    nextPID += 1
    tasks[slot] = Task(state: .runnable, pid: pid, addressSpace: space)
    return pid
  }

  /// Runs tasks until none is left alive.
  static func runUntilAllExited() {
    while true {
      guard let slot = pickNext() else {
        if !anyAlive() { return }
        Platform.waitForInterrupt()
        continue
      }
      run(slot)
    }
  }

  private static func pickNext() -> Int? {
    let count = KernelLayout.maximumTasks
    for step in 1...count {
      let slot = (lastScheduled + step) % count
      if tasks[slot].state == .runnable { return slot }
    }
    return nil
  }

  private static func anyAlive() -> Bool {
    for slot in 0..<KernelLayout.maximumTasks {
      switch tasks[slot].state {
      case .runnable, .running, .sleeping: return true
      case .free, .exited: continue
      }
    }
    return false
  }

  private static func run(_ slot: Int) {
    guard let root = tasks[slot].addressSpace?.root else { return }
    current = slot
    lastScheduled = slot
    tasks[slot].state = .running
    Platform.setKernelStack(stackTop(slot))
    if Platform.currentAddressSpace() != root { Platform.switchAddressSpace(root) }
    contextSwitches += 1
    switch_context(schedulerStackPointer, stackPointers[slot])
    current = -1
    if tasks[slot].state == .exited, var space = tasks[slot].addressSpace {
      Platform.switchAddressSpace(KernelLayout.kernelPML4)
      space.destroy()
      tasks[slot].addressSpace = nil
    }
  }

  /// Back to the scheduler loop from the current task's kernel stack.
  private static func switchToScheduler() {
    switch_context(stackPointers + current, schedulerStackPointer.pointee)
  }

  static func yieldCurrent() {
    guard current >= 0 else { return }
    tasks[current].state = .runnable
    switchToScheduler()
  }

  /// The timer's preemption: switch only when another task is waiting to run.
  static func preemptCurrent() {
    guard current >= 0, pickNext() != nil else { return }
    preemptions += 1
    yieldCurrent()
  }

  static func sleepCurrent(ticks: UInt64) {
    guard current >= 0 else { return }
    tasks[current].wakeTick = Timer.ticks + ticks
    tasks[current].state = .sleeping
    switchToScheduler()
  }

  static func wakeSleepers(now: UInt64) {
    guard let tasks else { return }
    for slot in 0..<KernelLayout.maximumTasks where tasks[slot].state == .sleeping && tasks[slot].wakeTick <= now {
      tasks[slot].state = .runnable
    }
  }

  static func exitCurrent(status: Int, killedBy: Int?) -> Never {
    tasks[current].state = .exited
    tasks[current].result = TaskResult(status: status, killedBy: killedBy)
    switchToScheduler()
    Platform.haltForever()  // never resumed
  }

  /// The result of an exited task, freeing its slot.
  static func reap(_ pid: Int) -> TaskResult? {
    for slot in 0..<KernelLayout.maximumTasks where tasks[slot].pid == pid && tasks[slot].state == .exited {
      tasks[slot].state = .free
      return tasks[slot].result
    }
    return nil
  }

  // MARK: The current task's memory

  static func mapDemandPage(_ page: UInt64) -> Bool {
    guard current >= 0 else { return false }
    return tasks[current].addressSpace?.map(page) ?? false
  }

  static func withCurrentAddressSpace<R>(_ body: (inout AddressSpace) -> R) -> R? {
    guard current >= 0, tasks[current].addressSpace != nil else { return nil }
    return body(&tasks[current].addressSpace!)
  }

  static func divideErrorResume() -> UInt64? {
    guard current >= 0, tasks[current].divideErrorResume != 0 else { return nil }
    return tasks[current].divideErrorResume
  }

  static func setDivideErrorResume(_ address: UInt64) {
    guard current >= 0 else { return }
    tasks[current].divideErrorResume = address
  }
}

@_extern(c, "switch_context") func switch_context(_ save: UnsafeMutablePointer<UInt64>, _ next: UInt64)

/// A preemptive scheduler over a fixed table of tasks, with one run queue per CPU
/// (Kernel/SMP/RunQueues.swift). Every CPU runs the scheduler loop on its own stack (the boot CPU
/// on the boot stack, until the tasks it waits for have exited; an AP forever); a task switches
/// back to its CPU's loop with `switch_context` after recording what it asks for (yield, sleep,
/// exit) in the per-CPU data, and the loop carries that out once the task's registers are saved,
/// so no other CPU can pick the task up while it is still on its stack. The kernel is never
/// preempted: interrupts are off in ring 0 except while a loop idles. One ticket lock guards the
/// task table and the run queues; it is never held across a context switch or a TLB shootdown.
enum Scheduler {
  private static var tasks: UnsafeMutablePointer<Task>! = nil
  /// Saved kernel stack pointers, one per task slot.
  private static var stackPointers: UnsafeMutablePointer<UInt64>! = nil
  /// Each CPU's scheduler loop's saved stack pointer while a task runs there.
  private static var loopStackPointers: UnsafeMutablePointer<UInt64>! = nil
  private static var lock: TicketLock! = nil
  private static var queues: RunQueues! = nil
  private static var nextPID = 1
  private static var switchCount: AtomicWord! = nil
  private static var preemptionCount: AtomicWord! = nil

  static var contextSwitches: Int { Int(switchCount.load()) }
  static var preemptions: Int { Int(preemptionCount.load()) }

  static func initialize() {
    let count = KernelLayout.maximumTasks
    tasks = UnsafeMutablePointer<Task>.allocate(capacity: count)
    tasks.initialize(repeating: Task(), count: count)
    stackPointers = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
    stackPointers.initialize(repeating: 0, count: count)
    loopStackPointers = UnsafeMutablePointer<UInt64>.allocate(capacity: KernelLayout.maximumCPUs)
    loopStackPointers.initialize(repeating: 0, count: KernelLayout.maximumCPUs)
    lock = TicketLock()
    queues = RunQueues(cpus: KernelLayout.maximumCPUs, capacity: count)
    switchCount = AtomicWord()
    preemptionCount = AtomicWord()
  }

  private static var currentSlot: Int { PerCPU.current.pointee.currentSlot }

  static var currentPID: Int {
    let slot = currentSlot
    return slot >= 0 ? tasks[slot].pid : 0
  }

  /// How many times the timer preempted the running task.
  static var currentPreemptions: Int {
    let slot = currentSlot
    return slot >= 0 ? tasks[slot].preemptions : 0
  }

  private static func stackTop(_ slot: Int) -> UInt64 {
    KernelLayout.taskStacks + UInt64(slot + 1) * KernelLayout.taskStackSize
  }

  /// Creates a runnable task executing `user_main(program, argument)` in ring 3, on CPU
  /// `affinity` only when given.
  static func spawn(_ program: UserProgram, argument: Int = 0, affinity: Int? = nil) -> Int? {
    lock.acquire()
    var slot = 0
    while slot < KernelLayout.maximumTasks && tasks[slot].state != .free { slot += 1 }
    if slot < KernelLayout.maximumTasks { tasks[slot].state = .starting }
    lock.release()
    guard slot < KernelLayout.maximumTasks else { return nil }
    guard let space = AddressSpace.create() else {
      lock.withLock { tasks[slot].state = .free }
      return nil
    }
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
    lock.acquire()
    let pid = nextPID
    nextPID += 1
    tasks[slot] = Task(state: .runnable, pid: pid, addressSpace: space, affinity: affinity ?? -1)
    let target = enqueue(slot, stayOn: nil)
    let helper = idleHelper(for: target)
    lock.release()
    wake(target)
    if let helper { wake(helper) }
    return pid
  }

  /// Puts a runnable task in a queue (lock held): its pinned CPU, else `stayOn`, else an idle
  /// CPU with an empty queue, else the shortest queue. Returns the CPU chosen.
  private static func enqueue(_ slot: Int, stayOn cpu: Int?) -> Int {
    var target = tasks[slot].affinity
    if target < 0, let cpu { target = cpu }
    if target < 0 {
      let me = SMP.currentIndex
      target = me
      var shortest = queues.count(me)
      for step in 1..<max(SMP.cpuSlots, 1) {
        let candidate = (me + step) % SMP.cpuSlots
        guard SMP.isOnline(candidate) else { continue }
        let length = queues.count(candidate)
        let idle = shared(&PerCPU.cpu(candidate).pointee.idle).load() != 0
        if idle && length == 0 {
          target = candidate
          break
        }
        if length < shortest {
          target = candidate
          shortest = length
        }
      }
    }
    queues.push(slot, cpu: target)
    return target
  }

  /// An idle CPU with an empty queue that could steal from `busy`'s queue, when that queue holds
  /// more than the one task `busy` takes next (lock held); the caller wakes it after unlocking.
  private static func idleHelper(for busy: Int) -> Int? {
    guard queues.count(busy) >= 2 else { return nil }
    for cpu in 0..<SMP.cpuSlots where cpu != busy && SMP.isOnline(cpu) && queues.count(cpu) == 0 {
      if shared(&PerCPU.cpu(cpu).pointee.idle).load() != 0 { return cpu }
    }
    return nil
  }

  /// Interrupts CPU `target` if it idles and is not this one (a reschedule IPI).
  private static func wake(_ target: Int) {
    guard SMP.enabled, target != SMP.currentIndex, shared(&PerCPU.cpu(target).pointee.idle).load() != 0 else {
      return
    }
    IPI.send(InterruptVector.reschedule, toCPU: target)
  }

  /// The boot CPU: runs tasks until none is left alive.
  static func runUntilAllExited() { loop(untilAllExited: true) }

  /// An AP: runs tasks forever.
  static func serve() -> Never {
    loop(untilAllExited: false)
    Platform.haltForever()
  }

  private static func loop(untilAllExited: Bool) {
    let cpu = PerCPU.current
    let me = cpu.pointee.index
    while true {
      lock.acquire()
      if let slot = pickNext(me) {
        tasks[slot].state = .running
        lock.release()
        run(slot, on: cpu)
        continue
      }
      if untilAllExited && !anyAlive() {
        lock.release()
        return
      }
      shared(&cpu.pointee.idle).store(1)
      lock.release()
      Platform.waitForInterrupt()
      shared(&cpu.pointee.idle).store(0)
    }
  }

  /// The next task for CPU `me` (lock held): its own queue first, then one stolen.
  private static func pickNext(_ me: Int) -> Int? {
    if let slot = queues.popFirst(cpu: me) { return slot }
    guard SMP.cpuSlots > 1 else { return nil }
    let stolen = queues.steal(for: me, cpus: SMP.cpuSlots) { tasks[$0].affinity < 0 }
    if stolen != nil { PerCPU.cpu(me).pointee.tasksStolen += 1 }
    return stolen
  }

  private static func anyAlive() -> Bool {
    for slot in 0..<KernelLayout.maximumTasks {
      switch tasks[slot].state {
      case .starting, .runnable, .running, .sleeping: return true
      case .free, .exited: continue
      }
    }
    return false
  }

  private static func run(_ slot: Int, on cpu: UnsafeMutablePointer<PerCPU>) {
    guard let root = tasks[slot].addressSpace?.root else { return }
    cpu.pointee.currentSlot = slot
    Platform.setKernelStack(stackTop(slot))
    if Platform.currentAddressSpace() != root {
      Platform.switchAddressSpace(root)
      shared(&cpu.pointee.loadedRoot).store(root)
    }
    switchCount.add(1)
    cpu.pointee.tasksRun += 1
    cpu.pointee.request = .none
    switch_context(loopStackPointers + cpu.pointee.index, stackPointers[slot])
    cpu.pointee.currentSlot = -1
    finish(slot, cpu.pointee.request, on: cpu)
  }

  /// Carries out what the task that just left asked for (on this CPU's scheduler stack).
  private static func finish(_ slot: Int, _ request: SchedulerRequest, on cpu: UnsafeMutablePointer<PerCPU>) {
    let me = cpu.pointee.index
    switch request {
    case .yield, .preempted, .none:
      if request == .yield && tasks[slot].affinity >= 0 && tasks[slot].affinity != me { cpu.pointee.migrations += 1 }
      if request == .preempted {
        preemptionCount.add(1)
        cpu.pointee.preemptions += 1
      }
      lock.acquire()
      if request == .preempted { tasks[slot].preemptions += 1 }
      tasks[slot].state = .runnable
      let target = enqueue(slot, stayOn: me)
      let helper = idleHelper(for: target)
      lock.release()
      wake(target)
      if let helper { wake(helper) }
    case .sleep:
      lock.withLock { tasks[slot].state = .sleeping }
    case .exit:
      if var space = tasks[slot].addressSpace {
        tasks[slot].addressSpace = nil
        Platform.switchAddressSpace(KernelLayout.kernelPML4)
        shared(&cpu.pointee.loadedRoot).store(KernelLayout.kernelPML4)
        TLBShootdown.releaseAddressSpace(space.root)
        space.destroy()
      }
      lock.withLock { tasks[slot].state = .exited }
      wake(0)  // the boot CPU may be waiting for the last task
    }
  }

  /// Back to this CPU's scheduler loop from the current task's kernel stack. The task may resume
  /// on another CPU: nothing read from the per-CPU data before this call is valid after it.
  private static func switchToScheduler(_ request: SchedulerRequest) {
    let cpu = PerCPU.current
    cpu.pointee.request = request
    switch_context(stackPointers + cpu.pointee.currentSlot, loopStackPointers[cpu.pointee.index])
  }

  static func yieldCurrent() {
    guard currentSlot >= 0 else { return }
    switchToScheduler(.yield)
  }

  /// Pins the current task to `cpu` (-1: unpins it) and, if it must move, yields so that this
  /// CPU's loop queues it on the target (a reschedule IPI wakes the target if it idles): the task
  /// resumes there.
  static func migrateCurrent(to cpu: Int) {
    let slot = currentSlot
    guard slot >= 0 else { return }
    tasks[slot].affinity = cpu
    if cpu >= 0 && cpu != SMP.currentIndex { switchToScheduler(.yield) }
  }

  /// The timer's (or a reschedule IPI's) preemption: switch only when another task waits in this
  /// CPU's queue.
  static func preemptCurrent() {
    let cpu = PerCPU.current
    guard cpu.pointee.currentSlot >= 0, queues.count(cpu.pointee.index) > 0 else { return }
    switchToScheduler(.preempted)
  }

  static func sleepCurrent(ticks: UInt64) {
    let slot = currentSlot
    guard slot >= 0 else { return }
    tasks[slot].wakeTick = Timer.ticks + ticks
    switchToScheduler(.sleep)
  }

  /// The boot CPU's timer interrupt: makes due sleepers runnable.
  static func wakeSleepers(now: UInt64) {
    guard let tasks else { return }
    var targets: UInt64 = 0
    lock.acquire()
    for slot in 0..<KernelLayout.maximumTasks where tasks[slot].state == .sleeping && tasks[slot].wakeTick <= now {
      tasks[slot].state = .runnable
      targets |= 1 << UInt64(enqueue(slot, stayOn: nil))
    }
    lock.release()
    for cpu in 0..<SMP.cpuSlots where targets & (1 << UInt64(cpu)) != 0 { wake(cpu) }
  }

  static func exitCurrent(status: Int, killedBy: Int?) -> Never {
    tasks[currentSlot].result = TaskResult(status: status, killedBy: killedBy)
    switchToScheduler(.exit)
    Platform.haltForever()  // never resumed
  }

  /// The result of an exited task, freeing its slot.
  static func reap(_ pid: Int) -> TaskResult? {
    lock.acquire()
    defer { lock.release() }
    for slot in 0..<KernelLayout.maximumTasks where tasks[slot].pid == pid && tasks[slot].state == .exited {
      tasks[slot].state = .free
      return tasks[slot].result
    }
    return nil
  }

  // MARK: The current task's memory

  static func mapDemandPage(_ page: UInt64) -> Bool {
    let slot = currentSlot
    guard slot >= 0 else { return false }
    return tasks[slot].addressSpace?.map(page) ?? false
  }

  static func withCurrentAddressSpace<R>(_ body: (inout AddressSpace) -> R) -> R? {
    let slot = currentSlot
    guard slot >= 0, tasks[slot].addressSpace != nil else { return nil }
    return body(&tasks[slot].addressSpace!)
  }

  static func divideErrorResume() -> UInt64? {
    let slot = currentSlot
    guard slot >= 0, tasks[slot].divideErrorResume != 0 else { return nil }
    return tasks[slot].divideErrorResume
  }

  static func setDivideErrorResume(_ address: UInt64) {
    let slot = currentSlot
    guard slot >= 0 else { return }
    tasks[slot].divideErrorResume = address
  }
}

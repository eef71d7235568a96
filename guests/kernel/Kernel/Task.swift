/// A task's life cycle.
enum TaskState {
  case free
  /// Slot taken by `spawn`, address space being built.
  case starting
  /// In one CPU's run queue.
  case runnable
  case running
  case sleeping
  /// Finished (address space freed); the result waits for `Scheduler.reap`.
  case exited
}

/// How a task ended.
struct TaskResult {
  var status: Int
  /// The exception vector that killed it, nil when it called exit.
  var killedBy: Int?
}

/// One ring-3 task: its address space, its kernel stack slot and scheduling state.
struct Task {
  var state: TaskState = .free
  var pid = 0
  var addressSpace: AddressSpace? = nil
  var wakeTick: UInt64 = 0
  var result = TaskResult(status: 0, killedBy: nil)
  /// Where a #DE resumes (set by set_trap_handler), 0 = kill.
  var divideErrorResume: UInt64 = 0
  /// The only CPU that may run it, or -1 for any.
  var affinity = -1
  /// Times the timer preempted it.
  var preemptions = 0
}

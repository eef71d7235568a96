/// Runs a kernel function on another CPU: the caller writes the function and argument into the
/// target's per-CPU mailbox and interrupts it with `InterruptVector.crossCall`; the target runs the
/// function in its interrupt handler (so only while it idles or runs ring 3), stores the result and
/// counts the call done; the caller polls for that count, a bounded number of times. One caller at
/// a time (the boot CPU's self-test and benchmarks).
enum CrossCall {
  enum Function: UInt64 {
    /// Returns the argument plus one: the IPI round trip.
    case echo = 1
    /// Returns the 64-bit word at the argument (a kernel virtual address): for the shootdown check.
    case read = 2
    /// Takes and releases the contended-lock benchmark's lock `argument` times.
    case contendLock = 3
  }

  /// Polls before the target counts as not answering (see TLBShootdown.maximumPolls).
  static let maximumPolls = 500_000_000

  /// Posts `function` to CPU `index` and interrupts it (the caller then `wait`s).
  static func post(_ function: Function, argument: UInt64 = 0, toCPU index: Int) -> UInt64 {
    let cpu = PerCPU.cpu(index)
    let done = shared(&cpu.pointee.crossCallsDone).load()
    cpu.pointee.crossCallArgument = argument
    shared(&cpu.pointee.crossCallFunction).store(function.rawValue)
    IPI.send(InterruptVector.crossCall, toCPU: index)
    return done
  }

  /// Waits until CPU `index` has finished the call posted when its count was `before`; its result,
  /// or nil when it did not answer in time.
  static func wait(cpu index: Int, before: UInt64) -> UInt64? {
    let cpu = PerCPU.cpu(index)
    let done = shared(&cpu.pointee.crossCallsDone)
    var polls = 0
    while done.load() == before {
      polls += 1
      if polls > maximumPolls { return nil }
      Platform.spinWaitHint()
    }
    return cpu.pointee.crossCallResult
  }

  static func call(_ function: Function, argument: UInt64 = 0, onCPU index: Int) -> UInt64? {
    wait(cpu: index, before: post(function, argument: argument, toCPU: index))
  }

  /// The interrupt handler's part, on the target CPU.
  static func serve() {
    let cpu = PerCPU.current
    let function = shared(&cpu.pointee.crossCallFunction)
    guard let call = Function(rawValue: function.load()) else { return }
    function.store(0)
    let argument = cpu.pointee.crossCallArgument
    let result: UInt64
    switch call {
    case .echo: result = argument &+ 1
    case .read: result = atomic_load64(UnsafeMutablePointer(bitPattern: UInt(argument))!)
    case .contendLock: result = SMPBenchmarks.contendLock(iterations: Int(argument))
    }
    cpu.pointee.crossCallResult = result
    cpu.pointee.crossCallsServed += 1
    shared(&cpu.pointee.crossCallsDone).add(1)
  }
}

/// The micro-benchmarks (boot option `bench`). Each prints one line:
/// `BENCH name=<name> iters=<N> ns_per_op=<X.Y> cycles_per_op=<C>`. Ring-0 operations are timed in
/// kernel loops; the others by ring-3 programs that report their TSC cycles with bench_report.
enum BenchmarkSuite {
  private static var reported = 0

  static func run(scale: Int) -> Int {
    Console.write("BENCH-INFO tsc_hz=")
    Console.write(unsigned: Timer.timestampFrequency)
    Console.write(" timer_hz=")
    Console.write(decimal: Timer.hertz)
    Console.write(" scale=")
    Console.write(decimal: scale)
    Console.newline()
    guard Timer.isTicking() else {
      Console.write("BENCH-ERROR no timer interrupts\n")
      return 1
    }

    runUser(.benchSyscall, argument: 200 * scale)
    measureKernel(.portIn, iterations: 100 * scale) { _ = Platform.readPort8(0x61) }
    measureKernel(.portOut, iterations: 100 * scale) { Platform.writePort8(0x80, 0) }
    let root = Platform.currentAddressSpace()
    measureKernel(.cr3Write, iterations: 100 * scale) { Platform.switchAddressSpace(root) }
    measureKernel(.cr8Write, iterations: 100 * scale) { Platform.writeTaskPriority(0) }
    runUser(.benchPageFault, argument: 50 * scale)
    runUser(.benchDivideByZero, argument: 100 * scale)
    measurePageTableUpdates(iterations: 100 * scale)
    runUser(.benchContextSwitch, .benchContextSwitch, argument: 50 * scale)
    runUser(.benchTimerInterrupt, argument: min(5 * scale, 100) | (Timer.hertz << 32))
    runUser(.benchHash, argument: 2 * scale)
    runUser(.benchSort, argument: 2 * scale)
    runUser(.benchMatrix, argument: 2 * scale)

    Console.write("BENCH-DONE reported=")
    Console.write(decimal: reported)
    Console.newline()
    return reported == Benchmark.allCases.count ? 0 : 1  // allCases: one small allocation, once
  }

  /// Prints a BENCH line (also reached from the bench_report system call).
  static func report(_ benchmark: Benchmark, iterations: UInt64, cycles: UInt64) {
    reported += 1
    Console.write("BENCH name=")
    Console.write(benchmark.name)
    Console.write(" iters=")
    Console.write(unsigned: iterations)
    Console.write(" ns_per_op=")
    let nanoseconds = Timer.nanoseconds(cycles: cycles)
    Console.write(ratio: nanoseconds, over: iterations)
    Console.write(" cycles_per_op=")
    Console.write(unsigned: iterations > 0 ? cycles / iterations : 0)
    Console.newline()
  }

  private static func measureKernel(_ benchmark: Benchmark, iterations: Int, _ operation: () -> Void) {
    let start = Platform.readTimestampCounter()
    for _ in 0..<iterations { operation() }
    report(benchmark, iterations: UInt64(iterations), cycles: Platform.readTimestampCounter() &- start)
  }

  /// Toggles the writable bit of a live PTE and invalidates it, in a scratch address space.
  private static func measurePageTableUpdates(iterations: Int) {
    let page = UserWindow.base
    guard var space = AddressSpace.create(), space.map(page) else {
      Console.write("BENCH-ERROR ptemod: out of memory\n")
      return
    }
    let previous = Platform.currentAddressSpace()
    Platform.switchAddressSpace(space.root)
    let entry = space.pageTableEntry(page)
    var value = entry.pointee
    measureKernel(.pteUpdate, iterations: iterations) {
      value ^= 0x2
      Platform.setPageTableEntry(entry, value)
      Platform.invalidatePage(page)
    }
    Platform.setPageTableEntry(entry, value | 0x2)
    Platform.switchAddressSpace(previous)
    space.destroy()
  }

  /// Runs one ring-3 benchmark program, or two side by side (the second gets bit 40 of the
  /// argument set: "partner, do not report").
  private static func runUser(_ program: UserProgram, _ partner: UserProgram? = nil, argument: Int) {
    let first = Scheduler.spawn(program, argument: argument)
    let second = partner.flatMap { Scheduler.spawn($0, argument: argument | (1 << 40)) }
    Scheduler.runUntilAllExited()
    checkResult(first)
    checkResult(second)
  }

  private static func checkResult(_ pid: Int?) {
    guard let pid, let result = Scheduler.reap(pid) else { return }
    guard result.killedBy != nil || result.status != 0 else { return }
    Console.write("BENCH-ERROR task ")
    Console.write(decimal: pid)
    Console.write(" status=")
    Console.write(decimal: result.status)
    Console.newline()
  }
}

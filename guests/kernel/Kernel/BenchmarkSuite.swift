/// The micro-benchmarks (boot option `bench`). Each prints one line:
/// `BENCH name=<name> iters=<N> ns_per_op=<X.Y> cycles_per_op=<C>`. Ring-0 operations are timed in
/// kernel loops; the others by ring-3 programs that report their TSC cycles with bench_report.
///
/// Each benchmark runs between two marker writes, a byte OUT of its id to port `markerBegin`
/// (0x500) and then to `markerEnd` (0x501), so a VMM can attribute the VM exits in between to it.
/// Nothing else happens between the markers: the BENCH line is printed after the end marker.
enum BenchmarkSuite {
  /// Port written with the benchmark id just before it starts (unassigned on a PC: ignored).
  static let markerBegin: UInt16 = 0x500
  /// Port written with the benchmark id just after it ends.
  static let markerEnd: UInt16 = 0x501

  private static var reported = 0
  /// The result reported inside the marked region, printed after it.
  private static var pending: (benchmark: Benchmark, iterations: UInt64, cycles: UInt64)?

  /// `only=NAME`: every other benchmark is left out (neither run nor expected).
  private static var only: Benchmark?

  static func run(scale: Int, multiprocessor: Bool, only: Benchmark? = nil) -> Int {
    self.only = only
    Console.write("BENCH-INFO tsc_hz=")
    Console.write(unsigned: Timer.timestampFrequency)
    Console.write(" timer_hz=")
    Console.write(decimal: Timer.hertz)
    Console.write(" scale=")
    Console.write(decimal: scale)
    Console.write(" cpus=")
    Console.write(decimal: SMP.onlineCount)
    Console.newline()
    guard Timer.isTicking() else {
      Console.write("BENCH-ERROR no timer interrupts\n")
      return 1
    }

    // One system call outside the marked regions, so that once-only console output on the first
    // call (the CPL-3 SYSCALL NOTE) is not attributed to a benchmark.
    if let pid = Scheduler.spawn(.getpid, argument: 0, affinity: 0) {
      Scheduler.runUntilAllExited()
      _ = Scheduler.reap(pid)
    }
    if multiprocessor { return runMultiprocessor(scale: scale) }
    marked(.syscall) { runUser(.benchSyscall, argument: 200 * scale) }
    marked(.portIn) { measureKernel(.portIn, iterations: 100 * scale) { _ = Platform.readPort8(0x61) } }
    marked(.portOut) { measureKernel(.portOut, iterations: 100 * scale) { Platform.writePort8(0x80, 0) } }
    let root = Platform.currentAddressSpace()
    marked(.cr3Write) { measureKernel(.cr3Write, iterations: 100 * scale) { Platform.switchAddressSpace(root) } }
    marked(.cr8Write) { measureKernel(.cr8Write, iterations: 100 * scale) { Platform.writeTaskPriority(0) } }
    marked(.pageFault) { runUser(.benchPageFault, argument: 50 * scale) }
    marked(.divideByZero) { runUser(.benchDivideByZero, argument: 100 * scale) }
    marked(.pteUpdate) { measurePageTableUpdates(iterations: 100 * scale) }
    marked(.pageTableBatch) { measurePageTableBatches(batches: 2 * scale) }
    marked(.contextSwitch) { runUser(.benchContextSwitch, .benchContextSwitch, argument: 50 * scale) }
    marked(.timerInterrupt) {
      runUser(.benchTimerInterrupt, argument: min(5 * scale, 100) | (Timer.hertz << 32))
    }
    marked(.consoleLine) { measureConsoleLines(lines: min(2 * scale, 200)) }
    marked(.hash) { runUser(.benchHash, argument: 2 * scale) }
    marked(.sort) { runUser(.benchSort, argument: 2 * scale) }
    marked(.matrix) { runUser(.benchMatrix, argument: 2 * scale) }

    return done(expected: only.map { Benchmark.uniprocessorSuite.contains($0.rawValue) ? 1 : 0 } ?? Benchmark.uniprocessorSuite.count)
  }

  private static func done(expected: Int) -> Int {
    Console.write("BENCH-DONE reported=")
    Console.write(decimal: reported)
    if skipped > 0 {
      Console.write(" skipped=")
      Console.write(decimal: skipped)
    }
    Console.newline()
    return reported + skipped == expected ? 0 : 1
  }

  /// Benchmarks that cannot run on this machine (the IPI ones on one CPU): `BENCH-SKIP` lines.
  private static var skipped = 0

  private static func skip(_ benchmark: Benchmark, _ reason: StaticString) {
    if let only, only != benchmark { return }
    skipped += 1
    Console.write("BENCH-SKIP name=")
    Console.write(benchmark.name)
    Console.write(" reason=")
    Console.write(reason)
    Console.newline()
  }

  /// `bench smp` (Kernel/SMP/SMPBenchmarks.swift).
  private static func runMultiprocessor(scale: Int) -> Int {
    if SMP.onlineCount < 2 {
      skip(.interprocessorInterrupt, "one-cpu")
      skip(.tlbShootdown, "one-cpu")
    } else {
      let iterations = 20 * scale
      marked(.interprocessorInterrupt) {
        if let cycles = SMPBenchmarks.interprocessorInterrupt(iterations: iterations) {
          report(.interprocessorInterrupt, iterations: UInt64(iterations), cycles: cycles)
        }
      }
      marked(.tlbShootdown) {
        if let cycles = SMPBenchmarks.tlbShootdown(iterations: iterations) {
          report(.tlbShootdown, iterations: UInt64(iterations), cycles: cycles)
        }
      }
    }
    marked(.spinLock) {
      if let result = SMPBenchmarks.spinLock(iterations: 20 * scale) {
        report(.spinLock, iterations: UInt64(result.acquisitions), cycles: result.cycles)
      }
    }
    marked(.parallel) {
      let units = 20 * scale
      if let cycles = SMPBenchmarks.parallel(units: units) {
        report(.parallel, iterations: UInt64(units * SMPBenchmarks.parallelTasks), cycles: cycles)
      }
    }
    return done(expected: only.map { Benchmark.multiprocessorSuite.contains($0.rawValue) ? 1 : 0 } ?? Benchmark.multiprocessorSuite.count)
  }

  /// Runs one benchmark between its markers, then prints its BENCH line (and any task error).
  private static func marked(_ benchmark: Benchmark, _ body: () -> Void) {
    if let only, only != benchmark { return }
    pending = nil
    Platform.markBenchmark(UInt8(benchmark.rawValue), end: false)
    body()
    Platform.markBenchmark(UInt8(benchmark.rawValue), end: true)
    if let result = pending { printResult(result.benchmark, iterations: result.iterations, cycles: result.cycles) }
    if let pid = failedTask {
      Console.write("BENCH-ERROR task ")
      Console.write(decimal: pid.pid)
      Console.write(" status=")
      Console.write(decimal: pid.status)
      Console.newline()
      failedTask = nil
    }
  }

  /// Records a result for printing after the end marker (also reached from the bench_report
  /// system call).
  static func report(_ benchmark: Benchmark, iterations: UInt64, cycles: UInt64) {
    pending = (benchmark, iterations, cycles)
  }

  private static func printResult(_ benchmark: Benchmark, iterations: UInt64, cycles: UInt64) {
    reported += 1
    Console.lock()
    defer { Console.unlock() }
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

  /// Pages of one `ptebatch` batch.
  private static let batchPages = 64

  /// Toggles the writable bit of 64 live PTEs as one batch (`Platform.setPageTableEntries`: 64
  /// stores and a TLB flush natively, one multicall of `mmu_update` x 64 and a flush in PV mode);
  /// reports the time per PTE.
  private static func measurePageTableBatches(batches: Int) {
    guard var space = AddressSpace.create() else {
      Console.write("BENCH-ERROR ptebatch: out of memory\n")
      return
    }
    let entries = UnsafeMutablePointer<UnsafeMutablePointer<UInt64>>.allocate(capacity: batchPages)
    let values = UnsafeMutablePointer<UInt64>.allocate(capacity: batchPages)
    defer {
      entries.deallocate()
      values.deallocate()
    }
    for i in 0..<batchPages {
      let page = UserWindow.base + UInt64(i) * UserWindow.pageSize
      guard space.map(page) else {
        Console.write("BENCH-ERROR ptebatch: out of memory\n")
        space.destroy()
        return
      }
      entries[i] = space.pageTableEntry(page)
    }
    let previous = Platform.currentAddressSpace()
    Platform.switchAddressSpace(space.root)
    for i in 0..<batchPages { values[i] = entries[i].pointee }
    let start = Platform.readTimestampCounter()
    for _ in 0..<batches {
      for i in 0..<batchPages { values[i] ^= 0x2 }
      Platform.setPageTableEntries(entries, values, count: batchPages)
    }
    let cycles = Platform.readTimestampCounter() &- start
    report(.pageTableBatch, iterations: UInt64(batches * batchPages), cycles: cycles)
    for i in 0..<batchPages { values[i] |= 0x2 }
    Platform.setPageTableEntries(entries, values, count: batchPages)
    Platform.switchAddressSpace(previous)
    space.destroy()
  }

  /// Writes `lines` 31-byte lines to the console (COM1 byte by byte natively, a `console_io`
  /// write per line in PV mode); reports the time per line.
  private static func measureConsoleLines(lines: Int) {
    let start = Platform.readTimestampCounter()
    for _ in 0..<lines { Console.write("console-bench ................\n") }
    report(.consoleLine, iterations: UInt64(lines), cycles: Platform.readTimestampCounter() &- start)
  }

  /// Runs one ring-3 benchmark program, or two side by side (the second gets bit 40 of the
  /// argument set: "partner, do not report").
  private static func runUser(_ program: UserProgram, _ partner: UserProgram? = nil, argument: Int) {
    // On the boot CPU, as with one CPU, so the figures compare across --cpus.
    let first = Scheduler.spawn(program, argument: argument, affinity: 0)
    let second = partner.flatMap { Scheduler.spawn($0, argument: argument | (1 << 40), affinity: 0) }
    Scheduler.runUntilAllExited()
    checkResult(first)
    checkResult(second)
  }

  private static func checkResult(_ pid: Int?) {
    guard let pid, let result = Scheduler.reap(pid) else { return }
    guard result.killedBy != nil || result.status != 0 else { return }
    failedTask = (pid, result.status)
  }

  /// A benchmark task that died or failed inside the marked region, reported after it.
  private static var failedTask: (pid: Int, status: Int)?
}

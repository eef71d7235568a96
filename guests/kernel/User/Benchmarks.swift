/// Ring-3 benchmark programs: each times its loop with RDTSC and reports the cycles through
/// bench_report; the kernel converts them to nanoseconds.
enum Benchmarks {
  /// Bit 40 of the argument marks the partner task of a two-task benchmark.
  static let partnerFlag = 1 << 40

  static func syscall(iterations: Int) -> Int {
    let start = user_rdtsc()
    for _ in 0..<iterations { _ = Kernel.getpid() }
    Kernel.report(.syscall, iterations: iterations, cycles: user_rdtsc() &- start)
    return 0
  }

  /// Touch a demand-zero page (fault, kernel maps it), then unmap it again: one fault per round.
  static func pageFault(iterations: Int) -> Int {
    let page = UserWindow.demandAreaStart
    let word = Kernel.memory(page)
    let start = user_rdtsc()
    for index in 0..<iterations {
      word.pointee = UInt32(truncatingIfNeeded: index)
      guard Kernel.munmap(page) == 0 else { return 1 }
    }
    Kernel.report(.pageFault, iterations: iterations, cycles: user_rdtsc() &- start)
    return 0
  }

  static func divideByZero(iterations: Int) -> Int {
    let start = user_rdtsc()
    _ = user_divide_by_zero_loop(iterations)
    Kernel.report(.divideByZero, iterations: iterations, cycles: user_rdtsc() &- start)
    return 0
  }

  /// Two tasks yield to each other; each of this task's rounds is two context switches.
  static func contextSwitch(argument: Int) -> Int {
    let iterations = argument & 0xFFFF_FFFF
    let start = user_rdtsc()
    for _ in 0..<iterations { Kernel.yield() }
    let cycles = user_rdtsc() &- start
    if argument & partnerFlag == 0 {
      Kernel.report(.contextSwitch, iterations: 2 * iterations, cycles: cycles)
    }
    return 0
  }

  /// Spins reading the TSC; when the clock page's tick count changes, a timer interrupt was taken
  /// and returned from in the larger of the last two gaps between TSC reads. Gaps without a tick
  /// (the host descheduling the VM, host interrupts) are ignored. Reports the median over `count`
  /// interrupts.
  static func timerInterrupt(argument: Int) -> Int {
    let count = min(argument & 0xFFFF_FFFF, 512)
    let clock = Kernel.clock
    let hertz = max(clock.timerHertz, 1)
    let frequency = max(clock.timestampFrequency, 1_000_000)
    let gapsAddress = UserWindow.base + UserWindow.pageSize
    guard Kernel.mmap(gapsAddress) == Int(gapsAddress) else { return 1 }
    let gaps = UnsafeMutablePointer<UInt64>(bitPattern: UInt(gapsAddress))!
    let deadline = user_rdtsc() &+ frequency / hertz * UInt64(count + 2) * 4
    var seen = 0
    var lastTick = clock.ticks
    var previous = user_rdtsc()
    var previousGap: UInt64 = 0
    while seen < count {
      let tick = clock.ticks
      let now = user_rdtsc()
      let gap = now &- previous
      if tick != lastTick {
        lastTick = tick
        gaps[seen] = max(gap, previousGap)
        seen += 1
      }
      if now > deadline { break }
      previous = now
      previousGap = gap
    }
    Workloads.sort(gaps, count: seen)
    let median = seen > 0 ? gaps[seen / 2] : 0
    Kernel.report(.timerInterrupt, iterations: seen, cycles: median &* UInt64(seen))
    return 0
  }

  static func hash(iterations: Int) -> Int {
    guard let buffer = Workloads.mapBuffer(pages: 4) else { return 1 }
    Workloads.fill(buffer, count: 4096, seed: 11)
    var sink: UInt64 = 0
    let start = user_rdtsc()
    for _ in 0..<iterations { sink ^= Workloads.hash(buffer, count: 4096) }
    Kernel.report(.hash, iterations: iterations, cycles: user_rdtsc() &- start)
    return sink == 1 ? 2 : 0
  }

  static func sort(iterations: Int) -> Int {
    guard let buffer = Workloads.mapBuffer(pages: 2) else { return 1 }
    var cycles: UInt64 = 0
    for round in 0..<iterations {
      Workloads.fill(buffer, count: 2048, seed: UInt32(truncatingIfNeeded: round) &+ 5)
      let start = user_rdtsc()
      Workloads.sort(buffer, count: 2048)
      cycles &+= user_rdtsc() &- start
    }
    Kernel.report(.sort, iterations: iterations, cycles: cycles)
    return 0
  }

  static func matrix(iterations: Int) -> Int {
    let size = 32
    guard let buffer = Workloads.mapBuffer(pages: 3) else { return 1 }
    let a = buffer
    let b = buffer + size * size
    let product = buffer + 2 * size * size
    Workloads.fill(a, count: size * size, seed: 1)
    Workloads.fill(b, count: size * size, seed: 2)
    let start = user_rdtsc()
    for _ in 0..<iterations { Workloads.multiply(a, b, into: product, size: size) }
    Kernel.report(.matrix, iterations: iterations, cycles: user_rdtsc() &- start)
    return 0
  }

  /// The parallel benchmark's share: `units` x 10,000 steps of a xorshift generator folded into
  /// an FNV-1a hash, all in registers (no memory traffic, so CPUs do not compete for anything but
  /// the host's cores). The kernel times the whole job; the result only keeps the loop alive.
  static func parallelWork(units: Int) -> Int {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for _ in 0..<units {
      for _ in 0..<10_000 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        hash = (hash ^ (state & 0xFF)) &* 0x100_0000_01B3
      }
    }
    return hash == 0x1234_5678 ? 1 : 0
  }
}

/// Ring-3 halves of the self-test: each returns 0 on success, another small number naming the
/// failed step otherwise.
enum SelfTestPrograms {
  static func write() -> Int {
    let message: StaticString = "hello from ring 3\n"
    guard Kernel.write(message) == message.utf8CodeUnitCount else { return 1 }
    // Kernel memory and unmapped memory are refused.
    guard Kernel.write(address: 0x10_0000, length: 4) == -SystemCallError.badAddress.rawValue else { return 2 }
    guard Kernel.write(address: UserWindow.base, length: 4) == -SystemCallError.badAddress.rawValue else { return 3 }
    return 0
  }

  static func mapAndUnmap() -> Int {
    let page = UserWindow.base + 0x3000
    guard Kernel.mmap(page) == Int(page) else { return 1 }
    guard Kernel.mmap(page) < 0 else { return 2 }  // already mapped
    guard Kernel.mmap(page + 1) < 0 else { return 3 }  // unaligned
    guard Kernel.mmap(0x10_0000) < 0 else { return 4 }  // outside the user window
    let words = Kernel.memory(page)
    for index in 0..<1024 { words[index] = UInt32(index) &* 2_654_435_761 }
    for index in 0..<1024 where words[index] != UInt32(index) &* 2_654_435_761 { return 5 }
    guard Kernel.munmap(page) == 0 else { return 6 }
    guard Kernel.munmap(page) < 0 else { return 7 }
    return 0
  }

  /// The clock page shows the kernel's tick count and frequencies, and cannot be written,
  /// mapped over or unmapped.
  static func clockPage() -> Int {
    let clock = Kernel.clock
    guard clock.timestampFrequency > 0, clock.timerHertz > 0 else { return 1 }
    let before = clock.ticks
    Kernel.sleep(ticks: 2)
    guard clock.ticks >= before + 2 else { return 2 }
    guard Kernel.munmap(UserWindow.clockPage) < 0, Kernel.mmap(UserWindow.clockPage) < 0 else { return 3 }
    Kernel.memory(UserWindow.clockPage).pointee = 0  // must kill the task with #PF
    return 4
  }

  static func sleep(ticks: Int) -> Int {
    let start = Kernel.ticks()
    Kernel.sleep(ticks: ticks)
    return Kernel.ticks() - start >= ticks ? 0 : 1
  }

  /// Spins in ring 3 (no system calls) for about `ticks` timer periods.
  /// Spins without ever yielding until `ticks` timer ticks have passed and the timer has
  /// preempted it at least once (so two spinners on one CPU each see the other run); status 2 if
  /// 1000 ticks pass without a preemption. Waiting for the preemption itself, not for a number of
  /// ticks, keeps the check independent of how the host delivers the ticks: a loaded host may
  /// deliver several back to back while the scheduler runs, where none preempts.
  static func spin(ticks: Int) -> Int {
    let start = Kernel.ticks()
    var spins = 0
    // At least one round: a task preempted right after reading `start` may find the ticks and
    // its preemption already there when it resumes (a loaded host, a slow guest).
    repeat {
      if Kernel.ticks() - start >= 1000 { return 2 }
      let began = user_rdtsc()
      repeat { spins &+= 1 } while user_rdtsc() &- began < 100_000
    } while Kernel.ticks() - start < ticks || Kernel.preemptions() == 0
    return spins > 0 ? 0 : 1
  }

  static func demandPaging() -> Int {
    let base = UserWindow.demandAreaStart + 0x4000
    for page in 0..<3 {
      let words = Kernel.memory(base + UInt64(page) * UserWindow.pageSize)
      guard words[7] == 0 else { return 1 }  // demand pages start zeroed
      words[7] = UInt32(page + 1)
    }
    for page in 0..<3 where Kernel.memory(base + UInt64(page) * UserWindow.pageSize)[7] != UInt32(page + 1) {
      return 2
    }
    return 0
  }

  static func cpuWork() -> Int {
    let buffer = Workloads.mapBuffer(pages: 8)
    guard let buffer else { return 1 }
    Workloads.fill(buffer, count: 1024, seed: 7)
    Workloads.sort(buffer, count: 1024)
    for index in 1..<1024 where buffer[index - 1] > buffer[index] { return 2 }
    // (A x I) == A for a 16 x 16 matrix.
    let a = buffer
    let identity = buffer + 256
    let product = buffer + 512
    Workloads.fill(a, count: 256, seed: 3)
    for row in 0..<16 {
      for column in 0..<16 { identity[row * 16 + column] = row == column ? 1 : 0 }
    }
    Workloads.multiply(a, identity, into: product, size: 16)
    for index in 0..<256 where product[index] != a[index] { return 3 }
    guard Workloads.hash(buffer, count: 1024) != 0 else { return 4 }
    return 0
  }
}

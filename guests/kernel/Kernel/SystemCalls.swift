/// System call dispatch (called by `syscall_entry` in Arch/traps.S). See Shared/ABI.swift.
@_cdecl("syscall_dispatch")
func syscallDispatch(_ rawFrame: UnsafeMutableRawPointer) {
  let frame = rawFrame.assumingMemoryBound(to: TrapFrame.self)
  let result = SystemCalls.handle(
    number: frame.pointee.rax, frame.pointee.rdi, frame.pointee.rsi, frame.pointee.rdx)
  frame.pointee.rax = UInt64(bitPattern: Int64(result))
}

enum SystemCalls {
  private(set) static var count: UInt64 = 0
  /// System calls that arrived as a ring-3 page fault on `syscall_entry` (see below).
  private(set) static var faultedSyscalls: UInt64 = 0

  /// Some hosts' KVM (this project's development machine among them) executes a ring-3 SYSCALL
  /// by jumping to IA32_LSTAR without leaving CPL 3, so the fetch of `syscall_entry` page-faults
  /// in user mode. SYSCALL has still saved RIP in RCX and RFLAGS in R11, so the kernel completes
  /// the call here and returns with IRETQ.
  static func completeFaultedSyscall(_ frame: UnsafeMutablePointer<TrapFrame>) {
    if atomic_fetch_add64(&faultedSyscalls, 1) == 0 {
      Console.lock()
      Console.write("NOTE syscall entered at CPL 3 (cs=")
      Console.write(hex: frame.pointee.cs)
      Console.write(" ss=")
      Console.write(hex: frame.pointee.ss)
      Console.write(" rflags=")
      Console.write(hex: frame.pointee.rflags)
      Console.write("); completing system calls from the page fault\n")
      Console.unlock()
    }
    // A task can also jump to syscall_entry on purpose, with any RCX and R11: return only to a
    // lower-half address, with only the flags ring 3 may hold (never IOPL).
    guard frame.pointee.rcx < 0x8000_0000_0000 else {
      Console.lock()
      Console.write("KILLED pid=")
      Console.write(decimal: Scheduler.currentPID)
      Console.write(" system call with a non-canonical return address\n")
      Console.unlock()
      Scheduler.exitCurrent(status: 128 + Exceptions.pageFault, killedBy: Exceptions.pageFault)
    }
    frame.pointee.rip = frame.pointee.rcx
    frame.pointee.rflags = (frame.pointee.r11 & 0x24_0FD5) | 0x202  // arithmetic, TF, DF, AC, ID
    frame.pointee.cs = UInt64(Selector.userCode)
    frame.pointee.ss = UInt64(Selector.userData)
    let result = handle(number: frame.pointee.rax, frame.pointee.rdi, frame.pointee.rsi, frame.pointee.rdx)
    frame.pointee.rax = UInt64(bitPattern: Int64(result))
  }

  static func handle(number: UInt64, _ a: UInt64, _ b: UInt64, _ c: UInt64) -> Int {
    _ = atomic_fetch_add64(&count, 1)
    guard number <= UInt64(Int.max), let call = SystemCall(rawValue: Int(number)) else {
      return -SystemCallError.noSystemCall.rawValue
    }
    switch call {
    case .write: return write(fd: a, buffer: b, length: c)
    case .exit: Scheduler.exitCurrent(status: Int(truncatingIfNeeded: a), killedBy: nil)
    case .yield:
      Scheduler.yieldCurrent()
      return 0
    case .getpid: return Scheduler.currentPID
    case .sleep:
      Scheduler.sleepCurrent(ticks: min(a, 100_000))
      return 0
    case .mmap: return mapPage(a)
    case .munmap: return unmapPage(a)
    case .ticks: return Int(truncatingIfNeeded: Timer.ticks)
    case .setTrapHandler:
      guard a == 0, b == 0 || (b >= KernelLayout.userTextStart && b < KernelLayout.userTextEnd) else {
        return -SystemCallError.invalidArgument.rawValue
      }
      Scheduler.setDivideErrorResume(b)
      return 0
    case .benchReport:
      guard let benchmark = Benchmark(rawValue: Int(truncatingIfNeeded: a)) else {
        return -SystemCallError.invalidArgument.rawValue
      }
      BenchmarkSuite.report(benchmark, iterations: b, cycles: c)
      return 0
    case .tscHz: return Int(truncatingIfNeeded: Timer.timestampFrequency)
    case .cpuIndex: return SMP.currentIndex
    case .preemptions: return Scheduler.currentPreemptions
    case .sharedCounterIncrement:
      SMPSelfTest.incrementSharedCounter()
      return 0
    case .setAffinity:
      let cpu = Int(truncatingIfNeeded: a)
      guard cpu == -1 || (cpu >= 0 && SMP.isOnline(cpu)) else { return -SystemCallError.invalidArgument.rawValue }
      Scheduler.migrateCurrent(to: cpu)
      return 0
    }
  }

  private static func write(fd: UInt64, buffer: UInt64, length: UInt64) -> Int {
    guard fd == 1 || fd == 2 else { return -SystemCallError.invalidArgument.rawValue }
    guard length <= 4096 else { return -SystemCallError.invalidArgument.rawValue }
    let readable = Scheduler.withCurrentAddressSpace { $0.isReadable(buffer, length: length) } ?? false
    guard readable else { return -SystemCallError.badAddress.rawValue }
    guard length > 0 else { return 0 }
    Console.lock()
    Console.write(bytes: UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(buffer)), count: Int(length)))
    Console.unlock()
    return Int(length)
  }

  /// A page-aligned user-window address a task may map or unmap (any but the clock page).
  private static func isUserPage(_ address: UInt64) -> Bool {
    address & (UserWindow.pageSize - 1) == 0 && AddressSpace.isInWindow(address) && address != UserWindow.clockPage
  }

  private static func mapPage(_ address: UInt64) -> Int {
    guard isUserPage(address), address < UserWindow.base + UserWindow.mmapAreaSize else {
      return -SystemCallError.invalidArgument.rawValue
    }
    let result: Int? = Scheduler.withCurrentAddressSpace { space in
      if space.isMapped(address) { return -SystemCallError.invalidArgument.rawValue }
      return space.map(address) ? Int(address) : -SystemCallError.noMemory.rawValue
    }
    return result ?? -SystemCallError.invalidArgument.rawValue
  }

  private static func unmapPage(_ address: UInt64) -> Int {
    guard isUserPage(address) else { return -SystemCallError.invalidArgument.rawValue }
    let result: Int? = Scheduler.withCurrentAddressSpace { space in
      guard space.isMapped(address) else { return -SystemCallError.invalidArgument.rawValue }
      space.unmap(address)
      return 0
    }
    return result ?? -SystemCallError.invalidArgument.rawValue
  }
}

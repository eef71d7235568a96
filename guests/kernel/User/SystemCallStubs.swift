// Ring-3 access to the kernel: the SYSCALL stub and helpers in Arch/user.S.

@_extern(c, "user_syscall") func user_syscall(_ number: Int, _ a: Int, _ b: Int, _ c: Int) -> Int
@_extern(c, "user_rdtsc") func user_rdtsc() -> UInt64
@_extern(c, "user_load64") func user_load64(_ address: UnsafeRawPointer) -> UInt64
@_extern(c, "user_divide_by_zero_loop") func user_divide_by_zero_loop(_ count: Int) -> Int
@_extern(c, "user_privileged_instruction") func user_privileged_instruction()
@_extern(c, "user_forged_syscall_entry") func user_forged_syscall_entry(_ entry: Int) -> Int

/// Typed wrappers over the system calls of Shared/ABI.swift.
enum Kernel {
  static func call(_ call: SystemCall, _ a: Int = 0, _ b: Int = 0, _ c: Int = 0) -> Int {
    user_syscall(call.rawValue, a, b, c)
  }

  static func write(_ text: StaticString) -> Int {
    text.withUTF8Buffer { call(.write, 1, Int(bitPattern: UInt(bitPattern: $0.baseAddress)), $0.count) }
  }

  static func write(address: UInt64, length: Int) -> Int { call(.write, 1, Int(address), length) }
  static func exit(_ status: Int) { _ = call(.exit, status) }
  static func yield() { _ = call(.yield) }
  static func getpid() -> Int { call(.getpid) }
  static func sleep(ticks: Int) { _ = call(.sleep, ticks) }
  static func mmap(_ address: UInt64) -> Int { call(.mmap, Int(address)) }
  static func munmap(_ address: UInt64) -> Int { call(.munmap, Int(address)) }
  static func ticks() -> Int { call(.ticks) }
  static func preemptions() -> Int { call(.preemptions) }
  static func tscHz() -> UInt64 { UInt64(call(.tscHz)) }

  static func report(_ benchmark: Benchmark, iterations: Int, cycles: UInt64) {
    _ = call(.benchReport, benchmark.rawValue, iterations, Int(truncatingIfNeeded: cycles))
  }

  static var clock: ClockPageReader { ClockPageReader() }

  static func memory(_ address: UInt64) -> UnsafeMutablePointer<UInt32> {
    UnsafeMutablePointer(bitPattern: UInt(address))!
  }
}

/// Reads the kernel's clock page (Shared/ABI.swift `ClockPageLayout`). Each read is a fresh load:
/// the calls around it are opaque to the optimizer.
struct ClockPageReader {
  private let page = UnsafeRawPointer(bitPattern: UInt(UserWindow.clockPage))!

  var ticks: UInt64 { user_load64(page + ClockPageLayout.ticksOffset) }
  var timestampFrequency: UInt64 { user_load64(page + ClockPageLayout.timestampFrequencyOffset) }
  var timerHertz: UInt64 { user_load64(page + ClockPageLayout.timerHertzOffset) }
}

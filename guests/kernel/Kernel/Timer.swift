/// The periodic timer and the calibrated time-stamp counter.
enum Timer {
  private(set) static var ticks: UInt64 = 0
  private(set) static var hertz = 100
  /// Time-stamp counter ticks per second.
  private(set) static var timestampFrequency: UInt64 = 0
  /// How the frequency was measured: true when against PIT channel 2, false for timer ticks.
  private(set) static var calibratedWithChannel2 = false

  static func start(hertz: Int) {
    self.hertz = hertz
    Platform.startPeriodicTimer(hertz: hertz)
    Platform.setInterruptLineMasked(0, false)
  }

  /// No x86 CPU this kernel runs on has a TSC slower than this. A lower channel-2 figure means the
  /// channel is not usable (KVM's in-kernel PIT on a nested host reports its output high almost at
  /// once: about 5 MHz), so the timer ticks measure the frequency instead.
  static let minimumPlausibleFrequency: UInt64 = 50_000_000

  /// Measures the TSC frequency against PIT channel 2 (five 10 ms windows), or (when that fails
  /// and the timer ticks) over five timer ticks.
  static func calibrate() {
    // Delays (the host descheduling the VM, slow port emulation) only ever lengthen a measurement,
    // so the smallest of five is the best.
    var best: UInt64? = nil
    for _ in 0..<5 {
      guard let frequency = Platform.measureTimestampFrequency(), frequency >= minimumPlausibleFrequency else {
        best = nil
        break
      }
      best = min(best ?? frequency, frequency)
    }
    if let best {
      timestampFrequency = best
      calibratedWithChannel2 = true
      return
    }
    guard isTicking() else { return }
    let startTick = ticks + 1
    waitUntil(tick: startTick)
    let start = Platform.readTimestampCounter()
    let measuredTicks: UInt64 = 5
    waitUntil(tick: startTick + measuredTicks)
    let cycles = Platform.readTimestampCounter() &- start
    timestampFrequency = cycles * UInt64(hertz) / measuredTicks
  }

  /// Whether timer interrupts arrive: spins (interrupts on) for up to about half a second rather
  /// than halting, so a machine without a working timer fails this check instead of hanging.
  static func isTicking(ticksNeeded: UInt64 = 2) -> Bool {
    let target = ticks + ticksNeeded
    let budget = timestampFrequency > 0 ? timestampFrequency / 2 : 1 << 31
    let start = Platform.readTimestampCounter()
    var spins = 0
    Platform.enableInterrupts()
    while ticks < target && Platform.readTimestampCounter() &- start < budget && spins < 50_000_000 {
      spins += 1
    }
    Platform.disableInterrupts()
    return ticks >= target
  }

  /// Waits in the idle loop; gives up after a generous number of interrupts.
  static func waitUntil(tick: UInt64) {
    var wakeups = 0
    while ticks < tick && wakeups < 100_000 {
      Platform.waitForInterrupt()
      wakeups += 1
    }
  }

  /// The interrupt handler's part: count, wake sleepers.
  static func tick() {
    ticks += 1
    ClockPage.publish(ticks: ticks)
    Scheduler.wakeSleepers(now: ticks)
  }

  static func nanoseconds(cycles: UInt64) -> UInt64 {
    guard timestampFrequency > 0 else { return 0 }
    return cycles.multipliedFullWidth(by: 1_000_000_000).low / timestampFrequency
  }
}

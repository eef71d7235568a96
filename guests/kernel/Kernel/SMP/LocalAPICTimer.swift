/// The application processors' scheduling tick: each AP's local APIC timer in periodic mode at the
/// kernel's timer frequency. The boot CPU keeps the 8254 PIT through the 8259 (Kernel/Timer.swift),
/// which also drives the global tick count and the sleepers; the APIC timer's rate is calibrated
/// once, on the boot CPU, against the TSC that the PIT calibrated.
enum LocalAPICTimer {
  /// Divide configuration 0b0011: the bus clock divided by 16.
  private static let divideBy16: UInt32 = 0x3
  private static let periodic: UInt32 = 1 << 17
  /// Timer counts per tick at the kernel's frequency (0 until calibrated).
  private(set) static var countPerTick: UInt32 = 0
  /// Timer counts per second, as measured.
  private(set) static var countsPerSecond: UInt64 = 0

  /// Counts the (masked, one-shot) timer down for 10 ms of TSC time on the boot CPU.
  static func calibrate(timerHertz: Int) {
    LocalAPIC.write(LocalAPIC.Register.timerDivide, divideBy16)
    LocalAPIC.write(LocalAPIC.Register.timerVector, LocalAPIC.masked | UInt32(InterruptVector.localTimer))
    LocalAPIC.write(LocalAPIC.Register.timerInitialCount, 0xFFFF_FFFF)
    APStartup.delay(microseconds: 10_000)
    let remaining = LocalAPIC.read(LocalAPIC.Register.timerCurrentCount)
    LocalAPIC.write(LocalAPIC.Register.timerInitialCount, 0)
    countsPerSecond = UInt64(0xFFFF_FFFF - remaining) * 100
    let perTick = countsPerSecond / UInt64(max(timerHertz, 1))
    countPerTick = UInt32(clamping: max(perTick, 1000))
    Console.write("SMP: local APIC timer ")
    Console.write(unsigned: countsPerSecond)
    Console.write(" counts/s (bus clock / 16), ")
    Console.write(unsigned: UInt64(countPerTick))
    Console.write(" per tick\n")
  }

  /// Starts this CPU's periodic timer (an AP's tick).
  static func startPeriodic() {
    LocalAPIC.write(LocalAPIC.Register.timerDivide, divideBy16)
    LocalAPIC.write(LocalAPIC.Register.timerVector, periodic | UInt32(InterruptVector.localTimer))
    LocalAPIC.write(LocalAPIC.Register.timerInitialCount, countPerTick)
  }
}

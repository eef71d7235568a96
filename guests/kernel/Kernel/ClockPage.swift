/// A kernel page every task sees read-only at `UserWindow.clockPage` (like a vDSO data page):
/// timer ticks, the TSC frequency and the timer frequency (layout in Shared/ABI.swift), so ring 3
/// can tell a timer interrupt from other interruptions without a system call.
enum ClockPage {
  static func publish(ticks: UInt64) {
    store(ticks, at: ClockPageLayout.ticksOffset)
  }

  static func publish(timestampFrequency: UInt64, timerHertz: Int) {
    store(timestampFrequency, at: ClockPageLayout.timestampFrequencyOffset)
    store(UInt64(timerHertz), at: ClockPageLayout.timerHertzOffset)
  }

  private static func store(_ value: UInt64, at offset: Int) {
    UnsafeMutableRawPointer(bitPattern: UInt(KernelLayout.clockPage))!.storeBytes(
      of: value, toByteOffset: offset, as: UInt64.self)
  }
}

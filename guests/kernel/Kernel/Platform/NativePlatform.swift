/// The platform on bare (virtual) hardware: privileged instructions, the 8259A PIC pair and the
/// 8254 PIT.
enum NativePlatform: PlatformOperations {
  private static let picMasterCommand: UInt16 = 0x20
  private static let picMasterData: UInt16 = 0x21
  private static let picSlaveCommand: UInt16 = 0xA0
  private static let picSlaveData: UInt16 = 0xA1
  private static let pitFrequency: UInt64 = 1_193_182

  static func disableInterrupts() { cpu_cli() }
  static func enableInterrupts() { cpu_sti() }
  static func waitForInterrupt() { cpu_wait_for_interrupt() }
  static func haltForever() -> Never {
    while true { cpu_halt_forever() }
  }
  static func readTimestampCounter() -> UInt64 { cpu_rdtsc() }
  static func readFaultAddress() -> UInt64 { cpu_read_cr2() }
  static func readModelSpecificRegister(_ index: UInt32) -> UInt64 { cpu_rdmsr(index) }
  static func writeModelSpecificRegister(_ index: UInt32, _ value: UInt64) { cpu_wrmsr(index, value) }

  static func loadDescriptorTables(gdtr: UInt64, idtr: UInt64, taskRegister: UInt16) {
    cpu_load_gdt(gdtr)
    cpu_load_idt(idtr)
    cpu_load_tr(taskRegister)
  }

  static func perCPUPage() -> UInt64 { cpu_percpu() }
  static func spinWaitHint() { cpu_pause() }

  static func setKernelStack(_ top: UInt64) {
    let cpu = PerCPU.current
    TaskStateSegment.setRing0Stack(top, cpu: cpu)
    cpu.pointee.kernelStackTop = top  // syscall_entry's stack
  }

  static func writeTaskPriority(_ value: UInt64) { cpu_write_cr8(value) }

  static func currentAddressSpace() -> UInt64 { cpu_read_cr3() }
  static func switchAddressSpace(_ root: UInt64) { cpu_write_cr3(root) }
  static func setPageTableEntry(_ entry: UnsafeMutablePointer<UInt64>, _ value: UInt64) { entry.pointee = value }
  static func invalidatePage(_ virtualAddress: UInt64) { cpu_invlpg(virtualAddress) }
  static func setPageTableEntries(
    _ entries: UnsafePointer<UnsafeMutablePointer<UInt64>>, _ values: UnsafePointer<UInt64>, count: Int
  ) {
    for i in 0..<count { entries[i].pointee = values[i] }
    cpu_write_cr3(cpu_read_cr3())
  }
  static func retireAddressSpace(_ root: UInt64) {}

  static func readPort8(_ port: UInt16) -> UInt8 { cpu_inb(port) }
  static func writePort8(_ port: UInt16, _ value: UInt8) { cpu_outb(port, value) }
  static func writePort16(_ port: UInt16, _ value: UInt16) { cpu_outw(port, value) }
  static func readRegister32(_ address: UInt64) -> UInt32 { mmio_read32(address) }
  static func writeRegister32(_ address: UInt64, _ value: UInt32) { mmio_write32(address, value) }

  static func initializeInterruptController() {
    // ICW1: edge triggered, cascade, ICW4 follows. ICW2: vector base. ICW3: wiring. ICW4: 8086 mode.
    writePort8(picMasterCommand, 0x11)
    writePort8(picSlaveCommand, 0x11)
    writePort8(picMasterData, 0x20)
    writePort8(picSlaveData, 0x28)
    writePort8(picMasterData, 0x04)
    writePort8(picSlaveData, 0x02)
    writePort8(picMasterData, 0x01)
    writePort8(picSlaveData, 0x01)
    // Everything masked except the cascade line.
    writePort8(picMasterData, 0xFB)
    writePort8(picSlaveData, 0xFF)
  }

  static func setInterruptLineMasked(_ line: Int, _ masked: Bool) {
    let port = line < 8 ? picMasterData : picSlaveData
    let bit = UInt8(1) << UInt8(line & 7)
    let mask = readPort8(port)
    writePort8(port, masked ? mask | bit : mask & ~bit)
  }

  static func isInterruptInService(_ line: Int) -> Bool {
    let port = line < 8 ? picMasterCommand : picSlaveCommand
    writePort8(port, 0x0B)  // OCW3: read the in-service register
    return readPort8(port) & (UInt8(1) << UInt8(line & 7)) != 0
  }

  static func endOfInterrupt(_ line: Int) {
    if line >= 8 { writePort8(picSlaveCommand, 0x20) }
    writePort8(picMasterCommand, 0x20)
  }

  static func startPeriodicTimer(hertz: Int) {
    let divisor = UInt16(clamping: Int(pitFrequency) / max(hertz, 19))
    writePort8(0x43, 0x34)  // channel 0, low/high byte, mode 2 (rate generator)
    writePort8(0x40, UInt8(truncatingIfNeeded: divisor))
    writePort8(0x40, UInt8(truncatingIfNeeded: divisor >> 8))
  }

  static func measureTimestampFrequency() -> UInt64? {
    // Channel 2 in mode 0 counts down 10 ms with its gate on; OUT2 (port 0x61 bit 5) rises at 0.
    let count: UInt64 = 11_932
    let control = readPort8(0x61)
    writePort8(0x61, (control & 0xFC) | 0x01)  // gate on, speaker off
    writePort8(0x43, 0xB0)  // channel 2, low/high byte, mode 0
    writePort8(0x42, UInt8(truncatingIfNeeded: count))
    writePort8(0x42, UInt8(truncatingIfNeeded: count >> 8))
    let start = readTimestampCounter()
    var polls = 0
    while readPort8(0x61) & 0x20 == 0 {
      polls += 1
      if polls > 1_000_000 { return nil }
    }
    let elapsed = readTimestampCounter() &- start
    writePort8(0x61, control)
    guard elapsed > 0 else { return nil }
    return elapsed &* pitFrequency / count
  }

  /// COM1, a 16550 UART, polled.
  private static let consolePort: UInt16 = 0x3F8

  static func initializeConsole() {
    writePort8(consolePort + 1, 0x00)  // no UART interrupts
    writePort8(consolePort + 3, 0x80)  // DLAB
    writePort8(consolePort + 0, 0x01)  // 115200 baud
    writePort8(consolePort + 1, 0x00)
    writePort8(consolePort + 3, 0x03)  // 8N1
    writePort8(consolePort + 2, 0xC7)  // FIFO on
    writePort8(consolePort + 4, 0x03)  // DTR, RTS
  }

  static func writeConsole(_ byte: UInt8) {
    var spins = 0
    while readPort8(consolePort + 5) & 0x20 == 0 && spins < 100_000 { spins += 1 }
    writePort8(consolePort, byte)
  }

  /// A byte OUT of the id to port 0x500 (start) or 0x501 (end).
  static func markBenchmark(_ id: UInt8, end: Bool) {
    writePort8(end ? BenchmarkSuite.markerEnd : BenchmarkSuite.markerBegin, id)
  }

  static func powerOff(status: Int) -> Never {
    if status == 0 {
      writePort16(0x604, 0x2000)  // ACPI PM1a control, SLP_EN with sleep type 0 (Trivisor, QEMU q35)
      writePort16(0xB004, 0x2000)  // the same on QEMU's i440FX/PIIX4 machine
      // The power-off request completes asynchronously: idle for 20 timer ticks (the timer runs
      // whenever the kernel gets this far with status 0) before the fallback below.
      for _ in 0..<20 { waitForInterrupt() }
    }
    // isa-debug-exit: the VMM exits with (value << 1) | 1.
    writePort8(0xF4, UInt8(truncatingIfNeeded: status))
    haltForever()
  }
}

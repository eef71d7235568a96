/// Everything the kernel asks of the (virtual) machine: CPU control, page-table updates, the
/// interrupt controller and timer, the console port and power-off. The rest of the kernel calls
/// only `Platform`, so a paravirtual build can swap `NativePlatform` for one that replaces the
/// privileged instructions with hypercalls without touching anything else.
protocol PlatformOperations {
  // MARK: CPU control
  static func disableInterrupts()
  static func enableInterrupts()
  /// Enables interrupts, sleeps until one has been handled, disables them again.
  static func waitForInterrupt()
  static func haltForever() -> Never
  static func readTimestampCounter() -> UInt64
  static func readFaultAddress() -> UInt64
  static func readModelSpecificRegister(_ index: UInt32) -> UInt64
  static func writeModelSpecificRegister(_ index: UInt32, _ value: UInt64)
  static func loadDescriptorTables(gdtr: UInt64, idtr: UInt64, taskRegister: UInt16)
  /// The address of this CPU's per-CPU page (through GS, Kernel/SMP/PerCPU.swift).
  static func perCPUPage() -> UInt64
  /// A spin-wait hint (PAUSE) for polling loops.
  static func spinWaitHint()
  /// Sets the stack the CPU switches to on entry from ring 3 (TSS.RSP0 and the SYSCALL stack).
  static func setKernelStack(_ top: UInt64)
  /// Writes the task-priority register (CR8).
  static func writeTaskPriority(_ value: UInt64)

  // MARK: Address spaces
  static func currentAddressSpace() -> UInt64
  static func switchAddressSpace(_ root: UInt64)
  /// Stores one page-table entry; callers invalidate the TLB entry with `invalidatePage`.
  static func setPageTableEntry(_ entry: UnsafeMutablePointer<UInt64>, _ value: UInt64)
  static func invalidatePage(_ virtualAddress: UInt64)
  /// Stores `count` page-table entries (`*entries[i] = values[i]`, all in page-table frames of one
  /// address space) and flushes this CPU's TLB: one batch.
  static func setPageTableEntries(
    _ entries: UnsafePointer<UnsafeMutablePointer<UInt64>>, _ values: UnsafePointer<UInt64>, count: Int)
  /// Before an address space's tables are cleared and freed (it is no longer loaded anywhere).
  static func retireAddressSpace(_ root: UInt64)

  // MARK: Port I/O
  static func readPort8(_ port: UInt16) -> UInt8
  static func writePort8(_ port: UInt16, _ value: UInt8)
  static func writePort16(_ port: UInt16, _ value: UInt16)

  // MARK: Memory-mapped device registers (the local APIC)
  static func readRegister32(_ address: UInt64) -> UInt32
  static func writeRegister32(_ address: UInt64, _ value: UInt32)

  // MARK: Interrupt controller and timer
  /// Remaps the interrupt controller to vectors 0x20...0x2F with every line masked.
  static func initializeInterruptController()
  static func setInterruptLineMasked(_ line: Int, _ masked: Bool)
  /// Whether an interrupt on `line` is real (spurious IRQ 7/15 are not).
  static func isInterruptInService(_ line: Int) -> Bool
  static func endOfInterrupt(_ line: Int)
  /// Starts the periodic timer on interrupt line 0.
  static func startPeriodicTimer(hertz: Int)
  /// Measures the time-stamp counter frequency against the interval timer; nil when the timer
  /// never fired.
  static func measureTimestampFrequency() -> UInt64?

  // MARK: Machine
  /// Ends the run: status 0 is a clean power-off, others leave through the debug-exit port.
  static func powerOff(status: Int) -> Never

  // MARK: Console and benchmark markers
  /// Prepares the console (the UART natively).
  static func initializeConsole()
  /// Writes one console byte (callers hold `Console`'s lock).
  static func writeConsole(_ byte: UInt8)
  /// Marks the start (`end` false) or the end of benchmark `id` for the VMM (BenchmarkSuite).
  static func markBenchmark(_ id: UInt8, end: Bool)
}

/// The platform the kernel runs on, chosen at boot: `ParavirtPlatform` when entered through the
/// PV entry (`pv_entry`, Arch/pv.S: the Xen ELF note the PV domain builder uses), else
/// `NativePlatform`. Each operation is one flag test and a direct call.
enum Platform {
  /// Whether the kernel runs deprivileged under the paravirtual ABI.
  static var isParavirtual: Bool { Paravirt.active }

  static func disableInterrupts() {
    if Paravirt.active { ParavirtPlatform.disableInterrupts() } else { NativePlatform.disableInterrupts() }
  }
  static func enableInterrupts() {
    if Paravirt.active { ParavirtPlatform.enableInterrupts() } else { NativePlatform.enableInterrupts() }
  }
  static func waitForInterrupt() {
    if Paravirt.active { ParavirtPlatform.waitForInterrupt() } else { NativePlatform.waitForInterrupt() }
  }
  static func haltForever() -> Never {
    if Paravirt.active { ParavirtPlatform.haltForever() } else { NativePlatform.haltForever() }
  }
  static func initializeConsole() {
    if Paravirt.active { ParavirtPlatform.initializeConsole() } else { NativePlatform.initializeConsole() }
  }
  static func writeConsole(_ byte: UInt8) {
    if Paravirt.active { ParavirtPlatform.writeConsole(byte) } else { NativePlatform.writeConsole(byte) }
  }
  static func markBenchmark(_ id: UInt8, end: Bool) {
    if Paravirt.active { ParavirtPlatform.markBenchmark(id, end: end) } else { NativePlatform.markBenchmark(id, end: end) }
  }
  static func readTimestampCounter() -> UInt64 { cpu_rdtsc() }
  static func readFaultAddress() -> UInt64 {
    Paravirt.active ? ParavirtPlatform.readFaultAddress() : NativePlatform.readFaultAddress()
  }
  static func readModelSpecificRegister(_ index: UInt32) -> UInt64 {
    Paravirt.active
      ? ParavirtPlatform.readModelSpecificRegister(index) : NativePlatform.readModelSpecificRegister(index)
  }
  static func writeModelSpecificRegister(_ index: UInt32, _ value: UInt64) {
    if Paravirt.active {
      ParavirtPlatform.writeModelSpecificRegister(index, value)
    } else {
      NativePlatform.writeModelSpecificRegister(index, value)
    }
  }
  static func loadDescriptorTables(gdtr: UInt64, idtr: UInt64, taskRegister: UInt16) {
    if Paravirt.active {
      ParavirtPlatform.loadDescriptorTables(gdtr: gdtr, idtr: idtr, taskRegister: taskRegister)
    } else {
      NativePlatform.loadDescriptorTables(gdtr: gdtr, idtr: idtr, taskRegister: taskRegister)
    }
  }
  static func perCPUPage() -> UInt64 { cpu_percpu() }
  static func spinWaitHint() { cpu_pause() }
  static func setKernelStack(_ top: UInt64) {
    if Paravirt.active { ParavirtPlatform.setKernelStack(top) } else { NativePlatform.setKernelStack(top) }
  }
  static func writeTaskPriority(_ value: UInt64) {
    if Paravirt.active { ParavirtPlatform.writeTaskPriority(value) } else { NativePlatform.writeTaskPriority(value) }
  }
  static func currentAddressSpace() -> UInt64 {
    Paravirt.active ? ParavirtPlatform.currentAddressSpace() : NativePlatform.currentAddressSpace()
  }
  static func switchAddressSpace(_ root: UInt64) {
    if Paravirt.active { ParavirtPlatform.switchAddressSpace(root) } else { NativePlatform.switchAddressSpace(root) }
  }
  static func setPageTableEntry(_ entry: UnsafeMutablePointer<UInt64>, _ value: UInt64) {
    if Paravirt.active {
      ParavirtPlatform.setPageTableEntry(entry, value)
    } else {
      NativePlatform.setPageTableEntry(entry, value)
    }
  }
  static func invalidatePage(_ virtualAddress: UInt64) {
    if Paravirt.active {
      ParavirtPlatform.invalidatePage(virtualAddress)
    } else {
      NativePlatform.invalidatePage(virtualAddress)
    }
  }
  static func setPageTableEntries(
    _ entries: UnsafePointer<UnsafeMutablePointer<UInt64>>, _ values: UnsafePointer<UInt64>, count: Int
  ) {
    if Paravirt.active {
      ParavirtPlatform.setPageTableEntries(entries, values, count: count)
    } else {
      NativePlatform.setPageTableEntries(entries, values, count: count)
    }
  }
  static func retireAddressSpace(_ root: UInt64) {
    if Paravirt.active { ParavirtPlatform.retireAddressSpace(root) }
  }
  static func readPort8(_ port: UInt16) -> UInt8 {
    Paravirt.active ? ParavirtPlatform.readPort8(port) : NativePlatform.readPort8(port)
  }
  static func writePort8(_ port: UInt16, _ value: UInt8) {
    if Paravirt.active { ParavirtPlatform.writePort8(port, value) } else { NativePlatform.writePort8(port, value) }
  }
  static func writePort16(_ port: UInt16, _ value: UInt16) {
    if Paravirt.active { ParavirtPlatform.writePort16(port, value) } else { NativePlatform.writePort16(port, value) }
  }
  static func readRegister32(_ address: UInt64) -> UInt32 {
    Paravirt.active ? ParavirtPlatform.readRegister32(address) : NativePlatform.readRegister32(address)
  }
  static func writeRegister32(_ address: UInt64, _ value: UInt32) {
    if Paravirt.active {
      ParavirtPlatform.writeRegister32(address, value)
    } else {
      NativePlatform.writeRegister32(address, value)
    }
  }
  static func initializeInterruptController() {
    if Paravirt.active {
      ParavirtPlatform.initializeInterruptController()
    } else {
      NativePlatform.initializeInterruptController()
    }
  }
  static func setInterruptLineMasked(_ line: Int, _ masked: Bool) {
    if Paravirt.active {
      ParavirtPlatform.setInterruptLineMasked(line, masked)
    } else {
      NativePlatform.setInterruptLineMasked(line, masked)
    }
  }
  static func isInterruptInService(_ line: Int) -> Bool {
    Paravirt.active ? ParavirtPlatform.isInterruptInService(line) : NativePlatform.isInterruptInService(line)
  }
  static func endOfInterrupt(_ line: Int) {
    if Paravirt.active { ParavirtPlatform.endOfInterrupt(line) } else { NativePlatform.endOfInterrupt(line) }
  }
  static func startPeriodicTimer(hertz: Int) {
    if Paravirt.active {
      ParavirtPlatform.startPeriodicTimer(hertz: hertz)
    } else {
      NativePlatform.startPeriodicTimer(hertz: hertz)
    }
  }
  static func measureTimestampFrequency() -> UInt64? {
    Paravirt.active ? ParavirtPlatform.measureTimestampFrequency() : NativePlatform.measureTimestampFrequency()
  }
  static func powerOff(status: Int) -> Never {
    if Paravirt.active { ParavirtPlatform.powerOff(status: status) } else { NativePlatform.powerOff(status: status) }
  }
}

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
}

/// The platform this kernel is built for.
typealias Platform = NativePlatform

/// The platform under a Xen-style hypervisor (`trivisor run --pv`): the kernel runs at ring 3 and
/// replaces every privileged instruction with a hypercall (docs/paravirtualization.md, "The
/// reference kernel in PV mode"). One vCPU: no local APIC, no IPIs.
enum ParavirtPlatform: PlatformOperations {
  private static var consoleBuffer: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (
    0, 0, 0, 0, 0, 0, 0, 0
  )
  private static var consoleLength = 0

  static func disableInterrupts() { pv_events_disable() }
  static func enableInterrupts() { pv_events_enable() }
  /// `sched_op(block)`: enables events and sleeps until one is pending; its upcall runs before
  /// the call returns; then events are masked again (STI; HLT; CLI natively).
  static func waitForInterrupt() {
    Hypercall.call(Hypercall.schedOp, Hypercall.block, 0)
    pv_events_disable()
  }
  static func haltForever() -> Never {
    while true { Hypercall.call(Hypercall.schedOp, Hypercall.block, 0) }
  }
  static func readTimestampCounter() -> UInt64 { cpu_rdtsc() }
  /// vcpu_info.arch.cr2, where the VMM stores a reflected page fault's address.
  static func readFaultAddress() -> UInt64 { Paravirt.sharedWord(16).pointee }
  /// The SYSCALL MSRs belong to the VMM (the syscall callback replaces LSTAR): nothing to do.
  static func readModelSpecificRegister(_ index: UInt32) -> UInt64 { 0 }
  static func writeModelSpecificRegister(_ index: UInt32, _ value: UInt64) {}

  /// `set_trap_table` with the PV exception handlers (events masked on entry), in place of the
  /// GDT, IDT and TSS.
  static func loadDescriptorTables(gdtr: UInt64, idtr: UInt64, taskRegister: UInt16) {
    let count = 20
    let table = UnsafeMutablePointer<UInt64>.allocate(capacity: (count + 1) * 2)
    for vector in 0..<count {
      // trap_info {u8 vector, u8 flags (bit 2: mask events), u16 cs, u64 address}
      table[vector * 2] = UInt64(vector) | UInt64(4) << 8 | UInt64(0xE033) << 16
      table[vector * 2 + 1] = Paravirt.trapStubs[vector]
    }
    table[count * 2] = 0
    table[count * 2 + 1] = 0
    if Hypercall.call(Hypercall.setTrapTable, Hypercall.address(table)) != 0 { Paravirt.fail("set_trap_table failed") }
    table.deallocate()
  }

  static func perCPUPage() -> UInt64 { cpu_percpu() }  // GS base: set_segment_base at boot
  static func spinWaitHint() { cpu_pause() }

  /// `stack_switch`: the stack the VMM switches to on entry from user mode.
  static func setKernelStack(_ top: UInt64) {
    PerCPU.current.pointee.kernelStackTop = top
    Hypercall.call(Hypercall.stackSwitch, 0xE02B, top)
  }

  /// No task-priority register in the paravirtual mode (nothing in it uses priorities).
  static func writeTaskPriority(_ value: UInt64) {}

  static func currentAddressSpace() -> UInt64 { PageTables.currentRoot }
  static func switchAddressSpace(_ root: UInt64) { PageTables.switchTo(root) }
  static func setPageTableEntry(_ entry: UnsafeMutablePointer<UInt64>, _ value: UInt64) {
    PageTables.setEntry(entry, value)
  }
  /// `mmuext_op(invlpg_local)`.
  static func invalidatePage(_ virtualAddress: UInt64) {
    Hypercall.extendedOperation(Hypercall.invalidatePageLocal, virtualAddress)
  }
  static func setPageTableEntries(
    _ entries: UnsafePointer<UnsafeMutablePointer<UInt64>>, _ values: UnsafePointer<UInt64>, count: Int
  ) {
    PageTables.setEntries(entries, values, count: count)
  }
  static func retireAddressSpace(_ root: UInt64) { PageTables.retire(root) }

  /// No port I/O at ring 3: reads give all ones, writes go nowhere (the console and the benchmark
  /// markers have operations of their own).
  static func readPort8(_ port: UInt16) -> UInt8 { 0xFF }
  static func writePort8(_ port: UInt16, _ value: UInt8) {}
  static func writePort16(_ port: UInt16, _ value: UInt16) {}

  static func initializeConsole() {}

  /// Console bytes go to `console_io(write)` a line (or 64 bytes) at a time.
  static func writeConsole(_ byte: UInt8) {
    withUnsafeMutableBytes(of: &consoleBuffer) { $0[consoleLength] = byte }
    consoleLength += 1
    if byte == 10 || consoleLength == 64 { flushConsole() }
  }

  /// Trivisor's marker hypercall (port 0x500 or 0x501 and the id, as the native markers).
  static func markBenchmark(_ id: UInt8, end: Bool) {
    let port = end ? BenchmarkSuite.markerEnd : BenchmarkSuite.markerBegin
    Hypercall.call(Hypercall.benchmarkMarker, UInt64(port), UInt64(id))
  }

  static func flushConsole() {
    guard consoleLength > 0 else { return }
    let length = consoleLength
    consoleLength = 0
    withUnsafeMutableBytes(of: &consoleBuffer) {
      _ = Hypercall.call(Hypercall.consoleIO, 0, UInt64(length), UInt64(UInt(bitPattern: $0.baseAddress!)))
    }
  }

  /// No local APIC in the paravirtual mode.
  static func readRegister32(_ address: UInt64) -> UInt32 { 0 }
  static func writeRegister32(_ address: UInt64, _ value: UInt32) {}

  /// The event upcall, failsafe and syscall callbacks (`set_callbacks`) and the timer's VIRQ port.
  static func initializeInterruptController() {
    Hypercall.call(Hypercall.setCallbacks, Paravirt.upcallEntry, Paravirt.failsafeEntry, Paravirt.syscallEntry)
    EventChannels.bindTimer()
  }
  /// Line 0 (the timer) is the VIRQ_TIMER port; there are no other lines.
  static func setInterruptLineMasked(_ line: Int, _ masked: Bool) {
    guard line == 0, EventChannels.timerPort != 0 else { return }
    EventChannels.setMasked(EventChannels.timerPort, masked)
  }
  static func isInterruptInService(_ line: Int) -> Bool { false }
  static func endOfInterrupt(_ line: Int) {}

  /// `vcpu_op(set_periodic_timer)` on vCPU 0 (at least 1 ms, Xen's minimum).
  static func startPeriodicTimer(hertz: Int) {
    var period = UInt64(max(1_000_000, 1_000_000_000 / max(hertz, 1)))
    withUnsafeMutablePointer(to: &period) {
      if Hypercall.call(Hypercall.vcpuOp, 6, 0, Hypercall.address($0)) != 0 { Paravirt.fail("no periodic timer") }
    }
  }

  /// The TSC frequency from vcpu_time_info: ns = ((tsc << shift) * mul) >> 32.
  static func measureTimestampFrequency() -> UInt64? {
    let multiplier = UInt64(UnsafeMutablePointer<UInt32>(bitPattern: UInt(Paravirt.sharedInfo + 56))!.pointee)
    let shift = Int(UnsafeMutablePointer<Int8>(bitPattern: UInt(Paravirt.sharedInfo + 60))!.pointee)
    guard multiplier > 0 else { return nil }
    var frequency = (UInt64(1_000_000_000) << 32) / multiplier
    if shift > 0 { frequency >>= UInt64(shift) } else if shift < 0 { frequency <<= UInt64(-shift) }
    return frequency
  }

  /// `sched_op(shutdown)`: SHUTDOWN_poweroff for status 0; otherwise Trivisor's exit-status reason
  /// (0x100 + status, Sources/VMM/Paravirt/ParavirtDomain+ExitStatus.swift), which ends the run as
  /// native mode's isa-debug-exit write does.
  static func powerOff(status: Int) -> Never {
    flushConsole()
    var reason: UInt32 = status == 0 ? 0 : 0x100 | UInt32(truncatingIfNeeded: status & 0xFF)
    withUnsafeMutablePointer(to: &reason) {
      _ = Hypercall.call(Hypercall.schedOp, Hypercall.shutdown, Hypercall.address($0))
    }
    haltForever()
  }
}

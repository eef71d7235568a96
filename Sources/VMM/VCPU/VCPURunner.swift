/// The run loop of one vCPU, following the VMX flow of the seed: enter the guest (VM entry), take
/// the exit, handle it in the VMM, resume. Between exits it brings timers up to date, delivers
/// pending interrupts (injecting when the vCPU can take one, otherwise asking for an interrupt
/// window), acts on the machine-control lines, and arms a host timer that kicks the vCPU at the
/// next timer deadline. A guest in `HLT` sleeps on the runner's `WakeupEvent` until that deadline,
/// host input or a control request: no busy waiting.
///
/// Threading: a runner and its vCPU belong to one host thread (the caller of `Machine.run()` for
/// the bootstrap processor). Other threads reach it only through `MachineControl` (which kicks the
/// vCPU and signals `wakeup`) and the deadline timer (which kicks).
public final class VCPURunner {
  /// The vCPU's index in the machine (0: the bootstrap processor).
  public let index: Int
  /// The engine's vCPU this runner drives.
  public let vcpu: any VirtualCPU
  /// This vCPU's exits, by reason, with their handling times.
  public let statistics = ExitStatistics()
  /// What the idle (HLT) loop sleeps on.
  let wakeup = WakeupEvent()
  unowned let machine: Machine
  /// The A20 gate as last passed to the vCPU (open at power-on).
  var a20Applied = true
  var windowRequested = false
  /// The exit being handled, recorded in `statistics` just before the next entry (or at the stop).
  private var lastExit: ExitKind?
  private var exitTime: UInt64 = 0

  init(index: Int, vcpu: any VirtualCPU, machine: Machine) {
    self.index = index
    self.vcpu = vcpu
    self.machine = machine
  }

  /// Loads `boot` into the vCPU: system registers first (they decide how the rest is read), then
  /// the general registers and the MSRs.
  func applyBootState(_ boot: BootState) throws(EngineError) {
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setRegisters(boot.registers)
    try vcpu.setMSRs(boot.msrs)
  }

  /// Runs the vCPU until the machine stops; every exit, including the last, is counted.
  func run() -> StopReason {
    let reason = loop()
    if let k = lastExit {
      statistics.record(k, nanoseconds: machine.hostClock.nanoseconds &- exitTime)
      lastExit = nil
    }
    return reason
  }

  private func loop() -> StopReason {
    let machine = self.machine
    while true {
      // Devices catch up with guest time; interrupts that fell due are raised.
      var deviceDeadline = machine.advanceDevices()
      if machine.control.changed, let stop = applyControl() { return stop }
      let host = machine.hostStop()
      if let stop = host.reason { return stop }
      deviceDeadline = earliest(deviceDeadline, host.outputDeadline)

      do { try acceptInterrupts() } catch { return engineFailure(error) }
      // Host time: the timer kicks the vCPU at the next device deadline (or the timeout). Virtual
      // time: the instruction budget stops the vCPU exactly at the deadline instead, and the timer
      // only watches the timeout.
      var budget: UInt64?
      if let virtualTime = machine.virtualTime {
        budget = min(Machine.virtualTimeSlice, deviceDeadline.map { virtualTime.instructions(until: $0) } ?? .max)
        machine.deadlineTimer?.arm(machine.timeoutDeadline)
      } else {
        machine.deadlineTimer?.arm(earliest(deviceDeadline, machine.timeoutDeadline))
      }

      // VM entry ... VM exit.
      let now = machine.hostClock.nanoseconds
      if let k = lastExit { statistics.record(k, nanoseconds: now &- exitTime) }
      let exit: VMExit
      do { exit = try vcpu.run(budget: budget) } catch {
        lastExit = nil
        return engineFailure(error)
      }
      exitTime = machine.hostClock.nanoseconds
      statistics.guestNanoseconds &+= exitTime &- now
      lastExit = ExitKind(exit)

      if let stop = handle(exit) { return stop }
    }
  }

  /// Interrupt delivery from the userspace PIC to the bootstrap processor (the 8259's INTR pin
  /// reaches the BSP only, as in virtual-wire mode on a PC).
  private func acceptInterrupts() throws(EngineError) {
    guard index == 0, let pic = machine.pic else { return }
    if pic.hasPendingInterrupt {
      if vcpu.readyForInterruptInjection, let vector = pic.acknowledge() {
        try vcpu.injectInterrupt(vector: vector)
      }
      let want = pic.hasPendingInterrupt
      if want != windowRequested {
        vcpu.requestInterruptWindow(want)
        windowRequested = want
      }
    } else if windowRequested {
      vcpu.requestInterruptWindow(false)
      windowRequested = false
    }
  }

  /// The earlier of two optional deadlines.
  @inline(__always)
  func earliest(_ a: UInt64?, _ b: UInt64?) -> UInt64? {
    guard let a else { return b }
    guard let b else { return a }
    return min(a, b)
  }

  /// Acts on the machine-control lines: a stop ends the run, a reset reboots the machine (or ends
  /// the run with `.reset` when it is not configured to reboot), an A20 change reaches the vCPU.
  private func applyControl() -> StopReason? {
    var state = machine.control.take()
    if state.paused {
      machine.control.park()
      state = machine.control.take()
    }
    if let stop = state.stop { return stop }
    if let source = state.reset { return machine.reset(source) }
    if state.a20Enabled != a20Applied {
      a20Applied = state.a20Enabled
      vcpu.setA20Gate(a20Applied)
    }
    return nil
  }

  /// This vCPU at its power-on state for a machine reset, then `boot` (the bootstrap processor's)
  /// on top; the A20 gate open again.
  func resetVCPU(boot: BootState?) throws(EngineError) {
    try vcpu.reset()
    if let boot { try applyBootState(boot) }
    windowRequested = false
    a20Applied = true
    vcpu.setA20Gate(true)
  }

  func engineFailure(_ error: EngineError) -> StopReason {
    .internalError(stateReport(error.message))
  }

  /// A report with the vCPU state and the bytes at RIP, for failures and shutdowns.
  func stateReport(_ reason: String) -> InternalErrorReport {
    let regs = try? vcpu.registers()
    let sregs = try? vcpu.specialRegisters()
    var bytes: [UInt8] = []
    if let regs, let sregs {
      bytes = GuestPageWalker(memory: machine.memory, specialRegisters: sregs).bytesAtRIP(regs)
    }
    return InternalErrorReport(reason: reason, registers: regs, specialRegisters: sregs, bytesAtRIP: bytes)
  }
}

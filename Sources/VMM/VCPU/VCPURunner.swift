import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

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
  /// This vCPU's local APIC (used when the VMM provides the interrupt controllers, `--irqchip user`).
  public let lapic: LocalAPIC
  /// This vCPU's exits, by reason, with their handling times.
  public let statistics = ExitStatistics()
  /// The host timer that kicks this vCPU at the deadline the runner armed (while `run()` runs;
  /// armed and read on this runner's thread only).
  var deadlineTimer: DeadlineTimer?
  /// What the idle (HLT) loop sleeps on.
  let wakeup = WakeupEvent()
  /// The machine this runner belongs to (it owns the runner and outlives it: no reference
  /// counting on the run loop's every access).
  unowned(unsafe) let machine: Machine
  /// The machine's port bus and device lock for lightweight exits (both live as long as the
  /// machine: no reference counting on that path); no lock with one vCPU.
  let portBus: Unmanaged<PortIOBus>
  let deviceMutex: UnsafeMutablePointer<pthread_mutex_t>?
  /// The A20 gate as last passed to the vCPU (open at power-on).
  var a20Applied = true
  /// `MachineControl.State.generation` of the control lines this runner last acted on.
  var controlSeen: UInt64 = 0
  var windowRequested = false
  /// CR8 as the runner last carried it between the vCPU and its local APIC (nil: look again), and
  /// the task-priority threshold the vCPU has (VCPURunner+TaskPriority.swift).
  var taskPrioritySeen: UInt8?
  var taskPriorityThresholdArmed: UInt8 = 0
  /// Holds a pCPU of `MachineConfiguration.scheduling`'s pool (VCPURunner+Scheduling.swift).
  var holdsPCPU = false
  /// The exit being handled, recorded in `statistics` just before the next entry (or at the stop).
  private var lastExit: ExitKind?
  private var exitTime: UInt64 = 0
  /// INIT and start-up IPIs from other threads (the interrupt router), taken at the next exit.
  private let startupLock = NSLockLike()
  private var pendingINIT = false
  private var pendingStartupVector: UInt8?
  /// Set with every INIT or SIPI: the runner looks at the locked state only when it is set.
  private let startupEvent = Atomic<Bool>(false)
  /// In the wait-for-SIPI state: application processors from power-on and after INIT; a
  /// paravirtual vCPU while it is down.
  private var waitingForStartup: Bool
  /// A paravirtual `vcpu_op(up)`: leave the wait, loading the context when there is one.
  private var pendingParavirtualStart: BootState??
  /// A paravirtual `vcpu_op(down)`: enter the wait.
  private var pendingParavirtualStop = false
  /// An NMI for a vCPU whose interrupt controller is the engine's (`Machine.raiseNMI`).
  private let nmiRequested = Atomic<Bool>(false)

  init(index: Int, vcpu: any VirtualCPU, machine: Machine) {
    self.index = index
    self.vcpu = vcpu
    self.machine = machine
    portBus = Unmanaged.passUnretained(machine.portBus)
    deviceMutex = machine.configuration.cpuCount > 1 ? machine.deviceLock.rawMutex : nil
    // With the engine's interrupt controller (KVM's in-kernel LAPICs) the engine keeps its
    // application processors in wait-for-SIPI itself: the runner just enters them.
    waitingForStartup = index != 0 && machine.pic != nil
    lapic = LocalAPIC(id: UInt8(truncatingIfNeeded: index), clock: machine.clock)
  }

  /// An INIT or SIPI arrived and the runner has not looked at it yet.
  var hasStartupEvent: Bool { startupEvent.load(ordering: .acquiring) }

  /// True while the vCPU waits for a start-up IPI (it runs no guest code).
  public var isWaitingForStartup: Bool { startupLock.locked { waitingForStartup || pendingINIT } }

  /// An INIT IPI: at its next exit the vCPU resets and waits for a start-up IPI. Any thread.
  public func receiveINIT() {
    startupLock.locked {
      pendingINIT = true
      pendingStartupVector = nil
    }
    startupEvent.store(true, ordering: .releasing)
    RunnerKick(self).wake()
  }

  /// A start-up IPI with `vector`: a vCPU waiting for one starts in real mode at
  /// `vector << 8 : 0000` (physical `vector << 12`); otherwise it is ignored, as on hardware. Any
  /// thread.
  public func receiveStartup(vector: UInt8) {
    startupLock.locked { pendingStartupVector = vector }
    startupEvent.store(true, ordering: .releasing)
    RunnerKick(self).wake()
  }

  /// A paravirtual `vcpu_op(up)` (`ParavirtDomain.bringUp`): the vCPU leaves its wait at its next
  /// check, loading `context` first when given, else resuming where it went down. Any thread.
  func startParavirtual(_ context: BootState?) {
    startupLock.locked {
      pendingParavirtualStart = .some(context)
      pendingParavirtualStop = false
    }
    startupEvent.store(true, ordering: .releasing)
    RunnerKick(self).wake()
  }

  /// A paravirtual `vcpu_op(down)`: the vCPU waits, running nothing, from its next exit until
  /// `startParavirtual`. Any thread.
  func stopParavirtual() {
    startupLock.locked {
      pendingParavirtualStop = true
      pendingParavirtualStart = nil
    }
    startupEvent.store(true, ordering: .releasing)
    RunnerKick(self).wake()
  }

  /// Takes INIT and SIPI state changes; false while the vCPU must keep waiting for start-up.
  private func applyStartupEvents() throws(EngineError) -> Bool {
    let (initRequested, vector, paravirtualStart) = startupLock.locked { () -> (Bool, UInt8?, BootState??) in
      let r = (pendingINIT, pendingStartupVector, pendingParavirtualStart)
      pendingINIT = false
      pendingStartupVector = nil
      pendingParavirtualStart = nil
      if r.0 || pendingParavirtualStop { waitingForStartup = true }
      if r.2 != nil { waitingForStartup = false }
      pendingParavirtualStop = false
      return r
    }
    if case .some(.some(let context)) = paravirtualStart { try applyBootState(context) }
    if initRequested {
      try vcpu.reset()
      lapic.receiveINIT()
      if machine.pic != nil { reloadTaskPriority() }
    }
    if let vector, waitingForStartup {
      try vcpu.reset()
      var s = try vcpu.specialRegisters()
      s.cs = Segment(selector: UInt16(vector) << 8, base: UInt64(vector) << 12, limit: 0xFFFF, type: 11)
      try vcpu.setSpecialRegisters(s)
      var r = Registers()
      r.rip = 0
      try vcpu.setRegisters(r)
      startupLock.locked { waitingForStartup = false }
      if machine.pic != nil { reloadTaskPriority() }
      machine.configuration.log?("vCPU \(index) started at \(String(vector, radix: 16)):0000")
    }
    return !waitingForStartup
  }

  /// Loads `boot` into the vCPU: system registers first (they decide how the rest is read), then
  /// the general registers and the MSRs.
  func applyBootState(_ boot: BootState) throws(EngineError) {
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setRegisters(boot.registers)
    try vcpu.setMSRs(boot.msrs)
    if machine.pic != nil { reloadTaskPriority() }
  }

  /// Runs the vCPU until the machine stops; every exit, including the last, is counted.
  func run() -> StopReason {
    // Held only while the loop runs: the vCPU must not keep its runner alive.
    if machine.configuration.lightweightExits { vcpu.lightweightExits = self }
    defer { vcpu.lightweightExits = nil }
    if machine.configuration.scheduling != nil { prepareScheduling() }
    let reason = loop()
    releasePCPU(blocking: true)
    if let k = lastExit {
      statistics.record(k, nanoseconds: machine.hostClock.nanoseconds &- exitTime)
      lastExit = nil
    }
    return reason
  }

  private func loop() -> StopReason {
    unowned(unsafe) let machine = self.machine
    while true {
      if machine.control.hasChanged(since: controlSeen), let stop = applyControl() { return stop }
      // An application processor waits for its start-up IPI without running guest code.
      do {
        if waitingForStartup || startupEvent.exchange(false, ordering: .acquiringAndReleasing),
          !(try applyStartupEvents())
        {
          if let stop = waitForStartup() { return stop }
          continue
        }
      } catch {
        return engineFailure(error)
      }
      // Under a pCPU pool: no guest code without a pCPU (a control request calls the wait off).
      if machine.configuration.scheduling != nil && !holdsPCPU && !acquirePCPU() { continue }
      // Devices catch up with guest time; interrupts that fell due are raised.
      machine.deviceLock.lock()
      var deviceDeadline = machine.advanceDevices()
      let host = machine.hostStop()
      if let stop = host.reason {
        machine.deviceLock.unlock()
        return stop
      }
      deviceDeadline = earliest(deviceDeadline, host.outputDeadline)
      do {
        try acceptInterrupts()
        // A paravirtual TLB flush another vCPU asked for (`ParavirtDomain.performRequestedFlushes`).
        if machine.paravirt.takeTranslationFlush(for: index) { try vcpu.invalidateTranslations() }
      } catch {
        machine.deviceLock.unlock()
        return engineFailure(error)
      }
      let events = serviceParavirtualEvents()
      deviceDeadline = earliest(deviceDeadline, events.deadline)
      if let stop = events.stop {
        machine.deviceLock.unlock()
        return stop
      }
      machine.paravirt.flushBarrier.enteringGuest(index)
      machine.deviceLock.unlock()
      // Host time: the timer kicks the vCPU at the next device deadline (or the timeout). Virtual
      // time: the instruction budget stops the vCPU exactly at the deadline instead, and the timer
      // only watches the timeout.
      var budget: UInt64?
      if let virtualTime = machine.virtualTime {
        budget = min(Machine.virtualTimeSlice, deviceDeadline.map { virtualTime.instructions(until: $0) } ?? .max)
        deadlineTimer?.arm(machine.timeoutDeadline)
      } else {
        deadlineTimer?.arm(earliest(deviceDeadline, machine.timeoutDeadline))
      }

      // VM entry ... VM exit.
      let now = machine.hostClock.nanoseconds
      if let k = lastExit { statistics.record(k, nanoseconds: now &- exitTime) }
      let exit: VMExit
      do { exit = try runGuest(budget: budget) } catch {
        lastExit = nil
        return engineFailure(error)
      }
      exitTime = machine.hostClock.nanoseconds
      statistics.guestNanoseconds &+= exitTime &- now
      lastExit = ExitKind(exit)
      // The guest may have written CR8: its local APIC's TPR is the same register.
      if machine.pic != nil { takeTaskPriority() }

      if let stop = handle(exit) { return stop }
      if holdsPCPU { yieldPCPUIfAsked() }
    }
  }

  /// An NMI for this vCPU when the engine's interrupt controller is in use; injected at the next
  /// entry. Any thread.
  func requestNMI() {
    nmiRequested.store(true, ordering: .releasing)
    RunnerKick(self).wake()
  }

  /// Interrupt delivery: an NMI first (the vCPU latches it until NMIs are unblocked), then this
  /// vCPU's local APIC (gated by its processor priority: the TPR, which is CR8, and the class in
  /// service), then the userspace PIC where its output reaches this vCPU (the BSP's LINT0 in
  /// virtual-wire mode, or an ExtINT entry of the I/O APIC: `Machine.picOutputReaches`), which the
  /// task priority does not gate. Injects when the vCPU can take an interrupt, otherwise asks for
  /// an interrupt window; a vector only the TPR holds back arms the vCPU's task-priority threshold.
  private func acceptInterrupts() throws(EngineError) {
    if nmiRequested.exchange(false, ordering: .acquiringAndReleasing) { try vcpu.injectNMI() }
    guard let pic = machine.pic else { return }  // the engine's irqchip delivers by itself
    if lapic.takeNMI() { try vcpu.injectNMI() }
    if vcpu.readyForInterruptInjection {
      if let vector = lapic.acknowledge() {
        try vcpu.injectInterrupt(vector: vector)
      } else if pic.hasPendingInterrupt && machine.picOutputReaches(self), let vector = pic.acknowledge() {
        try vcpu.injectInterrupt(vector: vector)
      }
    }
    let want = lapic.hasDeliverableInterrupt || (pic.hasPendingInterrupt && machine.picOutputReaches(self))
    if want != windowRequested {
      vcpu.requestInterruptWindow(want)
      windowRequested = want
    }
    armTaskPriorityThreshold()
  }

  /// Sleeps in wait-for-SIPI until a start-up IPI, INIT, a control request or the timeout.
  private func waitForStartup() -> StopReason? {
    unowned(unsafe) let machine = self.machine
    if machine.control.hasChanged(since: controlSeen) { return nil }
    if let stop = machine.hostStop().reason { return stop }
    releasePCPU(blocking: true)
    let now = machine.hostClock.nanoseconds
    wakeup.wait(timeout: machine.timeoutDeadline.map { $0 > now ? $0 - now : 0 })
    return nil
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
    // The bootstrap processor carries out a reset; the other runners park meanwhile. A loop, not
    // an `if`: a pause requested again between the wake-up and this `take` (resume, then pause at
    // once) is already counted in `state.generation`, so going on would lose it for good.
    while (state.paused || (state.reset != nil && index != 0)) && state.stop == nil {
      releasePCPU(blocking: true)
      machine.control.park()
      state = machine.control.take()
    }
    controlSeen = state.generation
    if let stop = state.stop { return stop }
    if let source = state.reset, index == 0 { return machine.reset(source) }
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
    lapic.reset()
    if index != 0 && machine.pic != nil {
      startupLock.locked {
        waitingForStartup = true
        pendingINIT = false
        pendingStartupVector = nil
      }
    }
    if let boot { try applyBootState(boot) }
    if machine.pic != nil { reloadTaskPriority() }
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

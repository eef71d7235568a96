/// The run loop, following the VMX flow of the seed: enter the guest (VM entry), take the exit,
/// handle it in the VMM, resume. Between exits it brings timers up to date, delivers pending
/// interrupts from the PIC (injecting when the vCPU can take one, otherwise asking for an
/// interrupt window), and arms a host timer that kicks the vCPU at the next timer deadline.
/// A guest in `HLT` sleeps on `WakeupEvent` until that deadline or host input: no busy waiting.
extension VirtualMachine {
  /// Runs the guest until it stops; never throws: every failure becomes a `StopReason`.
  public func run() -> RunOutcome {
    let start = hostClock.nanoseconds
    timeoutDeadline = configuration.timeoutSeconds.map { start &+ UInt64(min(max(0, $0), 1e9) * 1e9) }
    let vcpu = self.vcpu
    let timer = DeadlineTimer(clock: hostClock, action: { [kicker = Kicker(vcpu)] in kicker.kick() })
    if configuration.serial == .stdio && configuration.consoleCapture == nil {
      hostInput = HostConsoleInput(
        queue: input,
        wake: { [wakeup, kicker = Kicker(vcpu)] in
          wakeup.signal()
          kicker.kick()
        })
    }
    if configuration.handleHostSignals {
      HostSignals.install { [machine = WeakMachine(self)] signo in
        machine.vm?.hostInput?.restore()
        machine.vm?.requestStop(.hostSignal(signo))
      }
    }
    deadlineTimer = timer
    drainInput()
    let reason = loop(timer: timer)
    deadlineTimer = nil
    timer.stop()
    let wall = hostClock.nanoseconds &- start
    // The writer threads get the rest of the output out, unless their readers have stopped reading.
    let dropped = console.finish() &+ (debugConsoleOutput?.finish() ?? 0)
    hostInput?.restore()
    if configuration.handleHostSignals { HostSignals.uninstall() }
    var report = statistics.report(
      wallNanoseconds: wall, instructionsRetired: vcpu.instructionsRetired, engineCounters: vcpu.engineCounters)
    report.consoleBytesDropped = dropped
    return RunOutcome(reason: reason, statistics: report)
  }

  private func loop(timer: DeadlineTimer) -> StopReason {
    var windowRequested = false
    var lastExit: ExitKind?
    var exitTime: UInt64 = 0
    while true {
      // Devices catch up with guest time; interrupts that fell due are raised.
      var deviceDeadline = advanceDevices()
      if stopRequest.pending, let r = stopRequest.take() { return r }
      if let t = timeoutDeadline, hostClock.nanoseconds >= t {
        return .timeout(seconds: configuration.timeoutSeconds ?? 0)
      }
      if let o = outputStop, let t = o.deadline {
        if clock.nanoseconds >= t { return .outputMatched(o.text) }
        deviceDeadline = earliest(deviceDeadline, t)
      }

      // Interrupt delivery from the userspace PIC.
      if let pic {
        if pic.hasPendingInterrupt {
          if vcpu.readyForInterruptInjection, let vector = pic.acknowledge() {
            do { try vcpu.injectInterrupt(vector: vector) } catch { return engineFailure(error) }
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
      // Host time: the timer kicks the vCPU at the next device deadline (or the timeout). Virtual
      // time: the instruction budget stops the vCPU exactly at the deadline instead, and the timer
      // only watches the timeout.
      var budget: UInt64?
      if let virtualTime {
        budget = min(Self.virtualTimeSlice, deviceDeadline.map { virtualTime.instructions(until: $0) } ?? .max)
        timer.arm(timeoutDeadline)
      } else {
        timer.arm(earliest(deviceDeadline, timeoutDeadline))
      }

      // VM entry ... VM exit.
      let now = hostClock.nanoseconds
      if let k = lastExit { statistics.record(k, nanoseconds: now &- exitTime) }
      let exit: VMExit
      do { exit = try vcpu.run(budget: budget) } catch { return engineFailure(error) }
      exitTime = hostClock.nanoseconds
      statistics.guestNanoseconds &+= exitTime &- now
      lastExit = ExitKind(exit)

      if let stop = handle(exit) {
        statistics.record(ExitKind(exit), nanoseconds: hostClock.nanoseconds &- exitTime)
        return stop
      }
    }
  }

  /// Instructions a deterministic run executes between checks of the timeout and host input when
  /// no timer deadline is closer.
  static let virtualTimeSlice: UInt64 = 10_000_000

  /// The earlier of two optional deadlines.
  @inline(__always)
  private func earliest(_ a: UInt64?, _ b: UInt64?) -> UInt64? {
    guard let a else { return b }
    guard let b else { return a }
    return min(a, b)
  }

  /// Brings every timed device up to the current guest time; returns the earliest next deadline.
  private func advanceDevices() -> UInt64? {
    let now = clock.nanoseconds
    var deadline: UInt64?
    for d in timedDevices {
      d.advance(to: now)
      if let next = d.nextDeadline, next < deadline ?? .max { deadline = next }
    }
    return deadline
  }

  /// Handles one exit in the VMM; returns a reason when the guest must stop.
  private func handle(_ exit: VMExit) -> StopReason? {
    do {
      switch exit {
      case .io(let a):
        if a.isWrite {
          portBus.write(port: a.port, size: a.size, value: a.value)
          if let stop = devices.stopRequest { return StopReason(stop) }
          if devices.a20Enabled != a20Enabled {
            a20Enabled = devices.a20Enabled
            vcpu.setA20Gate(a20Enabled)
          }
        } else {
          try vcpu.complete(.value(UInt64(portBus.read(port: a.port, size: a.size))))
        }
      case .mmio(let a):
        if a.isWrite {
          mmioBus.write(address: a.address, size: a.size, value: a.value)
          if let stop = devices.stopRequest { return StopReason(stop) }
        } else {
          try vcpu.complete(.value(mmioBus.read(address: a.address, size: a.size)))
        }
      case .halt:
        return try idle()
      case .interruptWindow, .budgetExhausted:
        break
      case .kicked:
        drainInput()
      case .shutdown(.haltWithInterruptsDisabled):
        return .haltedForever(stateReport("HLT with interrupts disabled"))
      case .shutdown(let why):
        return .shutdown(why, stateReport(why == .tripleFault ? "triple fault" : "shutdown"))
      case .internalError(let report):
        return .internalError(report)
      case .cpuid:
        try vcpu.complete(.cpuid(eax: 0, ebx: 0, ecx: 0, edx: 0))
      case .msrRead, .msrWrite:
        try vcpu.complete(.fault(vector: 13, errorCode: 0))
      case .rdtsc:
        try vcpu.complete(.value(clock.nanoseconds))  // a 1 GHz TSC in guest time
      case .invlpg:
        try vcpu.complete(.none)
      case .hypercall:
        try vcpu.complete(.value(UInt64.max))  // -1: no hypercalls are defined yet
      case .exception(let vector, let code):
        return .internalError(
          stateReport("unexpected guest exception \(vector)" + (code.map { " (error code \($0))" } ?? "")))
      }
    } catch {
      return engineFailure(error)
    }
    return nil
  }

  /// The guest executed HLT: sleep until an interrupt can wake it (a timer deadline or host input)
  /// or a stop is requested. HLT with IF=0 can never end.
  private func idle() throws(EngineError) -> StopReason? {
    guard let pic else { return nil }  // in-kernel irqchip: KVM handles HLT itself
    deadlineTimer?.arm(nil)  // this thread sleeps until the deadline itself: no kick needed
    if try vcpu.registers().rflags & 0x200 == 0 {
      return .haltedForever(stateReport("HLT with interrupts disabled"))
    }
    while true {
      var deadline = advanceDevices()
      drainInput()
      if pic.hasPendingInterrupt || stopRequest.pending { return nil }
      let hostNow = hostClock.nanoseconds
      if let t = timeoutDeadline, hostNow >= t { return nil }
      if let t = outputStop?.deadline {
        if clock.nanoseconds >= t { return nil }
        deadline = earliest(deadline, t)
      }
      if let virtualTime, let deadline {
        // Nothing runs while the guest idles: jump guest time to the next timer event.
        virtualTime.advance(to: deadline)
        continue
      }
      // Host time (or virtual time with no timer armed): sleep until the deadline, host input,
      // a stop request or the timeout.
      let until = earliest(virtualTime == nil ? deadline : nil, timeoutDeadline)
      wakeup.wait(timeout: until.map { $0 > hostNow ? $0 - hostNow : 0 })
    }
  }

  private func drainInput() {
    guard !input.isEmpty else { return }
    serial.receive(input.drain())
  }

  private func engineFailure(_ error: EngineError) -> StopReason {
    .internalError(stateReport(error.message))
  }

  /// A report with the vCPU state and the bytes at RIP, for failures and shutdowns.
  func stateReport(_ reason: String) -> InternalErrorReport {
    let regs = try? vcpu.registers()
    let sregs = try? vcpu.specialRegisters()
    var bytes: [UInt8] = []
    if let regs, let sregs {
      bytes = GuestPageWalker(memory: memory, specialRegisters: sregs).bytesAtRIP(regs)
    }
    return InternalErrorReport(reason: reason, registers: regs, specialRegisters: sregs, bytesAtRIP: bytes)
  }
}

extension StopReason {
  init(_ request: PCDevices.StopRequest) {
    switch request {
    case .exit(let status): self = .debugExit(value: status >> 1)
    case .powerOff: self = .powerOff
    case .reset: self = .reset
    }
  }
}

/// Lets other threads kick the vCPU (`VirtualCPU.kick` is documented as thread-safe).
struct Kicker: @unchecked Sendable {
  let vcpu: any VirtualCPU
  init(_ vcpu: any VirtualCPU) { self.vcpu = vcpu }
  func kick() { vcpu.kick() }
}

/// A weak reference to the machine for the signal watcher thread (`requestStop` is thread-safe).
struct WeakMachine: @unchecked Sendable {
  weak var vm: VirtualMachine?
  init(_ vm: VirtualMachine) { self.vm = vm }
}

/// Running the machine: what is VM-wide (the timeout, host input, host signals, the deadline timer,
/// console output, the outcome) around the per-vCPU runners. With one vCPU its runner runs on the
/// calling thread.
extension Machine {
  /// Runs the guest until it stops; never throws: every failure becomes a `StopReason`.
  public func run() -> RunOutcome {
    portBus.freeze()
    mmioBus.freeze()
    let start = hostClock.nanoseconds
    timeoutDeadline = configuration.timeoutSeconds.map { start &+ UInt64(min(max(0, $0), 1e9) * 1e9) }
    let kicks = runners.map { RunnerKick($0) }
    let timer = DeadlineTimer(clock: hostClock, action: { for k in kicks { k.kick() } })
    if configuration.serial == .stdio && configuration.consoleCapture == nil {
      hostInput = HostConsoleInput(queue: input, wake: { for k in kicks { k.wake() } })
    }
    if configuration.handleHostSignals {
      HostSignals.install { [machine = WeakMachine(self)] signo in
        machine.machine?.hostInput?.restore()
        machine.machine?.requestStop(.hostSignal(signo))
      }
    }
    for k in kicks { control.addKick { k.wake() } }
    deadlineTimer = timer
    drainInput()
    let reason = runners[0].run()
    control.removeKicks()
    deadlineTimer = nil
    timer.stop()
    let wall = hostClock.nanoseconds &- start
    // The writer threads get the rest of the output out, unless their readers have stopped reading.
    let dropped = console.finish() &+ (debugConsoleOutput?.finish() ?? 0)
    hostInput?.restore()
    if configuration.handleHostSignals { HostSignals.uninstall() }
    let bsp = vcpus[0]
    var report = statistics.report(
      wallNanoseconds: wall, instructionsRetired: bsp.instructionsRetired, engineCounters: bsp.engineCounters)
    report.consoleBytesDropped = dropped
    report.resets = control.resetCount
    return RunOutcome(reason: reason, statistics: report)
  }

  /// Instructions a deterministic run executes between checks of the timeout and host input when
  /// no timer deadline is closer.
  static let virtualTimeSlice: UInt64 = 10_000_000

  /// Brings every timed device up to the current guest time; returns the earliest next deadline.
  func advanceDevices() -> UInt64? {
    let now = clock.nanoseconds
    var deadline: UInt64?
    for d in timedDevices {
      d.advance(to: now)
      if let next = d.nextDeadline, next < deadline ?? .max { deadline = next }
    }
    return deadline
  }

  /// Hands host input waiting in `input` to the UART.
  func drainInput() {
    guard !input.isEmpty else { return }
    serial.receive(input.drain())
  }

  /// Why the run must end now, other than the guest: the timeout passed, or the guest printed the
  /// `--stop-on-output` text and its line ended. Also returns the output-stop deadline, which the
  /// runners treat like a device deadline.
  func hostStop() -> (reason: StopReason?, outputDeadline: UInt64?) {
    if let t = timeoutDeadline, hostClock.nanoseconds >= t {
      return (.timeout(seconds: configuration.timeoutSeconds ?? 0), nil)
    }
    if let o = outputStop, let t = o.deadline {
      if clock.nanoseconds >= t { return (.outputMatched(o.text), nil) }
      return (nil, t)
    }
    return (nil, nil)
  }
}

/// Lets other threads interrupt a runner: kick its vCPU out of `run` and wake it from HLT
/// (`VirtualCPU.kick` and `WakeupEvent.signal` are documented as thread-safe).
struct RunnerKick: @unchecked Sendable {
  let vcpu: any VirtualCPU
  let wakeup: WakeupEvent
  init(_ runner: VCPURunner) {
    vcpu = runner.vcpu
    wakeup = runner.wakeup
  }
  func kick() { vcpu.kick() }
  func wake() {
    wakeup.signal()
    vcpu.kick()
  }
}

/// A weak reference to the machine for the signal watcher thread (`requestStop` is thread-safe).
struct WeakMachine: @unchecked Sendable {
  weak var machine: Machine?
  init(_ machine: Machine) { self.machine = machine }
}

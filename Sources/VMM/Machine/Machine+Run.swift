import Foundation

/// Running the machine: what is VM-wide (the timeout, host input, host signals, the deadline timer,
/// console output, the outcome) around the per-vCPU runners. The bootstrap processor's runner runs
/// on the calling thread, every other runner on a host thread of its own; the first runner to
/// stop stops them all (through `MachineControl`), and `run()` returns when every thread is done.
extension Machine {
  /// Runs the guest until it stops; never throws: every failure becomes a `StopReason`.
  public func run() -> RunOutcome {
    portBus.freeze()
    mmioBus.freeze()
    let start = hostClock.nanoseconds
    timeoutDeadline = configuration.timeoutSeconds.map { start &+ UInt64(min(max(0, $0), 1e9) * 1e9) }
    let kicks = runners.map { RunnerKick($0) }
    // One host timer per runner: it kicks that runner's vCPU at the deadline the runner armed.
    for (runner, kick) in zip(runners, kicks) {
      runner.deadlineTimer = DeadlineTimer(clock: hostClock, action: { kick.kick() })
    }
    if configuration.serial == .stdio && configuration.consoleCapture == nil {
      hostInput = HostConsoleInput(queue: input, wake: { for k in kicks { k.wake() } })
    }
    if configuration.handleHostSignals {
      // The handler holds the control lines and the console, not the machine: a weak reference
      // to the machine would give it a side table, and every retain and release of it on the
      // exit path would take the runtime's slow path.
      HostSignals.install { [control, hostInput] signo in
        hostInput?.restore()
        control.requestStop(.hostSignal(signo))
      }
    }
    for k in kicks { control.addKick { k.wake() } }
    attachScheduling()
    // Frames for the guest arriving while every vCPU idles: wake them, as host input does.
    configuration.network?.inbox.wake = { for k in kicks { k.wake() } }
    deviceLock.locked { drainInput() }
    let finished = DispatchGroup()
    for runner in runners.dropFirst() {
      finished.enter()
      let box = RunnerBox(runner)
      let started = PThread.detach {
        let reason = box.runner.run()
        box.runner.machine.control.requestStop(reason)
        finished.leave()
      }
      if !started {
        // Without its thread the vCPU never runs: stop the machine rather than wait for it.
        control.requestStop(
          .internalError(InternalErrorReport(reason: "cannot create a host thread for vCPU \(runner.index)")))
        finished.leave()
      }
    }
    let bspReason = runners[0].run()
    control.requestStop(bspReason)
    finished.wait()
    let reason = control.requestedStop ?? bspReason
    control.removeKicks()
    configuration.network?.inbox.wake = nil
    for runner in runners {
      runner.deadlineTimer?.stop()
      runner.deadlineTimer = nil
    }
    let wall = hostClock.nanoseconds &- start
    // The writer threads get the rest of the output out, unless their readers have stopped reading.
    let dropped = console.finish() &+ (debugConsoleOutput?.finish() ?? 0)
    hostInput?.restore()
    if configuration.handleHostSignals { HostSignals.uninstall() }
    var report = mergedReport(wallNanoseconds: wall)
    report.consoleBytesDropped = dropped
    report.resets = control.resetCount
    if let monitor = paravirt.monitor { report.privilegedInstructionFaults = monitor.privilegedInstructionFaults }
    if let monitor = paravirt.monitor, monitor.emulatesSyscall { report.emulatedSyscalls = monitor.emulatedSyscalls }
    if devices.ide != nil || !devices.virtioBlocks.isEmpty {
      var d = ExitStatisticsReport.DiskSectors(
        read: devices.ide?.sectorsRead ?? 0, written: devices.ide?.sectorsWritten ?? 0)
      for b in devices.virtioBlockDevices {
        d.read += b.sectorsRead
        d.written += b.sectorsWritten
      }
      report.diskSectors = d
    }
    if let net = devices.virtioNetDevice {
      report.network = ExitStatisticsReport.NetworkTraffic(
        framesSent: net.framesSent, bytesSent: net.bytesSent, framesReceived: net.framesReceived,
        bytesReceived: net.bytesReceived, framesDropped: net.framesDropped,
        framesDroppedSending: net.backend.droppedFromGuest)
    }
    return RunOutcome(reason: reason, statistics: report)
  }

  /// The run's statistics: the bootstrap processor's alone with one vCPU; with several, every
  /// runner's merged (exits, instructions, engine counters summed) plus one summary per vCPU.
  private func mergedReport(wallNanoseconds wall: UInt64) -> ExitStatisticsReport {
    guard runners.count > 1 else {
      let bsp = vcpus[0]
      return statistics.report(
        wallNanoseconds: wall, instructionsRetired: bsp.instructionsRetired, engineCounters: bsp.engineCounters)
    }
    let total = ExitStatistics()
    for r in runners { total.merge(r.statistics) }
    let counts = vcpus.map(\.instructionsRetired)
    let instructions = counts.contains(where: { $0 == nil }) ? nil : counts.reduce(0) { $0 &+ ($1 ?? 0) }
    var counters: [EngineCounter] = []
    for v in vcpus {
      for c in v.engineCounters {
        if let i = counters.firstIndex(where: { $0.name == c.name }) {
          counters[i].value &+= c.value
        } else {
          counters.append(c)
        }
      }
    }
    var report = total.report(wallNanoseconds: wall, instructionsRetired: instructions, engineCounters: counters)
    report.vcpus = runners.map { r in
      var byReason: [String: UInt64] = [:]
      for kind in ExitKind.allCases where r.statistics.count(of: kind) > 0 {
        byReason[kind.name] = r.statistics.count(of: kind)
      }
      return ExitStatisticsReport.VCPUSummary(
        index: r.index, exits: r.statistics.totalExits, byReason: byReason,
        instructionsRetired: r.vcpu.instructionsRetired)
    }
    return report
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

  /// Hands host input waiting in `input` to the UART (or the virtio console, or a deprivileged
  /// paravirtual guest's `console_io`), and has the network
  /// card take the frames its backend queued for the guest.
  func drainInput() {
    devices.virtioNetDevice?.pollBackend()
    guard !input.isEmpty else { return }
    if paravirt.takesConsoleInput {
      paravirt.receiveConsoleInput(input.drain())
    } else if let console = devices.virtioConsoleDevice {
      console.receive(input.drain())
    } else {
      serial.receive(input.drain())
    }
  }

  /// Why the run must end now, other than the guest: the timeout passed, or the guest printed the
  /// `--stop-on-output` text and its line ended. Also returns the output-stop deadline, which the
  /// runners treat like a device deadline. Any thread: the timeout is fixed before the runners
  /// start and `OutputStop` keeps its progress under its own lock.
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

/// A runner handed to its thread (the thread is the only one that drives it).
struct RunnerBox: @unchecked Sendable {
  let runner: VCPURunner
  init(_ runner: VCPURunner) { self.runner = runner }
}

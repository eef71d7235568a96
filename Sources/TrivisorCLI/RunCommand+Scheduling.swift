import ArgumentParser
import Foundation
import Launcher
import Scheduling
import VMM

/// `trivisor run` under a pCPU pool: one VM (`--pcpus`, `--pin`, `--weight`, `--cap`,
/// `--sched-trace`) or several (`--vm`), all sharing one `SchedulingSession`.
extension RunCommand {
  /// The session the scheduling options ask for (nil: no pool), its output path checked.
  func makeSchedulingSession(numaNodes: Int?) throws(UsageError) -> SchedulingSession? {
    guard scheduling.enablesPool else { return nil }
    let pcpus = try scheduling.pcpuCount()
    if let path = scheduling.schedTrace {
      try hostFile { () throws(HostFileError) in try HostFile.checkOutputPath(path, what: "--sched-trace file") }
    }
    return SchedulingSession(
      pcpus: pcpus, nodes: RunSchedulingOptions.hostNodes(pcpus: pcpus, nodes: numaNodes),
      parameters: try scheduling.parameters(), keepingEvents: scheduling.schedTrace != nil)
  }

  /// Adds this VM (its `--cpus`, `--weight`, `--cap`, `--pin`, `--numa`) to `session`'s pool.
  func joinPool(_ session: SchedulingSession, placement: InterruptControllerPlacement) throws(UsageError)
    -> VCPUScheduling
  {
    // KVM's in-kernel local APICs keep HLT and wait-for-SIPI inside KVM_RUN, where the VMM
    // cannot see the vCPU idle: it would hold its pCPU.
    guard placement == .user else {
      throw UsageError("the pCPU pool needs the VMM's interrupt controllers: drop --irqchip kernel")
    }
    let share = try scheduling.share()
    let pins = try scheduling.pins(cpus: cpus, pcpus: session.scheduler.pcpuCount)
    return session.addMachine(
      share: share, vcpuCount: cpus, pins: pins,
      nodes: RunSchedulingOptions.vcpuNodes(cpus: cpus, nodes: session.scheduler.nodes.count > 1 ? numa : nil),
      bindHostThreads: scheduling.hostAffinity, pauseLoopPauses: try scheduling.pauseLoopPauses())
  }

  /// Stops the pool after the run and writes `--sched-trace`; true when the trace could not be
  /// written (said on stderr).
  func finishScheduling(_ session: SchedulingSession?, path: String? = nil) -> Bool {
    guard let session else { return false }
    session.finish()
    guard let path = path ?? scheduling.schedTrace else { return false }
    do throws(HostFileError) {
      try HostFile.write(Array(session.traceFileText().utf8), to: path, what: "--sched-trace file")
      return false
    } catch {
      printError("trivisor: error: \(oneLine(error.description))")
      return true
    }
  }

  /// `--vm` groups: every VM prepared (any bad option is one usage line before anything runs),
  /// then all run at once, each on its own thread, under one pool; returns when all stopped.
  func runSeveralVMs() throws {
    if image != nil || demo || kernel != nil || bios != nil || app != nil || rootfs != nil || pv {
      throw usageFailure("with --vm, give each VM's image and options inside its --vm group")
    }
    if scheduling.weight != nil || scheduling.cap != nil || !scheduling.pin.isEmpty || scheduling.hostAffinity
      || scheduling.pauseLoop != nil
    {
      throw usageFailure("--weight, --cap, --pin, --host-affinity and --pause-loop belong inside a --vm group")
    }
    var commands: [RunCommand] = []
    for (i, text) in vms.enumerated() {
      let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
      let command: RunCommand
      do { command = try RunCommand.parse(words) } catch {
        throw usageFailure("--vm \(i) '\(text)': \(RunCommand.message(for: error))")
      }
      if !command.vms.isEmpty || command.scheduling.hasPoolOptions {
        throw usageFailure(
          "--vm \(i): --vm, --pcpus, --timeslice, --rate-limit, --co-schedule and --sched-trace are given once, outside the --vm groups"
        )
      }
      commands.append(command)
    }
    let log: (String) -> Void = { line in if verbose { printError("trivisor: \(line)") } }
    let numaNodes = commands.compactMap(\.numa).max()
    let session: SchedulingSession
    var machines: [Machine] = []
    var setups: [(memory: GuestMemory, boot: BootState, config: MachineConfiguration, engine: any Engine)] = []
    let output = PrefixedConsole()
    do throws(UsageError) {
      // The pool is always on with several VMs (that is what they share).
      var pool = self
      if pool.scheduling.pcpus == nil { pool.scheduling.pcpus = HostCPU.count }
      guard let s = try pool.makeSchedulingSession(numaNodes: numaNodes) else { return }
      session = s
      for (i, command) in commands.enumerated() {
        let vmLog: (String) -> Void = { line in log("[vm\(i)] \(line)") }
        var setup = try command.prepare(log: vmLog, session: session, console: output.writer(prefix: "[vm\(i)] "))
        setup.config.handleHostSignals = false
        if setup.config.timeoutSeconds == nil { setup.config.timeoutSeconds = timeout }
        setups.append(setup)
      }
    } catch {
      throw usageFailure(error.description)
    }
    for (i, setup) in setups.enumerated() {
      machines.append(try commands[i].makeMachine(setup, what: "the machine of --vm \(i)"))
    }
    session.start()
    let outcomes = OutcomeBox(count: machines.count)
    let group = DispatchGroup()
    for (i, machine) in machines.enumerated() {
      group.enter()
      let box = MachineHandle(machine)
      Thread.detachNewThread {
        outcomes.set(i, box.machine.run())
        group.leave()
      }
    }
    group.wait()
    let traceFailed = finishScheduling(session)
    output.flush()
    var firstFailure: Int32 = 0
    for (i, setup) in setups.enumerated() {
      let outcome = outcomes.get(i)
      for disk in setup.config.disks + setup.config.virtioDisks { disk.close() }
      (setup.config.network as? UserNetwork)?.shutdown()
      let status = outcome?.exitStatus ?? ExitStatus.engineError
      let reason = outcome?.reason.description ?? "did not run"
      if status != 0 {
        printError("trivisor: [vm\(i)] \(reason) (status \(status))")
        if firstFailure == 0 { firstFailure = status }
      } else {
        log("[vm\(i)] \(reason)")
      }
      if commands[i].stats, let outcome { printError("[vm\(i)]\n" + outcome.statistics.table) }
    }
    if scheduling.schedTrace == nil && verbose { printError(session.report().text) }
    if firstFailure == 0 && traceFailed { throw ExitCode(ExitStatus.usage) }
    if firstFailure != 0 { throw ExitCode(firstFailure) }
  }
}

/// Several VMs' console output on stdout, whole lines at a time, each prefixed with its VM.
final class PrefixedConsole: @unchecked Sendable {
  private let lock = NSLock()
  private var partial: [String: [UInt8]] = [:]

  /// A capture for `MachineConfiguration.consoleCapture` that prefixes each line with `prefix`.
  func writer(prefix: String) -> ([UInt8]) -> Void {
    { [self] bytes in write(bytes, prefix: prefix) }
  }

  private func write(_ bytes: [UInt8], prefix: String) {
    lock.withLock {
      var pending = partial[prefix, default: []]
      var out: [UInt8] = []
      for b in bytes {
        pending.append(b)
        if b == 0x0A {
          out += Array(prefix.utf8) + pending
          pending = []
        }
      }
      partial[prefix] = pending
      if !out.isEmpty { FileHandle.standardOutput.write(Data(out)) }
    }
  }

  /// Writes the unfinished lines (with a newline).
  func flush() {
    lock.withLock {
      for (prefix, pending) in partial.sorted(by: { $0.key < $1.key }) where !pending.isEmpty {
        FileHandle.standardOutput.write(Data(Array(prefix.utf8) + pending + [0x0A]))
      }
      partial = [:]
    }
  }
}

/// Why a guest stopped, and the process exit status it maps to (docs/exit-status.md).
///
/// Guest-chosen statuses: 0 for the clean power-off, odd `(v << 1) | 1` for isa-debug-exit. The
/// VMM's own reasons use distinct even codes so they never collide with the guest's. Indirect:
/// the run loop passes optional reasons around on every exit, and the state reports some cases
/// carry are hundreds of bytes.
public indirect enum StopReason: Sendable, Equatable {
  /// The guest wrote `value` to the isa-debug-exit port 0xF4.
  case debugExit(value: UInt32)
  /// The guest powered off through port 0x604.
  case powerOff
  /// The guest asked for a reset (i8042 command 0xFE, port 0x92 or 0xCF9) and the machine has no
  /// `MachineConfiguration.reboot` (`--no-reboot`): Trivisor stops rather
  /// than reboots, like QEMU with `-no-reboot`.
  case reset
  /// The engine failed or could not continue (KVM internal error, failed entry, ioctl error).
  case internalError(InternalErrorReport)
  /// Triple fault or an engine-reported shutdown, with the vCPU state at that point.
  case shutdown(ShutdownReason, InternalErrorReport)
  /// `HLT` with interrupts disabled: nothing could ever wake the guest.
  case haltedForever(InternalErrorReport)
  /// `--timeout` expired.
  case timeout(seconds: Double)
  /// A host signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) asked the VMM to stop.
  case hostSignal(Int32)
  /// The reader of a console output (`what`: "serial", "debug console") closed it (EPIPE).
  case outputClosed(String)
  /// The guest's console output contained the `--stop-on-output` text: a success, status 0.
  case outputMatched(String)

  /// The process exit status (see docs/exit-status.md).
  public var exitStatus: Int32 {
    switch self {
    case .debugExit(let v): return Int32(truncatingIfNeeded: ((v << 1) | 1) & 0xFF)
    case .powerOff: return 0
    case .reset: return ExitStatus.reset
    case .internalError: return ExitStatus.engineError
    case .shutdown: return ExitStatus.shutdown
    case .haltedForever: return ExitStatus.haltedForever
    case .timeout: return ExitStatus.timeout
    case .hostSignal: return ExitStatus.hostSignal
    case .outputClosed: return ExitStatus.outputClosed
    case .outputMatched: return 0
    }
  }

  /// One line (plus the report, for failures) for the user.
  public var description: String {
    switch self {
    case .debugExit(let v): return "guest exit through isa-debug-exit: value \(v), status \(exitStatus)"
    case .powerOff: return "guest powered off"
    case .reset: return "guest requested a reset; stopped instead of rebooting (--no-reboot)"
    case .internalError(let r): return "engine error: \(r)"
    case .shutdown(.tripleFault, let r): return "guest triple fault (shutdown)\n\(r)"
    case .shutdown(_, let r): return "guest shutdown\n\(r)"
    case .haltedForever(let r): return "guest halted with interrupts disabled\n\(r)"
    case .timeout(let s): return "guest stopped after the --timeout of \(s) s"
    case .hostSignal(let n): return "stopped by host signal \(n)"
    case .outputClosed(let what): return "the reader of the \(what) output closed it (broken pipe); stopped"
    case .outputMatched(let text): return "guest output contained \"\(text)\"; stopped"
    }
  }
}

/// The VMM's exit statuses. Even numbers only: the guest's isa-debug-exit statuses are odd and
/// its clean power-off is 0.
public enum ExitStatus {
  /// Bad input or usage: unreadable or malformed image, bad option, unusable /dev/kvm.
  public static let usage: Int32 = 2
  /// The engine failed: KVM internal error or failed entry, an ioctl error, an unhandled exit.
  public static let engineError: Int32 = 4
  /// The guest triple-faulted (or the engine reported a shutdown).
  public static let shutdown: Int32 = 6
  /// The guest executed HLT with interrupts disabled and could never wake up.
  public static let haltedForever: Int32 = 8
  /// `--timeout` expired.
  public static let timeout: Int32 = 10
  /// A host signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) stopped the VMM.
  public static let hostSignal: Int32 = 12
  /// The guest asked for a reset (reboot), which stops the VM.
  public static let reset: Int32 = 14
  /// A console output's reader went away (a closed pipe: `trivisor run | head`).
  public static let outputClosed: Int32 = 16
}

/// The result of `Machine.run()`.
public struct RunOutcome: Sendable {
  /// Why the guest stopped.
  public var reason: StopReason
  /// The run's exit statistics (`--stats`, `--stats-json`).
  public var statistics: ExitStatisticsReport
  /// The process exit status the reason maps to (docs/exit-status.md).
  public var exitStatus: Int32 { reason.exitStatus }
}

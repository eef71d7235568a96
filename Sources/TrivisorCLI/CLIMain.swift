import ArgumentParser
import VMM

#if canImport(Glibc)
  import Glibc
#endif

extension Trivisor {
  /// Entry point: like ArgumentParser's, but a command line that does not parse ends with a
  /// one-line error and exit status 2 (docs/exit-status.md) instead of 64 and a usage dump.
  static func main() {
    // A closed stdout must not kill the VMM: writes then fail with EPIPE, which the console writer
    // turns into a clean stop (status 16).
    signal(SIGPIPE, SIG_IGN)
    // Until a machine runs and takes them over, the stopping signals (Ctrl-C, Ctrl-\, SIGTERM,
    // SIGUSR1 ...) end the process with the host-signal status instead of the runtime's default.
    HostSignals.install { _ in _exit(ExitStatus.hostSignal) }
    let command: any ParsableCommand
    do {
      command = try parseAsRoot()
    } catch {
      let code = exitCode(for: error)
      if code == .success {
        print(fullMessage(for: error))  // --help, --version
        Self.exit(withError: nil)
      }
      let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid command line"
      printError("trivisor: error: \(message.replacingOccurrences(of: "Error: ", with: ""))")
      Self.exit(withError: ExitCode(ExitStatus.usage))
    }
    do {
      var command = command
      try command.run()
    } catch let error as ValidationError {
      // Bad input found while running (an unreadable file, a malformed option value): one line, status 2.
      printError("trivisor: error: \(oneLine(error.message))")
      Self.exit(withError: ExitCode(ExitStatus.usage))
    } catch {
      exit(withError: error)
    }
  }
}

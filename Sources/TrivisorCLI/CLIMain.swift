import ArgumentParser
import VMM

extension Trivisor {
  /// Entry point: like ArgumentParser's, but a command line that does not parse ends with a
  /// one-line error and exit status 2 (docs/exit-status.md) instead of 64 and a usage dump.
  static func main() {
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
      printError("trivisor: error: \(error.message)")
      Self.exit(withError: ExitCode(ExitStatus.usage))
    } catch {
      exit(withError: error)
    }
  }
}

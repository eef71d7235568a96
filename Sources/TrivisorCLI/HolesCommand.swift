import ArgumentParser
import Holes

/// `trivisor holes`: the x86 virtualization holes (the sensitive-but-unprivileged instructions of
/// Robin & Irvine) probed from guest ring 0 on each engine, as one table.
struct HolesCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "holes",
    abstract: "Probe the x86 virtualization holes (SGDT, SIDT, POPF, ...) on each engine and print a table.",
    discussion: """
      Each cell says whether the instruction, run in guest kernel mode, gave the guest's own answer
      (correct), the host's or monitor's (leaks), something else (silently-wrong), an exception
      where the CPU gives an answer (faulted), or was not reached (not-run). Engines that cannot run
      here are skipped with the reason. See docs/trap-and-emulate.md.
      """
  )

  @Option(
    name: .customLong("engine"), help: "An engine to probe (repeat; default: \(Holes.engines.joined(separator: ", ")))."
  )
  var engines: [String] = []

  /// `--json`: the table as JSON.
  @Flag(help: "Print the table as JSON.")
  var json = false

  /// The engines to probe, in order, each once; a usage error for an unknown name.
  func selectedEngines() throws -> [String] {
    var chosen: [String] = []
    for name in engines.isEmpty ? Holes.engines : engines where !chosen.contains(name) {
      guard Holes.engines.contains(name) else {
        throw usageFailure("unknown engine '\(name)' for holes (choose from \(Holes.engines.joined(separator: ", ")))")
      }
      chosen.append(name)
    }
    return chosen
  }

  /// Probes the engines and prints the table (or JSON).
  func run() throws {
    let columns = try selectedEngines().map { try Holes.column(engine: $0) }
    let report = HolesReport(columns: columns, umip: HostUMIP.detect())
    print(json ? try report.json() : report.text(), terminator: "")
  }
}

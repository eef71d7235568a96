import ArgumentParser
import Foundation
import Launcher

/// The options of the commands that boot the reference kernel's benchmarks once per engine
/// (`bench guest`, `bench smp`): which engines, their iteration scales, the time limit per run, and
/// whether a debug build may run.
struct KernelBenchOptions: ParsableArguments {
  @Option(
    name: .customLong("engine"),
    help: "Run only these engines (repeatable or comma-separated, e.g. kvm,trap; default: every available one).")
  var engineArguments: [String] = []

  /// The engines asked for with `--engine`, commas split (empty: every available one).
  var engines: [String] {
    engineArguments.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
      .filter { !$0.isEmpty }
  }

  @Option(help: "Iteration multiplier for an engine or peer column, NAME=N (repeatable), e.g. kvm=100.")
  var scale: [String] = []

  @Option(help: "Seconds each run may take.")
  var timeout: Double = 300

  @Flag(name: .customLong("allow-debug"), help: "Run even in a debug build (numbers are meaningless).")
  var allowDebug = false

  /// Refuses a debug build (unless `--allow-debug`), a time limit that is not a positive number and
  /// an engine the registry does not know; returns `defaults` with the `--scale` overrides (N in
  /// 1...`maximum`). `command` is how the command is spelled (for the release-build hint).
  func validated(command: String, defaults: [String: Int], maximum: Int) throws -> [String: Int] {
    try BenchmarkOptions.requireReleaseBuild(allowDebug: allowDebug, command: command)
    guard timeout > 0 && timeout.isFinite else { throw usageFailure("--timeout must be a positive number") }
    for name in engines where !EngineRegistry.entries.contains(where: { $0.name == name }) {
      throw usageFailure(
        "unknown engine '\(name)' (choose from \(EngineRegistry.entries.map(\.name).joined(separator: ", ")))")
    }
    return try BenchmarkOptions.scales(scale, defaults: defaults, maximum: maximum, example: "kvm=100")
  }

  /// Whether the engine called `name` is to be measured.
  func includes(_ name: String) -> Bool {
    engines.isEmpty || engines.contains(name)
  }
}

/// What every `trivisor bench` command does before measuring: refuse a debug build unless asked
/// (then warn), and read `--scale NAME=N` overrides on top of the command's defaults.
enum BenchmarkOptions {
  /// Throws in a debug build unless `allowDebug`; `command` is how to run it from a release build.
  static func requireReleaseBuild(allowDebug: Bool, command: String) throws {
    guard isDebugBuild else { return }
    guard allowDebug else {
      throw usageFailure(
        "benchmarks need a release build: run 'swift build -c release' and '.build/release/trivisor \(command)' "
          + "(or pass --allow-debug to measure a debug build anyway)")
    }
    printError("trivisor: WARNING: this is a DEBUG build; the numbers below do not represent Trivisor")
  }

  /// `defaults` with each `NAME=N` of `items` (N in 1...`maximum`) applied.
  static func scales(_ items: [String], defaults: [String: Int], maximum: Int, example: String) throws -> [String: Int]
  {
    var scales = defaults
    for item in items {
      let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2, let n = Int(parts[1]), (1...maximum).contains(n) else {
        throw usageFailure("invalid --scale '\(item)' (use NAME=N with N in 1...\(maximum), e.g. \(example))")
      }
      scales[parts[0]] = n
    }
    return scales
  }
}

import ArgumentParser

struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Run the benchmarks (release builds)."
  )

  func run() throws {
    throw ValidationError("'trivisor bench' is not available in this build yet")
  }
}

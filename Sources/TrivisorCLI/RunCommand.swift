import ArgumentParser

struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Boot a guest image (or the built-in guest) on an engine."
  )

  func run() throws {
    throw ValidationError("'trivisor run' is not available in this build yet")
  }
}

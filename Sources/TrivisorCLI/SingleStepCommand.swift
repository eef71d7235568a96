import ArgumentParser

struct SingleStepCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "singlestep",
    abstract: "Run SingleStep MOO test vectors captured from real CPUs against the x86 model."
  )

  func run() throws {
    throw ValidationError("'trivisor singlestep' is not available in this build yet")
  }
}

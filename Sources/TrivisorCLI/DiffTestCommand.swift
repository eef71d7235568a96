import ArgumentParser

struct DiffTestCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "difftest",
    abstract: "Compare the x86 model against the host CPU on random instructions."
  )

  func run() throws {
    throw ValidationError("'trivisor difftest' is not available in this build yet")
  }
}

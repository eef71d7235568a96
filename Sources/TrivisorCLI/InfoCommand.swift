import ArgumentParser

struct InfoCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "info",
    abstract: "Describe the host: /dev/kvm, its API version and capabilities, CPU virtualization flags."
  )

  func run() throws {
    throw ValidationError("'trivisor info' is not available in this build yet")
  }
}

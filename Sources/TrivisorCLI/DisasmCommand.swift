import ArgumentParser

struct DisasmCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "disasm",
    abstract: "Disassemble x86 machine code in Intel syntax."
  )

  func run() throws {
    throw ValidationError("'trivisor disasm' is not available in this build yet")
  }
}

/// A figure an engine counts about its own mechanism (how many instructions took the interpreter's
/// fast path, later how many blocks a translator compiled), reported next to the exit statistics
/// so engines can be compared on more than exits and time.
public struct EngineCounter: Codable, Sendable, Equatable {
  /// A short stable key (`fast-path-instructions`), used in JSON.
  public var name: String
  /// The count at the end of the run.
  public var value: UInt64
  /// What it counts, in a few words, for the terminal.
  public var description: String

  /// A counter `name` with `value`, described as `description`.
  public init(name: String, value: UInt64, description: String) {
    self.name = name
    self.value = value
    self.description = description
  }
}

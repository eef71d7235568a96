import VMM

extension SerialBackend {
  /// Parses `stdio`, `stderr`, `null` or `file:PATH` (the `--serial` and `--debugcon` syntax).
  public init?(argument: String) {
    switch argument {
    case "stdio": self = .stdio
    case "null": self = .null
    case "stderr": self = .stderr
    default:
      guard argument.hasPrefix("file:"), argument.count > 5 else { return nil }
      self = .file(String(argument.dropFirst(5)))
    }
  }

}

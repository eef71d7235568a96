/// Where the guest's COM1 goes (`--serial`).
public enum SerialBackend: Sendable, Equatable {
  /// Guest output to stdout; host stdin to the guest (raw terminal mode when stdin is a tty).
  case stdio
  /// Guest output appended to a file; no input.
  case file(String)
  /// Output dropped; no input.
  case null

  /// Parses `stdio`, `null` or `file:PATH` (the `--serial` syntax).
  public init?(argument: String) {
    switch argument {
    case "stdio": self = .stdio
    case "null": self = .null
    default:
      guard argument.hasPrefix("file:"), argument.count > 5 else { return nil }
      self = .file(String(argument.dropFirst(5)))
    }
  }
}

/// How a `VirtualMachine` is put together and run (everything but the engine and the image).
public struct MachineConfiguration {
  public var serial: SerialBackend
  /// Receives guest console bytes instead of `serial` (tests capture output with it).
  public var consoleCapture: (([UInt8]) -> Void)?
  public var engineOptions: EngineOptions
  /// Stop the guest after this many seconds of wall time (`--timeout`), status 10.
  public var timeoutSeconds: Double?
  /// Stop cleanly on SIGINT/SIGTERM/SIGHUP (status 12) and restore the terminal. For the CLI.
  public var handleHostSignals: Bool
  /// Receives `--verbose` diagnostics.
  public var log: ((String) -> Void)?

  public init(
    serial: SerialBackend = .null, consoleCapture: (([UInt8]) -> Void)? = nil,
    engineOptions: EngineOptions = EngineOptions(), timeoutSeconds: Double? = nil, handleHostSignals: Bool = false,
    log: ((String) -> Void)? = nil
  ) {
    self.serial = serial
    self.consoleCapture = consoleCapture
    self.engineOptions = engineOptions
    self.timeoutSeconds = timeoutSeconds
    self.handleHostSignals = handleHostSignals
    self.log = log
  }
}

/// Where the guest's COM1 goes (`--serial`).
public enum SerialBackend: Sendable, Equatable {
  /// Guest output to stdout; host stdin to the guest (raw terminal mode when stdin is a tty).
  case stdio
  /// Guest output appended to a file; no input.
  case file(String)
  /// Output dropped; no input.
  case null
  /// Output to stderr; no input (`--debugcon stderr`).
  case stderr
  /// Output to a descriptor the embedder opened (the CLI opens `file:` paths before loading the
  /// image, so a bad path is a usage error); the machine closes it.
  case descriptor(Int32)
}

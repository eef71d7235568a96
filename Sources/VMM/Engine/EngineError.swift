/// A failure of the engine itself (not of the guest): an ioctl that failed, a missing capability.
public struct EngineError: Error, CustomStringConvertible, Sendable {
  /// What failed, in one line.
  public var message: String
  /// An error saying `message`.
  public init(_ message: String) { self.message = message }
  /// The message.
  public var description: String { message }
}

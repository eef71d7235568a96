/// Why Trivisor cannot build a Linux guest's boot image (`--rootfs`, `--app`): one line naming the
/// file or option at fault.
public struct GuestImageError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The message, in one line.
  public let description: String
  /// An error with this message.
  public init(_ description: String) { self.description = description }
}

/// One `--disk` argument: `PATH` (read-write) or `PATH,readonly` (also `PATH,ro`). Only a final
/// `,readonly` or `,ro` is an option; every other comma belongs to the path.
public struct DiskArgument: Equatable, Sendable {
  /// The image file.
  public var path: String
  /// Whether the guest may only read it.
  public var readOnly: Bool

  /// A disk argument with these fields.
  public init(path: String, readOnly: Bool) {
    self.path = path
    self.readOnly = readOnly
  }

  /// Parses `argument`; nil when the path is empty.
  public init?(argument: String) {
    var path = Substring(argument)
    var readOnly = false
    for suffix in [",readonly", ",ro"] where path.hasSuffix(suffix) {
      path = path.dropLast(suffix.count)
      readOnly = true
      break
    }
    guard !path.isEmpty else { return nil }
    self.path = String(path)
    self.readOnly = readOnly
  }
}

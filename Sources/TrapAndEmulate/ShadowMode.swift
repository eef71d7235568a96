/// Which of a guest address space's two shadows is in use. Guest ring 0 runs at real ring 3 (ring
/// compression), so the guest's U/S bit cannot separate its kernel from its user code in one set
/// of tables: the kernel shadow maps the guest's supervisor and user pages as real user pages, the
/// user shadow maps only the guest's user pages.
public enum ShadowMode: Sendable, Hashable, CustomStringConvertible {
  /// The guest runs at virtual CPL 0, 1 or 2: supervisor accesses.
  case kernel
  /// The guest runs at virtual CPL 3: user accesses.
  case user

  /// The shadow for a guest running at virtual privilege level `cpl`.
  public init(guestCPL cpl: Int) { self = cpl == 3 ? .user : .kernel }

  /// Whether the guest's accesses in this mode are user accesses (CPL 3).
  public var isUser: Bool { self == .user }

  /// "kernel" or "user".
  public var description: String { isUser ? "user" : "kernel" }
}

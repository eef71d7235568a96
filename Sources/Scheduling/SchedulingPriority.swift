/// Where a runnable vCPU stands in its pCPU's queue, highest first (Xen's credit priorities).
public enum SchedulingPriority: Int, Sendable, Comparable, CustomStringConvertible {
  /// Out of credit: runs only when no vCPU with credit wants the pCPU.
  case over = 0
  /// Has credit left in this accounting period.
  case under = 1
  /// Just woken (by an interrupt or an event) with credit left: runs ahead of everyone, so that
  /// I/O-bound vCPUs see low latency; it falls back to `under` once it has run.
  case boost = 2

  /// Orders by rank, `boost` highest.
  public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

  /// "BOOST", "UNDER" or "OVER", as Xen prints them.
  public var description: String {
    switch self {
    case .over: return "OVER"
    case .under: return "UNDER"
    case .boost: return "BOOST"
    }
  }
}

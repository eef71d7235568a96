/// What the shadow page tables did, for `--stats`: every fault the monitor handed them and how it
/// ended, the guest page-table writes emulated and the shadow entries they invalidated.
public struct ShadowPagingStatistics: Sendable, Equatable {
  /// Page faults of the real CPU handed to `ShadowPageTables.handleFault`.
  public var shadowFaults: UInt64 = 0
  /// Shadow entries built from the guest's tables (a shadow miss or an upgrade to writable).
  public var fills: UInt64 = 0
  /// Faults the guest's own tables explain: reflected to the guest as its #PF.
  public var guestFaults: UInt64 = 0
  /// Faults whose shadow entry already allowed the access (a stale real TLB entry).
  public var spuriousFaults: UInt64 = 0
  /// Writes to write-protected guest page-table pages emulated by the monitor.
  public var pageTableWrites: UInt64 = 0
  /// Shadow entries dropped because a guest page-table entry they were built from changed.
  public var resyncs: UInt64 = 0
  /// INVLPGs of the guest.
  public var invalidations: UInt64 = 0
  /// Switches to another shadow (CR3 load, or a change between kernel and user mode).
  public var contextSwitches: UInt64 = 0
  /// Shadows dropped to stay within the bound on cached address spaces.
  public var evictions: UInt64 = 0
  /// Global flushes: every shadow dropped (paging controls changed, the pool ran out, or asked).
  public var flushes: UInt64 = 0
  /// Times the frame pool ran out (each ends in evictions or a flush).
  public var poolExhaustions: UInt64 = 0
  /// Guest frames no longer shadowed as page tables after a flood of writes (`unshadow`).
  public var unshadowedFrames: UInt64 = 0

  /// All zero.
  public init() {}

  /// The counters as `name value` lines, for the `--stats` report.
  public var lines: [String] {
    [
      "shadow faults \(shadowFaults)", "shadow fills \(fills)", "guest page faults reflected \(guestFaults)",
      "spurious shadow faults \(spuriousFaults)", "page-table writes emulated \(pageTableWrites)",
      "shadow resyncs \(resyncs)", "INVLPGs \(invalidations)", "shadow switches \(contextSwitches)",
      "shadow evictions \(evictions)", "shadow flushes \(flushes)", "shadow pool exhaustions \(poolExhaustions)",
      "frames unshadowed \(unshadowedFrames)",
    ]
  }
}

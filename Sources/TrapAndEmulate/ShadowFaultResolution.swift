import X86

/// What a page fault of the real CPU turned out to be, after the shadow page tables compared it with
/// the guest's own tables (`ShadowPageTables.handleFault`). The real error code is not trusted
/// (lazily built shadows fault where the guest's tables would not, and this host's KVM reports a
/// ring-3 access to a supervisor page with the P bit clear): only the access kind is taken from it.
public enum ShadowFaultResolution: Sendable, Equatable {
  /// The guest's tables allow the access and the shadow entry is now built: resume the guest.
  /// `rootChanged`: the pool ran out and the shadows were rebuilt, so the real CR3 must be loaded
  /// with `ShadowPageTables.activeRoot` first.
  case filled(rootChanged: Bool)
  /// The guest's own tables refuse the access: reflect a #PF to the guest with this address (its
  /// CR2) and error code (P, W, U, RSVD and I/D from the guest's tables and virtual CPL).
  case guestFault(PageFault)
  /// A write the guest's tables allow, to a guest page-table page the shadows write-protect: the
  /// monitor emulates the writing instruction and stores through
  /// `ShadowPageTables.emulatePageTableWrite`, which resyncs the shadows built from it.
  case pageTableWrite(physicalAddress: UInt64)
  /// The shadow entry already allowed the access: a stale entry of the real TLB. The monitor
  /// invalidates the page in the real TLB and resumes.
  case spurious
  /// The address lies in a root slot the monitor keeps for itself: a fault of the guest touching
  /// the monitor (or of the monitor itself), for the monitor to judge.
  case monitorRegion
  /// The guest's tables map the address to a frame the monitor protects (its own pages, the shadow
  /// pool): never mapped. The monitor treats it as a guest error.
  case forbiddenFrame(physicalAddress: UInt64)
}

/// Why the shadow page tables cannot shadow the guest's paging state.
public enum ShadowPagingError: Error, Sendable, Equatable, CustomStringConvertible {
  /// A paging mode or feature the shadows do not implement (paging off, 32-bit or PAE paging,
  /// 5-level paging, SMAP, PCIDs).
  case unsupported(String)
  /// The frame pool is smaller than one path of shadow tables (four frames).
  case poolTooSmall(frames: Int)

  /// The problem in one line.
  public var description: String {
    switch self {
    case .unsupported(let what): return "shadow paging does not support \(what)"
    case .poolTooSmall(let n): return "shadow frame pool of \(n) frames is smaller than the 4 one path needs"
    }
  }
}

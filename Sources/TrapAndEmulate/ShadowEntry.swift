import X86

/// The bits of a 4-level paging entry the shadows use, and the shadow leaf built from a guest
/// translation.
public enum ShadowEntry {
  /// P: present.
  public static let present: UInt64 = 1 << 0
  /// R/W: writable.
  public static let writable: UInt64 = 1 << 1
  /// U/S: accessible at ring 3.
  public static let user: UInt64 = 1 << 2
  /// PWT and PCD: the caching attributes copied from the guest.
  public static let caching: UInt64 = 3 << 3
  /// A: accessed.
  public static let accessed: UInt64 = 1 << 5
  /// D: dirty.
  public static let dirty: UInt64 = 1 << 6
  /// XD: no execute (the monitor runs with EFER.NXE set).
  public static let noExecute: UInt64 = 1 << 63
  /// Bits 51:12, the frame.
  public static let frameMask: UInt64 = 0x000F_FFFF_FFFF_F000

  /// A non-leaf shadow entry pointing at shadow table `frame`: present, writable, user; the rights
  /// are all in the leaves.
  public static func table(_ frame: UInt64) -> UInt64 { frame | present | writable | user | accessed }

  /// The shadow leaf for the 4 KiB page of `translation` (the guest's walk of the page, large
  /// pages split into 4 KiB shadow pages), or nil when `mode` may not see the page at all (a
  /// supervisor page in the user shadow).
  ///
  /// Every shadow page is a real user page: guest ring 0 runs at ring 3. Writable only when the
  /// guest may write it in `mode` — its R/W bits, or any page for a kernel with CR0.WP clear —
  /// *and* its dirty bit is already set, so the first write faults and the monitor sets D exactly
  /// as the CPU would; never writable on a guest page-table page (`pageTable`), so its updates
  /// trap. Not executable when the guest's XD bit says so (with EFER.NXE), or for a user page in
  /// the kernel shadow under CR4.SMEP. Never global: the two shadows of one address space must not
  /// share real TLB entries.
  public static func leaf(
    for translation: Translation, leafEntry: UInt64, mode: ShadowMode, control: PagingControl, pageTable: Bool
  ) -> UInt64? {
    if mode.isUser && !translation.user { return nil }
    var entry = (translation.physicalAddress & frameMask) | present | user | accessed | (leafEntry & caching)
    let guestAllowsWrite = translation.writable || (!mode.isUser && !control.writeProtect)
    if guestAllowsWrite && translation.dirty && !pageTable { entry |= writable | dirty }
    let smepRefuses = !mode.isUser && translation.user && control.smep
    if !translation.executable || smepRefuses { entry |= noExecute }
    return entry
  }
}

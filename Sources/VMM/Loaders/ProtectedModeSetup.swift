/// 32-bit protected mode with paging off, flat 4 GiB segments (Multiboot's entry state).
public enum ProtectedModeSetup {
  /// CR0 at a 32-bit protected-mode entry: ET, PE (paging off).
  public static let cr0: UInt64 = 0x11  // ET | PE

  /// Writes the GDT and returns the special registers for flat 32-bit protected mode.
  public static func prepare(_ memory: GuestMemory) throws(LoaderError) -> SpecialRegisters {
    try BootLayout.writeGDT(into: memory)
    return specialRegisters
  }

  /// The Multiboot entry state: flat 32-bit code and data from the boot GDT, paging off.
  public static var specialRegisters: SpecialRegisters {
    var s = BootLayout.flatSpecialRegisters(
      code: Segment(selector: BootLayout.code32Selector, base: 0, limit: 0xFFFF_FFFF, type: 11, db: true, g: true))
    s.cr0 = cr0
    return s
  }

  static var reservedRanges: [(Range<UInt64>, String)] {
    [(BootLayout.gdt, "the boot GDT"), (BootLayout.stack, "the boot stack")]
  }
}

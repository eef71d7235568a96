/// 32-bit protected mode with paging off, flat 4 GiB segments (Multiboot's entry state).
public enum ProtectedModeSetup {
  public static let cr0: UInt64 = 0x11  // ET | PE

  /// Writes the GDT and returns the special registers for flat 32-bit protected mode.
  public static func prepare(_ memory: GuestMemory) throws(LoaderError) -> SpecialRegisters {
    try BootLayout.writeGDT(into: memory)
    return specialRegisters
  }

  public static var specialRegisters: SpecialRegisters {
    var s = SpecialRegisters()
    s.cs = Segment(
      selector: BootLayout.code32Selector, base: 0, limit: 0xFFFF_FFFF, type: 11, db: true, g: true)
    let data = BootLayout.flatData
    s.ds = data
    s.es = data
    s.fs = data
    s.gs = data
    s.ss = data
    s.gdt = BootLayout.gdtRegister
    s.idt = DescriptorTable(base: 0, limit: 0)
    s.cr0 = cr0
    return s
  }

  static var reservedRanges: [(Range<UInt64>, String)] {
    [(BootLayout.gdt, "the boot GDT"), (BootLayout.stack, "the boot stack")]
  }
}

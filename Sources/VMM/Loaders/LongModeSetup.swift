/// Puts a vCPU straight into 64-bit long mode, the way a boot loader would after its own mode
/// switches: identity page tables, the boot GDT, and the register state to match.
///
/// Page tables (see `BootLayout`): one PML4 entry, one PDPT, and one page directory of 2 MiB pages
/// per GiB, identity mapping `[0, max(4 GiB, top of RAM))` rounded up to a GiB and capped at
/// 64 GiB. The 3-4 GiB MMIO hole is mapped too (the local APIC and firmware live there). Pages
/// are present, writable, supervisor, write-back.
///
/// Registers: CS = 0x10 (64-bit code), DS/ES/FS/GS/SS = 0x18 (flat data), TR and LDT left in
/// their reset state (no TSS: a guest must load its own before it takes interrupts from ring 3),
/// IDTR limit 0 (any exception before the guest loads an IDT triple-faults, ending the VM
/// cleanly), CR0 = PE|ET|NE|PG (WP off), CR3 = the PML4, CR4 = PAE, EFER = LME|LMA.
public enum LongModeSetup {
  /// CR0 at a long-mode entry: PG, NE, ET, PE.
  public static let cr0: UInt64 = 0x8000_0031  // PG | NE | ET | PE
  /// CR4 at a long-mode entry: PAE.
  public static let cr4: UInt64 = 0x20  // PAE
  /// EFER at a long-mode entry: LMA, LME.
  public static let efer: UInt64 = 0x500  // LMA | LME
  /// EFER's MSR index.
  public static let eferMSR: UInt32 = 0xC000_0080

  /// GiB the identity map covers for `memory`.
  public static func mappedGiB(for memory: GuestMemory) -> UInt64 {
    let top = memory.regions.map(\.end).max() ?? 0
    let gib = (top + (1 << 30) - 1) >> 30
    return min(max(4, gib), BootLayout.maximumMappedGiB)
  }

  /// Writes the GDT and the identity page tables into `memory` and returns the special registers
  /// for long mode (EFER included in `efer`).
  public static func prepare(_ memory: GuestMemory) throws(LoaderError) -> SpecialRegisters {
    try BootLayout.writeGDT(into: memory)
    let gib = mappedGiB(for: memory)
    let tablesEnd = BootLayout.pageDirectories + gib * 0x1000
    try guestZero(memory, BootLayout.pml4, tablesEnd - BootLayout.pml4, "the boot page tables")
    let present: UInt64 = 0x3  // P | RW
    try write(memory, BootLayout.pml4, BootLayout.pdpt | present)
    for g in 0..<gib {
      let directory = BootLayout.pageDirectories + g * 0x1000
      try write(memory, BootLayout.pdpt + g * 8, directory | present)
      var entries = [UInt8]()
      entries.reserveCapacity(4096)
      for e in UInt64(0)..<512 {
        let physical = (g << 30) | (e << 21)
        entries += withUnsafeBytes(of: (physical | present | 0x80).littleEndian, Array.init)  // PS
      }
      try guestWrite(memory, directory, entries, "a boot page directory")
    }
    return specialRegisters
  }

  /// The long-mode special registers (without touching memory).
  public static var specialRegisters: SpecialRegisters {
    var s = BootLayout.flatSpecialRegisters(
      code: Segment(
        selector: BootLayout.code64Selector, base: 0, limit: 0xFFFF_FFFF, type: 11, l: true, db: false, g: true))
    s.cr0 = cr0
    s.cr3 = BootLayout.pml4
    s.cr4 = cr4
    s.efer = efer
    return s
  }

  private static func write(_ memory: GuestMemory, _ address: UInt64, _ value: UInt64) throws(LoaderError) {
    do throws(MemoryError) { try memory.write(value, at: address) } catch {
      throw LoaderError("cannot write the boot page tables at 0x\(hex(address)): \(error)")
    }
  }

  /// Reserved ranges the long-mode boot path uses, for `LoadPlan`.
  static func reservedRanges(for memory: GuestMemory) -> [(Range<UInt64>, String)] {
    let tablesEnd = BootLayout.pageDirectories + mappedGiB(for: memory) * 0x1000
    return [
      (BootLayout.gdt, "the boot GDT"),
      (BootLayout.pml4..<tablesEnd, "the boot page tables"),
      (BootLayout.stack, "the boot stack"),
    ]
  }
}

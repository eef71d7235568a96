/// What PC firmware would have left in low memory for an operating system, written by the VMM
/// for a directly loaded kernel: the BIOS data area, the EBDA, the ACPI tables and the MP tables.
///
/// `Machine` calls this when `MachineConfiguration.describesPlatform`, and loaders given
/// `LoadOptions.platformTables` do their part (reservations, E820, the Linux RSDP pointer). What
/// that wiring amounts to, for an embedder with its own machine model:
/// - direct boot (Linux bzImage, Multiboot, ELF64): after the loader has placed the image, call
///   `install(into:platform:)` (or `install(into:cpuCount:numa:)`) and hand the kernel
///   `e820Entries(for:)` instead of `E820Map.entries(for:)`; give the loaders' `LoadPlan`
///   `reservedRanges` so that no image lands on the tables. For Linux, the returned
///   `PlatformTablesPlacement.rsdp` may also go into `boot_params.acpi_rsdp_addr` (0x070).
///   Register `PM1EventBlock` at 0x600-0x603 next to `PowerOffDevice`.
/// - firmware (SeaBIOS): do not call `install`; offer the same ACPI tables through fw_cfg with
///   `FwCfg.addACPITables(for:memory:)`. SeaBIOS builds its own MP table and BIOS data area.
///
/// Low-memory layout (all below 1 MiB; nothing here overlaps `BootLayout`):
///
/// ```
/// 0x00400-0x004FF  BIOS data area: COM1 0x3F8 at 0x400, EBDA segment 0x9FC0 at 0x40E,
///                  equipment word 0x0202 at 0x410 (FPU, one serial port), 639 KiB at 0x413
/// 0x9FC00-0x9FFFF  EBDA (reserved in E820 already): size 1 KiB at +0,
///                  MP floating pointer "_MP_" at +0x10, ACPI RSDP "RSD PTR " at +0x20
/// 0xE0000-0xEFFFF  ACPI tables (FACS first, 64-byte aligned), then the MP configuration table;
///                  reported reserved by `e820Entries(for:)` together with 0xF0000-0xFFFFF
/// ```
///
/// Guests find the RSDP and the MP floating pointer by the legacy scans (the first KiB of the
/// EBDA, whose segment is at 0x40E; Linux and the MP specification both look there first).
public enum PlatformTables {
  /// The BIOS data area written by `install` (the rest of it is zeroed).
  public static let biosDataArea: Range<UInt64> = 0x400..<0x500
  /// The extended BIOS data area (1 KiB below 640 KiB).
  public static let ebda: Range<UInt64> = E820Map.ebdaStart..<0xA0000
  /// The MP floating pointer structure (in the first KiB of the EBDA).
  public static let mpFloatingPointerAddress: UInt64 = E820Map.ebdaStart + 0x10
  /// The ACPI RSDP (in the first KiB of the EBDA, 16-byte aligned).
  public static let rsdpAddress: UInt64 = E820Map.ebdaStart + 0x20
  /// Where the ACPI tables and the MP configuration table go.
  public static let tableArea: Range<UInt64> = 0xE0000..<0xF0000
  /// The COM1 base port recorded in the BIOS data area.
  public static let com1Port: UInt16 = 0x3F8
  /// The equipment word at 0x410: bit 1 maths coprocessor, bits 11-9 one serial port; no
  /// floppy, no pointing device, video bits 00.
  public static let equipmentWord: UInt16 = 0x0202

  /// The ranges `install` writes, named the way `LoadPlan` names its reservations, so that a
  /// loader can refuse an image that would overlap them.
  public static let reservedRanges: [(Range<UInt64>, String)] = [
    (biosDataArea, "the BIOS data area"), (ebda, "the extended BIOS data area"),
    (tableArea, "the ACPI and MP tables"),
  ]

  /// The E820 map for `memory` with the table area reported reserved
  /// (`E820Map.entries(for:reserving:)`); the plain map when RAM does not reach the table area.
  public static func e820Entries(for memory: GuestMemory) -> [E820Entry] {
    let size = tableArea.upperBound - tableArea.lowerBound
    guard let r = memory.region(containing: tableArea.lowerBound, length: size), r.kind == .ram else {
      return E820Map.entries(for: memory)
    }
    return E820Map.entries(for: memory, reserving: [tableArea])
  }

  /// Writes the BIOS data area, the EBDA, the ACPI tables and the MP tables for a guest with
  /// `cpuCount` vCPUs and optional vNUMA (`PlatformDescription`'s defaults otherwise) and returns
  /// where it put them.
  @discardableResult
  public static func install(into memory: GuestMemory, cpuCount: Int, numa: NUMATopology? = nil) throws(LoaderError)
    -> PlatformTablesPlacement
  {
    try install(into: memory, platform: PlatformDescription(cpuCount: cpuCount, numa: numa))
  }

  /// Writes the BIOS data area, the EBDA, the ACPI tables and the MP tables describing `platform`
  /// (layout in the type's description) and returns where it put them. Throws, before writing
  /// anything, when the description is invalid, the guest has less than 1 MiB of RAM, or the
  /// tables do not fit the table area.
  @discardableResult
  public static func install(into memory: GuestMemory, platform: PlatformDescription) throws(LoaderError)
    -> PlatformTablesPlacement
  {
    let acpi = try ACPITables.build(platform, memory: memory)
    guard let low = memory.region(containing: 0, length: 0x10_0000), low.kind == .ram else {
      throw LoaderError("platform tables need at least 1 MiB of guest RAM")
    }
    let tablesBase = tableArea.lowerBound
    let tablesSize = UInt64(acpi.files.file(named: ACPITables.tablesFile)!.bytes.count)
    let mpAddress = (tablesBase + tablesSize + 15) & ~15
    let mp = MPTable.configurationTable(platform)
    let end = mpAddress + UInt64(mp.count)
    guard end <= tableArea.upperBound else {
      throw LoaderError(
        "platform tables for \(platform.cpuCount) vCPUs need \(end - tablesBase) bytes; the table area has \(tableArea.upperBound - tablesBase)"
      )
    }
    let linked = acpi.files.link(bases: [ACPITables.rsdpFile: rsdpAddress, ACPITables.tablesFile: tablesBase])

    // BIOS data area.
    var bda = TableBytes()
    bda.zeros(Int(biosDataArea.upperBound - biosDataArea.lowerBound))
    bda.put(com1Port, at: 0x00)  // 0x400: COM1
    bda.put(UInt16(ebda.lowerBound >> 4), at: 0x0E)  // 0x40E: EBDA segment
    bda.put(equipmentWord, at: 0x10)  // 0x410
    bda.put(UInt16(ebda.lowerBound >> 10), at: 0x13)  // 0x413: base memory in KiB
    try guestWrite(memory, biosDataArea.lowerBound, bda.bytes, "the BIOS data area")

    // EBDA: its size in KiB, then the two structures legacy scans look for.
    try guestZero(memory, ebda.lowerBound, ebda.upperBound - ebda.lowerBound, "the EBDA")
    try guestWrite(memory, ebda.lowerBound, [UInt8((ebda.upperBound - ebda.lowerBound) >> 10)], "the EBDA")
    try guestWrite(
      memory, mpFloatingPointerAddress, MPTable.floatingPointer(configurationAddress: UInt32(mpAddress)),
      "the MP floating pointer")
    try guestWrite(memory, rsdpAddress, linked[ACPITables.rsdpFile]!, "the ACPI RSDP")

    // Table area.
    try guestZero(memory, tableArea.lowerBound, tableArea.upperBound - tableArea.lowerBound, "the table area")
    try guestWrite(memory, tablesBase, linked[ACPITables.tablesFile]!, "the ACPI tables")
    try guestWrite(memory, mpAddress, mp, "the MP configuration table")

    let tables = acpi.entries.map {
      PlatformTablesPlacement.Table(signature: $0.signature, address: tablesBase + UInt64($0.offset), length: $0.length)
    }
    let acpiLine = tables.map { "\($0.signature) 0x\(hex($0.address))" }.joined(separator: ", ")
    return PlatformTablesPlacement(
      rsdp: rsdpAddress, acpiTables: tables, mpFloatingPointer: mpFloatingPointerAddress,
      mpConfigurationTable: mpAddress..<end, ioapicID: platform.ioapicID,
      summary: [
        "ACPI: RSDP at 0x\(hex(rsdpAddress)), \(acpiLine)",
        "MP: floating pointer at 0x\(hex(mpFloatingPointerAddress)), configuration table at 0x\(hex(mpAddress)) (\(MPTable.listedCPUs(platform).count) CPUs)",
      ])
  }
}

/// Where `PlatformTables.install` put the platform tables.
public struct PlatformTablesPlacement: Sendable, Equatable {
  /// One ACPI table.
  public struct Table: Sendable, Equatable {
    /// The signature ("FACS", "DSDT", "FACP", "APIC", "SRAT", "SLIT", "RSDT", "XSDT").
    public var signature: String
    /// The guest-physical address.
    public var address: UInt64
    /// The length in bytes.
    public var length: Int
  }
  /// The ACPI RSDP's address.
  public var rsdp: UInt64
  /// Every ACPI table but the RSDP, in address order.
  public var acpiTables: [Table]
  /// The MP floating pointer structure's address.
  public var mpFloatingPointer: UInt64
  /// The MP configuration table.
  public var mpConfigurationTable: Range<UInt64>
  /// The I/O APIC ID the tables give (the I/O APIC device's ID register should match).
  public var ioapicID: UInt8
  /// One line per table family, for the boot summary.
  public var summary: [String]

  /// The address of the table with `signature`, if one was placed.
  public func address(of signature: String) -> UInt64? {
    acpiTables.first { $0.signature == signature }?.address
  }
}

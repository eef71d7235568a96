/// Builds the guest's ACPI tables for a `PlatformDescription` as relocatable files (see
/// `RelocatableTables`): "etc/acpi/rsdp" holds the RSDP, "etc/acpi/tables" everything else, in
/// this order, each table 16-byte aligned (the FACS 64-byte aligned at offset 0):
///
/// | table | revision | contents |
/// |-------|----------|----------|
/// | FACS  | version 2 | 64 bytes, zero but signature, length and version (no S4BIOS, no waking vector) |
/// | DSDT  | 2 (64-bit AML integers) | `Name(\_S5, Package(4) {5, 5, 0, 0})` only |
/// | FACP (FADT) | 6.0 | see below |
/// | APIC (MADT) | 4 | local APIC address 0xFEE00000, PCAT_COMPAT; one Processor Local APIC (type 0) per vCPU with APIC ID < 255, Processor Local x2APIC (type 9) above; the I/O APIC (type 1); an interrupt source override (type 2) for IRQ 0 → GSI 2 and for the SCI (IRQ 9 level, active high); Local APIC NMI (type 4, all processors, LINT1) and, with x2APIC entries, Local x2APIC NMI (type 0xA) |
/// | SRAT  | 3 | with vNUMA: processor affinity (type 0, or type 2 for x2APIC IDs) per vCPU, memory affinity (type 1) per range, all enabled |
/// | SLIT  | 1 | with vNUMA: the distance matrix |
/// | RSDT  | 1 | 32-bit pointers to FADT, MADT, SRAT, SLIT |
/// | XSDT  | 1 | 64-bit pointers to the same |
///
/// RSDP: revision 2 (ACPI 2.0+), RSDT and XSDT addresses, both checksums.
///
/// FADT (revision 6, minor 0, 276 bytes): FIRMWARE_CTRL → FACS (X_FIRMWARE_CTRL 0, as the
/// specification wants when FIRMWARE_CTRL is set), DSDT and X_DSDT → DSDT, SCI_INT 9, no SMI
/// command port (the platform is always in ACPI mode), PM1a_EVT_BLK 0x600 (4 bytes),
/// PM1a_CNT_BLK 0x604 (2 bytes), PM_TMR_BLK only with a PM timer, no GPE blocks, C2/C3 latencies
/// 101/1001 (not supported), CENTURY 0x32, IAPC_BOOT_ARCH = LEGACY_DEVICES | 8042 |
/// VGA Not Present, flags WBINVD | PROC_C1 | PWR_BUTTON | SLP_BUTTON (neither button is a fixed
/// feature: there are none) | FIX_RTC | RESET_REG_SUP (HW_REDUCED_ACPI clear), RESET_REG =
/// byte port 0xCF9, RESET_VALUE 6, the X_ register blocks matching the 32-bit ones, hypervisor
/// vendor identity "TRIVISOR". Every table: OEM ID "TRIVSR", OEM table ID "TRIVISOR", OEM revision
/// 1, creator "TRVS" revision 1.
public enum ACPITables {
  /// The fw_cfg file holding the RSDP.
  public static let rsdpFile = "etc/acpi/rsdp"
  /// The fw_cfg file holding every other table.
  public static let tablesFile = "etc/acpi/tables"
  /// The OEM ID of every table and of the RSDP.
  public static let oemID = "TRIVSR"
  /// The OEM table ID of every table.
  public static let oemTableID = "TRIVISOR"
  /// The creator ID of every table.
  public static let creatorID = "TRVS"
  /// The SLP_TYP value in `\_S5` (the power-off register ignores it; only SLP_EN counts).
  public static let s5SleepType: UInt8 = 5
  /// The largest APIC ID a Processor Local APIC (type 0) entry may carry; larger IDs (and 255,
  /// the xAPIC broadcast ID) use x2APIC entries.
  public static let largestXAPICID: UInt32 = 254

  /// Where one table sits in "etc/acpi/tables".
  public struct Entry: Sendable, Equatable {
    /// The four-character signature ("FACS", "DSDT", "FACP", "APIC", "SRAT", "SLIT", "RSDT", "XSDT").
    public var signature: String
    /// The table's offset in the file.
    public var offset: Int
    /// The table's length in bytes.
    public var length: Int
  }

  /// The built tables: the relocatable files and where each table is in "etc/acpi/tables".
  public struct Built: Sendable, Equatable {
    /// The files with their pointers and checksums.
    public var files: RelocatableTables
    /// The tables of "etc/acpi/tables", in file order.
    public var entries: [Entry]
  }

  /// The tables for `platform` in a guest with `memory`; throws when `platform` fails
  /// `PlatformDescription.validate(memory:)`.
  public static func build(_ platform: PlatformDescription, memory: GuestMemory) throws(LoaderError) -> Built {
    try platform.validate(memory: memory)
    var files = RelocatableTables()
    files.addFile(rsdpFile, alignment: 16, zone: .fSegment)
    files.addFile(tablesFile, alignment: 64, zone: .high)
    var entries: [Entry] = []

    // Appends a table whose pointer fields (offset, width) hold offsets in the tables file,
    // records those pointers and the checksum (the FACS has none) and returns its offset.
    func add(_ t: TableBytes, pointers: [(Int, Int)] = [], checksum: Bool = true, alignment: Int = 16) -> Int {
      let offset = files.append(t.bytes, to: tablesFile, alignment: alignment)
      entries.append(Entry(signature: String(decoding: t.bytes[0..<4], as: UTF8.self), offset: offset, length: t.count))
      for (field, width) in pointers {
        files.addPointer(in: tablesFile, at: offset + field, size: width, to: tablesFile)
      }
      if checksum { files.addChecksum(in: tablesFile, at: offset + 9, over: offset..<(offset + t.count)) }
      return offset
    }

    let facs = add(facsTable(), checksum: false, alignment: 64)
    let dsdt = add(dsdtTable())
    // FIRMWARE_CTRL at 36, DSDT at 40, X_DSDT at 140.
    var described = [
      add(fadtTable(platform, facsOffset: facs, dsdtOffset: dsdt), pointers: [(36, 4), (40, 4), (140, 8)])
    ]
    described.append(add(madtTable(platform)))
    if let numa = platform.numa {
      described.append(add(sratTable(platform, numa)))
      described.append(add(slitTable(numa)))
    }
    var rsdt = header("RSDT", revision: 1)
    var xsdt = header("XSDT", revision: 1)
    for offset in described {
      rsdt.u32(UInt32(offset))
      xsdt.u64(UInt64(offset))
    }
    finishHeader(&rsdt)
    finishHeader(&xsdt)
    let rsdtOffset = add(rsdt, pointers: described.indices.map { (36 + 4 * $0, 4) })
    let xsdtOffset = add(xsdt, pointers: described.indices.map { (36 + 8 * $0, 8) })

    var r = TableBytes()
    r.ascii("RSD PTR ", width: 8)
    r.u8(0)  // checksum of the first 20 bytes
    r.ascii(oemID, width: 6)
    r.u8(2)  // revision: ACPI 2.0 or later
    r.u32(UInt32(rsdtOffset))
    r.u32(36)  // length
    r.u64(UInt64(xsdtOffset))
    r.u8(0)  // extended checksum
    r.zeros(3)
    _ = files.append(r.bytes, to: rsdpFile)
    files.addPointer(in: rsdpFile, at: 16, size: 4, to: tablesFile)
    files.addPointer(in: rsdpFile, at: 24, size: 8, to: tablesFile)
    files.addChecksum(in: rsdpFile, at: 8, over: 0..<20)
    files.addChecksum(in: rsdpFile, at: 32, over: 0..<36)
    return Built(files: files, entries: entries)
  }

  // MARK: Tables

  /// A standard 36-byte header with the length and checksum left zero.
  static func header(_ signature: String, revision: UInt8) -> TableBytes {
    var t = TableBytes()
    t.ascii(signature, width: 4)
    t.u32(0)  // length, set by finishHeader
    t.u8(revision)
    t.u8(0)  // checksum, computed at link time
    t.ascii(oemID, width: 6)
    t.ascii(oemTableID, width: 8)
    t.u32(1)  // OEM revision
    t.ascii(creatorID, width: 4)
    t.u32(1)  // creator revision
    return t
  }

  /// Sets the header's length field to the table's size.
  static func finishHeader(_ t: inout TableBytes) {
    t.put(UInt32(t.count), at: 4)
  }

  static func facsTable() -> TableBytes {
    var t = TableBytes()
    t.ascii("FACS", width: 4)
    t.u32(64)
    t.u32(0)  // hardware signature
    t.u32(0)  // firmware waking vector
    t.u32(0)  // global lock
    t.u32(0)  // flags: no S4BIOS, no 64-bit wake
    t.u64(0)  // X firmware waking vector
    t.u8(2)  // version
    t.zeros(3)
    t.u32(0)  // OSPM flags
    t.zeros(24)
    return t
  }

  /// The DSDT's AML: the `\_S5` sleep-type package (SLP_TYPa, SLP_TYPb, two reserved) and the
  /// PCI host bridge `\_SB.PCI0`.
  static func dsdtAML() -> [UInt8] {
    let s5 = UInt64(s5SleepType)
    return AMLEncoder.name(
      "\\_S5",
      AMLEncoder.package([
        AMLEncoder.integer(s5), AMLEncoder.integer(s5), AMLEncoder.integer(0), AMLEncoder.integer(0),
      ])) + pciHostBridgeAML()
  }

  /// `Scope(\_SB) { Device(LNKA)...Device(LNKD), Device(PCI0) }`: the PCI root bridge (PNP0A03,
  /// bus 0) with what it decodes in `_CRS`: buses 0-255, the configuration ports 0xCF8-0xCFF,
  /// every other I/O port, the VGA window and the 32-bit hole below the IOAPIC
  /// (`PCIMemoryWindow`). An OS that uses ACPI scans PCI only below such a device. Its `_PRT`
  /// routes pin INTA-INTD of every slot to the interrupt link `PCIInterruptRouter` wires it to;
  /// each link (PNP0C0F) consumes one global system interrupt from 16 on, level-triggered, active
  /// high and shared, and cannot be moved (`_SRS` accepts what `_PRS` offers, the only choice).
  static func pciHostBridgeAML() -> [UInt8] {
    let windowEnd = UInt32(PCIMemoryWindow.base + PCIMemoryWindow.size - 1)
    let resources = ResourceTemplate.template([
      ResourceTemplate.wordAddressSpace(resourceType: 2, minimum: 0, maximum: 0xFF),
      ResourceTemplate.io(base: 0xCF8, length: 8),
      ResourceTemplate.wordAddressSpace(resourceType: 1, minimum: 0, maximum: 0xCF7),
      ResourceTemplate.wordAddressSpace(resourceType: 1, minimum: 0xD00, maximum: 0xFFFF),
      ResourceTemplate.dwordMemory(minimum: 0xA_0000, maximum: 0xB_FFFF),
      ResourceTemplate.dwordMemory(minimum: UInt32(PCIMemoryWindow.base), maximum: windowEnd),
    ])
    let links = (0..<PCIInterruptRouter.linkCount).map { link in
      let interrupt = ResourceTemplate.template([
        ResourceTemplate.sharedLevelInterrupt(gsi: UInt32(PCIInterruptRouter.firstLinkGSI + link))
      ])
      return AMLEncoder.device(
        linkName(link),
        [
          AMLEncoder.name("_HID", AMLEncoder.eisaID("PNP0C0F")),
          AMLEncoder.name("_UID", AMLEncoder.integer(UInt64(link))),
          AMLEncoder.name("_PRS", AMLEncoder.buffer(interrupt)),
          AMLEncoder.name("_CRS", AMLEncoder.buffer(interrupt)),
          AMLEncoder.method("_SRS", argumentCount: 1, []),
        ])
    }
    // Package { address (slot << 16 | 0xFFFF: any function), pin, link, source index }.
    let routes = (0..<32).flatMap { slot in
      (0..<4).map { pin in
        AMLEncoder.package([
          AMLEncoder.integer(UInt64(slot) << 16 | 0xFFFF), AMLEncoder.integer(UInt64(pin)),
          AMLEncoder.nameString(linkName(PCIInterruptRouter.link(slot: slot, pin: pin))), AMLEncoder.integer(0),
        ])
      }
    }
    return AMLEncoder.scope(
      "\\_SB",
      links + [
        AMLEncoder.device(
          "PCI0",
          [
            AMLEncoder.name("_HID", AMLEncoder.eisaID("PNP0A03")),
            AMLEncoder.name("_UID", AMLEncoder.integer(0)),
            AMLEncoder.name("_BBN", AMLEncoder.integer(0)),
            AMLEncoder.name("_CRS", AMLEncoder.buffer(resources)),
            AMLEncoder.name("_PRT", AMLEncoder.package(routes)),
          ])
      ])
  }

  /// `LNKA`-`LNKD`.
  static func linkName(_ link: Int) -> String { "LNK" + String(UnicodeScalar(UInt8(0x41 + link))) }

  static func dsdtTable() -> TableBytes {
    var t = header("DSDT", revision: 2)
    t.raw(dsdtAML())
    finishHeader(&t)
    return t
  }

  /// An ACPI Generic Address Structure in system I/O space for `port`, or an all-zero one for nil.
  static func ioGAS(_ t: inout TableBytes, port: UInt16?, length: UInt8, accessSize: UInt8) {
    guard let port else { return t.zeros(12) }
    t.u8(1)  // system I/O
    t.u8(length * 8)  // register bit width
    t.u8(0)  // bit offset
    t.u8(accessSize)  // 1 byte, 2 word, 3 dword
    t.u64(UInt64(port))
  }

  /// FADT flag bits.
  enum FADTFlag {
    static let wbinvd: UInt32 = 1 << 0
    static let procC1: UInt32 = 1 << 2
    static let powerButton: UInt32 = 1 << 4
    static let sleepButton: UInt32 = 1 << 5
    static let fixRTC: UInt32 = 1 << 6
    static let resetRegisterSupported: UInt32 = 1 << 10
    static let hardwareReduced: UInt32 = 1 << 20
  }

  /// IA-PC boot architecture flag bits.
  enum BootArchitecture {
    static let legacyDevices: UInt16 = 1 << 0
    static let i8042: UInt16 = 1 << 1
    static let vgaNotPresent: UInt16 = 1 << 2
  }

  static func fadtTable(_ p: PlatformDescription, facsOffset: Int, dsdtOffset: Int) -> TableBytes {
    var t = header("FACP", revision: 6)
    t.u32(UInt32(facsOffset))  // 36 FIRMWARE_CTRL
    t.u32(UInt32(dsdtOffset))  // 40 DSDT
    t.u8(0)  // 44 reserved (INT_MODEL in ACPI 1.0)
    t.u8(0)  // 45 Preferred_PM_Profile: unspecified
    t.u16(UInt16(PlatformDescription.sciIRQ))  // 46 SCI_INT
    t.u32(0)  // 48 SMI_CMD: none, always in ACPI mode
    t.u8(0)  // 52 ACPI_ENABLE
    t.u8(0)  // 53 ACPI_DISABLE
    t.u8(0)  // 54 S4BIOS_REQ
    t.u8(0)  // 55 PSTATE_CNT
    t.u32(UInt32(PlatformDescription.pm1EventBlock))  // 56 PM1a_EVT_BLK
    t.u32(0)  // 60 PM1b_EVT_BLK
    t.u32(UInt32(PlatformDescription.pm1ControlBlock))  // 64 PM1a_CNT_BLK
    t.u32(0)  // 68 PM1b_CNT_BLK
    t.u32(0)  // 72 PM2_CNT_BLK
    t.u32(UInt32(p.pmTimerPort ?? 0))  // 76 PM_TMR_BLK
    t.u32(0)  // 80 GPE0_BLK
    t.u32(0)  // 84 GPE1_BLK
    t.u8(4)  // 88 PM1_EVT_LEN
    t.u8(2)  // 89 PM1_CNT_LEN
    t.u8(0)  // 90 PM2_CNT_LEN
    t.u8(p.pmTimerPort == nil ? 0 : 4)  // 91 PM_TMR_LEN
    t.u8(0)  // 92 GPE0_BLK_LEN
    t.u8(0)  // 93 GPE1_BLK_LEN
    t.u8(0)  // 94 GPE1_BASE
    t.u8(0)  // 95 CST_CNT
    t.u16(101)  // 96 P_LVL2_LAT: > 100, C2 not supported
    t.u16(1001)  // 98 P_LVL3_LAT: > 1000, C3 not supported
    t.u16(0)  // 100 FLUSH_SIZE
    t.u16(0)  // 102 FLUSH_STRIDE
    t.u8(0)  // 104 DUTY_OFFSET
    t.u8(0)  // 105 DUTY_WIDTH
    t.u8(0)  // 106 DAY_ALRM: no RTC day alarm
    t.u8(0)  // 107 MON_ALRM
    t.u8(PlatformDescription.rtcCenturyIndex)  // 108 CENTURY
    t.u16(BootArchitecture.legacyDevices | BootArchitecture.i8042 | BootArchitecture.vgaNotPresent)  // 109
    t.u8(0)  // 111 reserved
    t.u32(
      FADTFlag.wbinvd | FADTFlag.procC1 | FADTFlag.powerButton | FADTFlag.sleepButton | FADTFlag.fixRTC
        | FADTFlag.resetRegisterSupported)  // 112 Flags
    ioGAS(&t, port: PlatformDescription.resetRegister, length: 1, accessSize: 1)  // 116 RESET_REG
    t.u8(PlatformDescription.resetValue)  // 128 RESET_VALUE
    t.u16(0)  // 129 ARM_BOOT_ARCH
    t.u8(0)  // 131 FADT minor version: 6.0
    t.u64(0)  // 132 X_FIRMWARE_CTRL: zero because FIRMWARE_CTRL is set
    t.u64(UInt64(dsdtOffset))  // 140 X_DSDT
    ioGAS(&t, port: PlatformDescription.pm1EventBlock, length: 4, accessSize: 2)  // 148 X_PM1a_EVT_BLK
    t.zeros(12)  // 160 X_PM1b_EVT_BLK
    ioGAS(&t, port: PlatformDescription.pm1ControlBlock, length: 2, accessSize: 2)  // 172 X_PM1a_CNT_BLK
    t.zeros(12)  // 184 X_PM1b_CNT_BLK
    t.zeros(12)  // 196 X_PM2_CNT_BLK
    ioGAS(&t, port: p.pmTimerPort, length: 4, accessSize: 3)  // 208 X_PM_TMR_BLK
    t.zeros(12)  // 220 X_GPE0_BLK
    t.zeros(12)  // 232 X_GPE1_BLK
    t.zeros(12)  // 244 SLEEP_CONTROL_REG (hardware-reduced platforms only)
    t.zeros(12)  // 256 SLEEP_STATUS_REG
    t.ascii("TRIVISOR", width: 8)  // 268 hypervisor vendor identity
    finishHeader(&t)
    return t
  }

  static func madtTable(_ p: PlatformDescription) -> TableBytes {
    var t = header("APIC", revision: 4)
    t.u32(PlatformDescription.localAPICAddress)
    t.u32(1)  // PCAT_COMPAT: dual 8259s present
    var anyX2APIC = false
    for cpu in 0..<p.cpuCount {
      let id = p.apicID(ofCPU: cpu)
      if id <= largestXAPICID {
        t.u8(0)  // Processor Local APIC
        t.u8(8)
        t.u8(UInt8(cpu))  // ACPI processor UID
        t.u8(UInt8(id))
        t.u32(1)  // enabled
      } else {
        anyX2APIC = true
        t.u8(9)  // Processor Local x2APIC
        t.u8(16)
        t.u16(0)
        t.u32(id)
        t.u32(1)  // enabled
        t.u32(UInt32(cpu))  // ACPI processor UID
      }
    }
    t.u8(1)  // I/O APIC
    t.u8(12)
    t.u8(p.ioapicID)
    t.u8(0)
    t.u32(PlatformDescription.ioapicAddress)
    t.u32(0)  // GSI base
    for route in p.isaRoutes where route.needsOverride {
      t.u8(2)  // Interrupt Source Override
      t.u8(10)
      t.u8(0)  // bus: ISA
      t.u8(route.irq)
      t.u32(UInt32(route.pin))  // GSI
      t.u16(route.flags)
    }
    let nmiFlags = PlatformDescription.Polarity.activeHigh.rawValue | PlatformDescription.Trigger.edge.rawValue << 2
    t.u8(4)  // Local APIC NMI
    t.u8(6)
    t.u8(0xFF)  // all processors
    t.u16(nmiFlags)
    t.u8(1)  // LINT1
    if anyX2APIC {
      t.u8(0x0A)  // Local x2APIC NMI
      t.u8(12)
      t.u16(nmiFlags)
      t.u32(0xFFFF_FFFF)  // all processors
      t.u8(1)  // LINT1
      t.zeros(3)
    }
    finishHeader(&t)
    return t
  }

  static func sratTable(_ p: PlatformDescription, _ numa: NUMATopology) -> TableBytes {
    var t = header("SRAT", revision: 3)
    t.u32(1)  // reserved, 1 for compatibility
    t.u64(0)  // reserved
    for (domain, node) in numa.nodes.enumerated() {
      let pd = UInt32(domain)
      for cpu in node.cpus.sorted() {
        let id = p.apicID(ofCPU: cpu)
        if id <= largestXAPICID {
          t.u8(0)  // Processor Local APIC/SAPIC Affinity
          t.u8(16)
          t.u8(UInt8(pd & 0xFF))  // proximity domain bits 7-0
          t.u8(UInt8(id))
          t.u32(1)  // enabled
          t.u8(0)  // local SAPIC EID
          t.u8(UInt8(truncatingIfNeeded: pd >> 8))  // proximity domain bits 31-8
          t.u8(UInt8(truncatingIfNeeded: pd >> 16))
          t.u8(UInt8(truncatingIfNeeded: pd >> 24))
          t.u32(0)  // clock domain
        } else {
          t.u8(2)  // Processor Local x2APIC Affinity
          t.u8(24)
          t.u16(0)
          t.u32(pd)
          t.u32(id)
          t.u32(1)  // enabled
          t.u32(0)  // clock domain
          t.u32(0)
        }
      }
    }
    for (domain, node) in numa.nodes.enumerated() {
      for r in node.memory {
        t.u8(1)  // Memory Affinity
        t.u8(40)
        t.u32(UInt32(domain))
        t.u16(0)
        t.u64(r.lowerBound)  // base: low dword, high dword
        t.u64(r.upperBound - r.lowerBound)  // length: low dword, high dword
        t.u32(0)
        t.u32(1)  // enabled (not hot-pluggable, not non-volatile)
        t.u64(0)
      }
    }
    finishHeader(&t)
    return t
  }

  static func slitTable(_ numa: NUMATopology) -> TableBytes {
    var t = header("SLIT", revision: 1)
    t.u64(UInt64(numa.nodes.count))
    for row in numa.distances { t.raw(row) }
    finishHeader(&t)
    return t
  }
}

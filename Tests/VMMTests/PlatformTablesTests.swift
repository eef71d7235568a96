import Testing

@testable import VMM

/// The platform tables as a guest finds them after `PlatformTables.install`: every structure
/// found by the legacy scans, checksummed and decoded with `GuestTableReader`.
@Suite struct PlatformTablesTests {
  static let mib: UInt64 = 1 << 20

  /// Memory with the tables installed for `platform`, and the guest's view of them.
  func installed(_ platform: PlatformDescription, ram: UInt64 = 64 << 20) throws -> (
    GuestMemory, PlatformTablesPlacement, ACPIView, MPView
  ) {
    let memory = try GuestMemory(ramSize: ram)
    let placement = try PlatformTables.install(into: memory, platform: platform)
    return (memory, placement, try ACPIView.scan(memory), try MPView.scan(memory))
  }

  @Test(arguments: [1, 2, 4])
  func acpiTablesDescribeTheCPUsAndTheInterruptWiring(cpus: Int) throws {
    let (_, placement, acpi, _) = try installed(PlatformDescription(cpuCount: cpus))
    #expect(acpi.rsdpAddress == placement.rsdp)
    #expect(acpi.rsdp[15] == 2)
    #expect(acpi.rsdp.text(9, 6) == "TRIVSR")
    #expect(Set(acpi.tables.keys) == ["FACP", "APIC"])
    for t in [acpi.rsdt, acpi.xsdt, acpi.dsdt] + Array(acpi.tables.values) {
      #expect(t.oemID == "TRIVSR")
      #expect(t.oemTableID == "TRIVISOR")
      #expect(placement.address(of: t.signature) == t.address)
    }
    let madt = try decodeMADT(try #require(acpi.tables["APIC"]))
    #expect(madt.localAPIC == 0xFEE0_0000)
    #expect(madt.flags & 1 == 1, "PCAT_COMPAT")
    var expected: [MADTEntry] = (0..<cpus).map { .localAPIC(uid: UInt8($0), apicID: UInt8($0), flags: 1) }
    expected += [
      .ioAPIC(id: UInt8(cpus), address: 0xFEC0_0000, gsiBase: 0),
      .sourceOverride(bus: 0, irq: 0, gsi: 2, flags: 0),
      .sourceOverride(bus: 0, irq: 9, gsi: 9, flags: 0x000D),  // level, active high
      .localAPICNMI(uid: 0xFF, flags: 0x0005, lint: 1),
    ]
    #expect(madt.entries == expected)
    #expect(placement.ioapicID == UInt8(cpus))
  }

  @Test func theFADTPointsAtThePowerOffRegisterAndTheSCI() throws {
    let (_, _, acpi, _) = try installed(PlatformDescription(cpuCount: 2))
    let f = acpi.fadt.bytes
    #expect(acpi.fadt.revision == 6)
    #expect(f.count == 276)
    #expect(f[131] == 0, "minor version 6.0")
    #expect(UInt64(f.u32(36)) == acpi.facsAddress)
    #expect(f.u64(132) == 0, "X_FIRMWARE_CTRL is zero when FIRMWARE_CTRL is used")
    #expect(UInt64(f.u32(40)) == acpi.dsdt.address)
    #expect(f.u64(140) == acpi.dsdt.address)
    #expect(f.u16(46) == 9, "SCI_INT")
    #expect(f.u32(48) == 0, "no SMI command port")
    #expect(f.u32(56) == 0x600 && f[88] == 4, "PM1a_EVT_BLK")
    #expect(f.u32(64) == 0x604 && f[89] == 2, "PM1a_CNT_BLK")
    #expect(f.u32(76) == 0 && f[91] == 0, "no PM timer")
    #expect(f[108] == 0x32, "CENTURY")
    #expect(f.u16(109) == 0x0007, "LEGACY_DEVICES | 8042 | VGA not present")
    let flags = f.u32(112)
    #expect(flags & (1 << 20) == 0, "not hardware-reduced")
    #expect(flags & 0x0475 == 0x0475, "WBINVD, PROC_C1, PWR_BUTTON, SLP_BUTTON, FIX_RTC, RESET_REG_SUP")
    // RESET_REG: system I/O, 8 bits, byte access, port 0xCF9; value 6.
    #expect(Array(f[116..<120]) == [1, 8, 0, 1] && f.u64(120) == 0xCF9 && f[128] == 6)
    // X_PM1a_EVT_BLK and X_PM1a_CNT_BLK match the 32-bit blocks.
    #expect(Array(f[148..<152]) == [1, 32, 0, 2] && f.u64(152) == 0x600)
    #expect(Array(f[172..<176]) == [1, 16, 0, 2] && f.u64(176) == 0x604)
    #expect(f.text(268, 8) == "TRIVISOR")
    #expect(acpi.facs.u32(4) == 64 && acpi.facs[32] == 2)
  }

  /// After `\_S5`: `Scope(\_SB) { Device(PCI0) {...} }`, the PCI root bridge an ACPI OS scans
  /// (iasl's disassembly of the whole DSDT is checked in IASLDisassemblyTests).
  @Test func theDSDTDescribesThePCIRootBridgeAndItsWindows() throws {
    let memory = try GuestMemory(ramSize: 16 << 20)
    try PlatformTables.install(into: memory, cpuCount: 1)
    let body = Array(try ACPIView.scan(memory).dsdt.body.dropFirst(15))
    #expect(body.first == 0x10)  // ScopeOp
    #expect(body.firstRange(of: Array("\\_SB_".utf8)) != nil)
    let text = String(decoding: body.map { $0 >= 0x20 && $0 < 0x7F ? $0 : 0x2E }, as: UTF8.self)
    #expect(text.contains("PCI0") && text.contains("_HID") && text.contains("_CRS"))
    #expect(body.firstRange(of: [0x0C, 0x41, 0xD0, 0x0A, 0x03]) != nil)  // EisaId("PNP0A03") as a DWord
    // The 32-bit window: DWord memory descriptor from 0xC0000000 to 0xFEBFFFFF.
    #expect(body.firstRange(of: [0x00, 0x00, 0x00, 0xC0, 0xFF, 0xFF, 0xBF, 0xFE]) != nil)
    // The interrupt links and the routing table: PNP0C0F, and _PRT after _CRS.
    #expect(body.firstRange(of: [0x0C, 0x41, 0xD0, 0x0C, 0x0F]) != nil)  // EisaId("PNP0C0F")
    #expect(text.contains("LNKA") && text.contains("LNKD") && text.contains("_SRS"))
    let crs = try #require(body.firstRange(of: Array("_CRS".utf8)))
    #expect(body[crs.upperBound...].firstRange(of: Array("_PRT".utf8)) != nil)
  }

  @Test func aPMTimerAppearsOnlyWhenConfigured() throws {
    let (_, _, acpi, _) = try installed(PlatformDescription(cpuCount: 1, pmTimerPort: 0x608))
    let f = acpi.fadt.bytes
    #expect(f.u32(76) == 0x608 && f[91] == 4)
    #expect(Array(f[208..<212]) == [1, 32, 0, 3] && f.u64(212) == 0x608)
  }

  @Test func theDSDTsS5PackageMakesPowerOffWriteSLPENTo0x604() throws {
    let memory = try GuestMemory(ramSize: 16 << 20)
    try PlatformTables.install(into: memory, cpuCount: 1)
    let acpi = try ACPIView.scan(memory)
    #expect(acpi.dsdt.revision == 2)
    // Name(\_S5_, Package(4) {5, 5, 0, 0}), byte for byte as docs/platform-tables.md spells it out.
    let s5Bytes: [UInt8] = [0x08, 0x5C, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0, 0]
    #expect(Array(acpi.dsdt.body.prefix(s5Bytes.count)) == s5Bytes)
    let names = try AMLReader.namedPackages(s5Bytes)
    let s5 = try #require(names["_S5_"])
    #expect(s5 == [5, 5, 0, 0])
    // What Linux's acpi_hw_legacy_sleep does with it: SLP_TYPa into bits 12-10, then SLP_EN.
    let control = MachineControl()
    let pm1 = PowerOffDevice(control: control)
    let port = UInt16(acpi.fadt.bytes.u32(64))
    let slpTyp = UInt32(s5[0] & 7) << 10
    pm1.write(port: port, size: Int(acpi.fadt.bytes[89]), value: slpTyp)
    #expect(control.requestedStop == nil)
    pm1.write(port: port, size: Int(acpi.fadt.bytes[89]), value: slpTyp | 0x2000)
    #expect(control.requestedStop == .powerOff)
  }

  @Test func x2APICEntriesAboveAPICID254() throws {
    let cpus = 288
    let (_, placement, acpi, mp) = try installed(PlatformDescription(cpuCount: cpus))
    let madt = try decodeMADT(try #require(acpi.tables["APIC"]))
    var xapic: [UInt8] = []
    var x2apic: [UInt32] = []
    for e in madt.entries {
      switch e {
      case .localAPIC(let uid, let id, let flags):
        #expect(uid == id && flags == 1)
        xapic.append(id)
      case .localX2APIC(let id, let flags, let uid):
        #expect(uid == id && flags == 1)
        x2apic.append(id)
      default: break
      }
    }
    #expect(xapic == (0...254).map { UInt8($0) })
    #expect(x2apic == (255..<UInt32(cpus)).map { $0 })
    #expect(madt.entries.contains(.localX2APICNMI(flags: 0x0005, uid: 0xFFFF_FFFF, lint: 1)))
    #expect(madt.entries.contains(.ioAPIC(id: 254, address: 0xFEC0_0000, gsiBase: 0)))
    #expect(placement.ioapicID == 254)
    // The MP table can only name 8-bit IDs other than the I/O APIC's.
    let processors = mp.entries.compactMap { e -> UInt8? in
      if case .processor(let id, _, _, _, _) = e { return id }
      return nil
    }
    #expect(processors == (0...253).map { UInt8($0) })
  }

  @Test func theMPTableHasProcessorsBusIOAPICAndISAInterrupts() throws {
    let (_, placement, _, mp) = try installed(PlatformDescription(cpuCount: 4))
    #expect(mp.floatingPointerAddress == placement.mpFloatingPointer)
    #expect(mp.configurationAddress == placement.mpConfigurationTable.lowerBound)
    #expect(mp.floatingPointer[8] == 1 && mp.floatingPointer[9] == 4)
    #expect(mp.floatingPointer[11] == 0, "a configuration table, not a default configuration")
    #expect(mp.floatingPointer[12] & 0x80 == 0, "virtual-wire mode")
    #expect(mp.header[6] == 4)
    #expect(mp.header.text(8, 8) == "TRIVSR  ")
    #expect(mp.header.u32(36) == 0xFEE0_0000)
    var expected: [MPView.Entry] = (0..<4).map {
      .processor(apicID: UInt8($0), version: 0x14, flags: $0 == 0 ? 3 : 1, signature: 0x600, features: 0x201)
    }
    expected.append(.bus(id: 0, type: "ISA   "))
    expected.append(.ioAPIC(id: 4, version: 0x11, flags: 1, address: 0xFEC0_0000))
    for irq in UInt8(0)...15 where irq != 2 {
      expected.append(
        .ioInterrupt(type: 0, flags: irq == 9 ? 0x000D : 0, bus: 0, irq: irq, ioapic: 4, pin: irq == 0 ? 2 : irq))
    }
    expected.append(.localInterrupt(type: 3, flags: 0, bus: 0, irq: 0, apic: 0xFF, lint: 0))
    expected.append(.localInterrupt(type: 1, flags: 0, bus: 0, irq: 0, apic: 0xFF, lint: 1))
    #expect(mp.entries == expected)
  }

  @Test func theBIOSDataAreaPointsAtCOM1AndTheEBDA() throws {
    let memory = try GuestMemory(ramSize: 16 << 20)
    try memory.write(0x4FF, bytes: [0xAA])  // stale byte in the BDA: cleared
    try PlatformTables.install(into: memory, cpuCount: 1)
    let g = GuestBytes(memory: memory)
    #expect(try g.u16(0x400) == 0x3F8)
    #expect(try g.u16(0x402) == 0, "no COM2")
    #expect(try g.u16(0x40E) == 0x9FC0)
    #expect(try g.u16(0x410) == 0x0202)
    #expect(try g.u16(0x410) >> 9 & 7 == 1, "one serial port")
    #expect(try g.u16(0x413) == 639)
    #expect(try g.u8(0x9FC00) == 1, "EBDA size in KiB")
    #expect(try g.u8(0x4FF) == 0)
    // The boot GDT right after the BDA stays untouched.
    #expect(!PlatformTables.reservedRanges.contains { $0.0.overlaps(BootLayout.gdt) })
  }

  @Test func nothingOverlapsTheBootStructures() {
    let boot = [
      BootLayout.gdt, BootLayout.zeroPage, BootLayout.multibootInfo, BootLayout.commandLine,
      BootLayout.pageTables, BootLayout.stack,
    ]
    for (range, name) in PlatformTables.reservedRanges {
      for b in boot { #expect(!range.overlaps(b), "\(name)") }
    }
  }

  @Test func theE820MapReservesTheTableArea() throws {
    let memory = try GuestMemory(ramSize: 64 << 20)
    let map = PlatformTables.e820Entries(for: memory)
    #expect(
      map == [
        E820Entry(address: 0, length: 0x9FC00, kind: .usable),
        E820Entry(address: 0x9FC00, length: 0x400, kind: .reserved),
        E820Entry(address: 0xE0000, length: 0x20000, kind: .reserved),
        E820Entry(address: 0x10_0000, length: (64 << 20) - 0x10_0000, kind: .usable),
      ])
    let placement = try PlatformTables.install(into: memory, cpuCount: 2)
    for t in placement.acpiTables {
      #expect(
        map.contains { $0.kind == .reserved && $0.address <= t.address && t.address + UInt64(t.length) <= $0.end })
    }
    #expect(map.contains { $0.kind == .reserved && $0.address <= placement.rsdp && placement.rsdp < $0.end })
  }

  @Test func reservingARangeInsideUsableRAMSplitsIt() throws {
    let memory = try GuestMemory(ramSize: 64 << 20)
    let map = E820Map.entries(for: memory, reserving: [0x200_0000..<0x201_0000])
    #expect(
      map.suffix(3) == [
        E820Entry(address: 0x10_0000, length: 0x1F0_0000, kind: .usable),
        E820Entry(address: 0x200_0000, length: 0x1_0000, kind: .reserved),
        E820Entry(address: 0x201_0000, length: (64 << 20) - 0x201_0000, kind: .usable),
      ])
  }

  @Test(arguments: [2, 4])
  func vNUMAAddsSRATAndSLIT(cpus: Int) throws {
    let memory = try GuestMemory(ramSize: 64 << 20)
    let numa = try NUMATopology.evenlySplit(nodeCount: 2, cpuCount: cpus, memory: memory)
    let placement = try PlatformTables.install(into: memory, platform: PlatformDescription(cpuCount: cpus, numa: numa))
    let acpi = try ACPIView.scan(memory)
    #expect(Set(acpi.tables.keys) == ["FACP", "APIC", "SRAT", "SLIT"])
    #expect(placement.address(of: "SRAT") == acpi.tables["SRAT"]?.address)
    let srat = try decodeSRAT(try #require(acpi.tables["SRAT"]))
    let half = UInt32(cpus / 2)
    var expected: [SRATEntry] = (0..<UInt32(cpus)).map {
      .processor(domain: $0 < half ? 0 : 1, apicID: $0, x2APIC: false, flags: 1)
    }
    let half32: UInt64 = 32 << 20
    expected.append(.memory(domain: 0, base: 0, length: half32, flags: 1))
    expected.append(.memory(domain: 1, base: half32, length: half32, flags: 1))
    #expect(srat == expected)
    #expect(try decodeSLIT(try #require(acpi.tables["SLIT"])) == [[10, 20], [20, 10]])
  }

  @Test func vNUMAWithX2APICProcessorsAndRAMAbove4GiB() throws {
    let memory = try GuestMemory(ramSize: 5 << 30)
    let cpus = 300
    let numa = try NUMATopology.evenlySplit(nodeCount: 2, cpuCount: cpus, memory: memory)
    let mib: UInt64 = 1 << 20
    let gib: UInt64 = 1 << 30
    #expect(numa.nodes[0].memory == [0..<(2560 * mib)])
    #expect(numa.nodes[1].memory == [(2560 * mib)..<(3 * gib), (4 * gib)..<(6 * gib)])
    try PlatformTables.install(into: memory, platform: PlatformDescription(cpuCount: cpus, numa: numa))
    let acpi = try ACPIView.scan(memory)
    let srat = try decodeSRAT(try #require(acpi.tables["SRAT"]))
    let processors = srat.compactMap { e -> (UInt32, UInt32, Bool)? in
      if case .processor(let d, let id, let x2, _) = e { return (d, id, x2) }
      return nil
    }
    #expect(processors.count == cpus)
    #expect(processors.allSatisfy { $0.2 == ($0.1 > 254) && $0.0 == ($0.1 < 150 ? 0 : 1) })
    let memoryEntries = srat.filter { if case .memory = $0 { return true } else { return false } }
    let expectedMemory: [SRATEntry] = [
      .memory(domain: 0, base: 0, length: 2560 * mib, flags: 1),
      .memory(domain: 1, base: 2560 * mib, length: 512 * mib, flags: 1),
      .memory(domain: 1, base: 4 * gib, length: 2 * gib, flags: 1),
    ]
    #expect(memoryEntries == expectedMemory)
  }

  @Test func givenDistancesReachTheSLIT() throws {
    let memory = try GuestMemory(ramSize: 96 << 20)
    let numa = NUMATopology(
      nodes: [
        .init(cpus: [0, 3], memory: [0..<(32 << 20)]), .init(cpus: [1], memory: [(32 << 20)..<(64 << 20)]),
        .init(cpus: [2], memory: [(64 << 20)..<(96 << 20)]),
      ],
      distances: [[10, 15, 30], [15, 10, 255], [30, 255, 10]])
    try PlatformTables.install(into: memory, platform: PlatformDescription(cpuCount: 4, numa: numa))
    let acpi = try ACPIView.scan(memory)
    #expect(try decodeSLIT(try #require(acpi.tables["SLIT"])) == numa.distances)
    let srat = try decodeSRAT(try #require(acpi.tables["SRAT"]))
    #expect(
      srat.prefix(4) == [
        .processor(domain: 0, apicID: 0, x2APIC: false, flags: 1),
        .processor(domain: 0, apicID: 3, x2APIC: false, flags: 1),
        .processor(domain: 1, apicID: 1, x2APIC: false, flags: 1),
        .processor(domain: 2, apicID: 2, x2APIC: false, flags: 1),
      ])
  }

  @Test func invalidTopologiesAreRefusedBeforeAnythingIsWritten() throws {
    let memory = try GuestMemory(ramSize: 64 << 20)
    let all = [0..<UInt64(64 << 20)]
    let cases: [(NUMATopology, String)] = [
      (NUMATopology(nodes: [.init(cpus: [0], memory: all)]), "vCPU 1 is in no vNUMA node"),
      (
        NUMATopology(nodes: [.init(cpus: [0, 1], memory: all), .init(cpus: [1], memory: [])]),
        "vCPU 1 is in vNUMA nodes 0 and 1"
      ),
      (NUMATopology(nodes: [.init(cpus: [0, 1, 2], memory: all)]), "lists vCPU 2"),
      (NUMATopology(nodes: [.init(cpus: [0, 1], memory: [0..<(32 << 20)])]), "leave RAM from 0x2000000"),
      (NUMATopology(nodes: [.init(cpus: [0, 1], memory: [0..<(128 << 20)])]), "not inside one RAM region"),
      (
        NUMATopology(
          nodes: [.init(cpus: [0], memory: [0..<(40 << 20)]), .init(cpus: [1], memory: [(32 << 20)..<(64 << 20)])]),
        "overlaps node 0"
      ),
      (
        NUMATopology(
          nodes: [.init(cpus: [0], memory: [0..<(32 << 20)]), .init(cpus: [1], memory: [(32 << 20)..<(64 << 20)])],
          distances: [[10, 5], [5, 10]]), "must be more than 10"
      ),
      (NUMATopology(nodes: [.init(cpus: [0, 1], memory: all)], distances: [[11]]), "to itself must be 10"),
    ]
    for (numa, message) in cases {
      let error = #expect(throws: LoaderError.self) {
        try PlatformTables.install(into: memory, platform: PlatformDescription(cpuCount: 2, numa: numa))
      }
      #expect(error?.message.contains(message) == true, "\(error?.message ?? "no error"), expected \(message)")
    }
    #expect(try GuestBytes(memory: memory).u16(0x40E) == 0, "nothing written")
    #expect(throws: LoaderError.self) { try PlatformTables.install(into: memory, cpuCount: 0) }
    let shared = PlatformDescription(cpuCount: 4, ioapicID: 3)
    let clash = #expect(throws: LoaderError.self) { try PlatformTables.install(into: memory, platform: shared) }
    #expect(clash?.message == "I/O APIC ID 3 is also vCPU 3's APIC ID")
    #expect(throws: LoaderError.self) {
      try FwCfg().addACPITables(for: PlatformDescription(cpuCount: 2, ioapicID: 255), memory: memory)
    }
    let small = try GuestMemory(ramSize: 512 << 10)
    #expect(throws: LoaderError.self) { try PlatformTables.install(into: small, cpuCount: 1) }
  }

  @Test func theLargestConfigurationFitsTheTableArea() throws {
    let memory = try GuestMemory(ramSize: 128 << 20)
    let cpus = PlatformDescription.maximumCPUCount
    let numa = try NUMATopology.evenlySplit(nodeCount: NUMATopology.maximumNodes, cpuCount: cpus, memory: memory)
    let placement = try PlatformTables.install(into: memory, platform: PlatformDescription(cpuCount: cpus, numa: numa))
    #expect(placement.mpConfigurationTable.upperBound <= PlatformTables.tableArea.upperBound)
    let acpi = try ACPIView.scan(memory)
    #expect(try decodeSRAT(try #require(acpi.tables["SRAT"])).count == cpus + NUMATopology.maximumNodes)
    #expect(try decodeSLIT(try #require(acpi.tables["SLIT"])).count == NUMATopology.maximumNodes)
    #expect(throws: LoaderError.self) { try PlatformTables.install(into: memory, cpuCount: cpus + 1) }
  }

  @Test func installingTwiceGivesTheSameBytes() throws {
    let memory = try GuestMemory(ramSize: 16 << 20)
    let first = try PlatformTables.install(into: memory, cpuCount: 2)
    let bytes = try memory.read(0xE0000, count: 0x10000)
    let second = try PlatformTables.install(into: memory, cpuCount: 2)
    #expect(first == second)
    #expect(try memory.read(0xE0000, count: 0x10000) == bytes)
  }
}

/// The AML encoder against the AML grammar, decoded by the test's own reader.
@Suite struct AMLEncoderTests {
  @Test(arguments: [0, 1, 61, 62, 63, 100, 4091, 4093, 5000, 1_048_570, 1_048_576])
  func pkgLengthCountsItselfAndDecodesBack(content: Int) throws {
    let encoded = AMLEncoder.pkgLength(contentLength: content)
    let padded = encoded + [0, 0, 0]
    let (value, size) = try AMLReader.pkgLength(padded, 0)
    #expect(size == encoded.count)
    #expect(value == content + encoded.count)
    #expect(encoded.count == (content + 1 <= 63 ? 1 : content + 2 < 1 << 12 ? 2 : content + 3 < 1 << 20 ? 3 : 4))
  }

  @Test func integersTakeTheirShortestForm() {
    #expect(AMLEncoder.integer(0) == [0x00])
    #expect(AMLEncoder.integer(1) == [0x01])
    #expect(AMLEncoder.integer(5) == [0x0A, 0x05])
    #expect(AMLEncoder.integer(0x1234) == [0x0B, 0x34, 0x12])
    #expect(AMLEncoder.integer(0x12_3456) == [0x0C, 0x56, 0x34, 0x12, 0x00])
    #expect(AMLEncoder.integer(1 << 40) == [0x0E, 0, 0, 0, 0, 0, 1, 0, 0])
  }

  @Test func aNamedPackageDecodes() throws {
    let aml =
      AMLEncoder.name("\\_S5", AMLEncoder.package([AMLEncoder.integer(5), AMLEncoder.integer(0)]))
      + AMLEncoder.name("BIG", AMLEncoder.package((0..<40).map { AMLEncoder.integer(UInt64($0) * 1000) }))
    #expect(Array(aml.prefix(6)) == [0x08, 0x5C, 0x5F, 0x53, 0x35, 0x5F])  // Name(\_S5_
    let names = try AMLReader.namedPackages(aml)
    #expect(names["_S5_"] == [5, 0])
    #expect(names["BIG_"] == (0..<40).map { UInt64($0) * 1000 })
  }
}

/// The PM1 event block: status reads zero, enable keeps its defined bits.
@Suite struct PM1EventBlockTests {
  @Test func statusIsZeroAndEnableReadsBack() {
    let block = PM1EventBlock()
    #expect(block.read(port: 0x600, size: 2) == 0)
    block.write(port: 0x600, size: 2, value: 0xFFFF)  // write-one-to-clear: nothing to clear
    #expect(block.read(port: 0x600, size: 2) == 0)
    block.write(port: 0x602, size: 2, value: 0xFFFF)
    #expect(block.read(port: 0x602, size: 2) == 0x0721)
    #expect(block.read(port: 0x600, size: 4) == 0x0721_0000)
    #expect(block.read(port: 0x603, size: 1) & 0xFF == 0x07)
    block.write(port: 0x603, size: 1, value: 0)
    #expect(block.read(port: 0x602, size: 2) == 0x0021)
    block.write(port: 0x600, size: 4, value: 0x0100_0000)
    #expect(block.read(port: 0x602, size: 2) == 0x0100)
    block.reset()
    #expect(block.read(port: 0x602, size: 2) == 0)
  }
}

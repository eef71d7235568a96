import Testing

@testable import VMM

/// Reads fw_cfg through its ports, as firmware does: the selector at 0x510, bytes from 0x511,
/// files found through the big-endian directory at key 0x19.
struct FwCfgPortReader {
  let device: FwCfg

  func item(_ key: UInt16, count: Int) -> [UInt8] {
    device.write(port: 0x510, size: 2, value: UInt32(key))
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: device.read(port: 0x511, size: 1)) }
  }

  /// The directory: name, selector and size of each file.
  func directory() -> [(name: String, key: UInt16, size: Int)] {
    let countBytes = item(0x19, count: 4)
    let count = countBytes.reduce(0) { $0 << 8 | Int($1) }
    let all = item(0x19, count: 4 + 64 * count)
    return (0..<count).map { i in
      let e = Array(all[(4 + 64 * i)..<(4 + 64 * (i + 1))])
      let size = e[0..<4].reduce(0) { $0 << 8 | Int($1) }
      let key = UInt16(e[4]) << 8 | UInt16(e[5])
      let name = String(decoding: e[8...].prefix { $0 != 0 }, as: UTF8.self)
      return (name, key, size)
    }
  }

  func file(_ name: String) -> [UInt8]? {
    guard let entry = directory().first(where: { $0.name == name }) else { return nil }
    return item(entry.key, count: entry.size)
  }
}

/// A linker/loader interpreter written from the command format (128-byte commands: ALLOCATE,
/// ADD_POINTER, ADD_CHECKSUM), checking every command the way a careful firmware would, and
/// placing files in guest memory: the F segment from 0xF0000 up, high memory from the top of RAM
/// below 4 GiB down.
struct TableLoaderRun {
  struct Allocation {
    let address: UInt64
    let size: Int
  }
  private(set) var files: [String: Allocation] = [:]
  private(set) var order: [UInt32] = []
  let memory: GuestMemory
  let fwcfg: FwCfgPortReader
  private var fsegNext: UInt64 = 0xF0000
  private var highNext: UInt64

  init(memory: GuestMemory, fwcfg: FwCfgPortReader) {
    self.memory = memory
    self.fwcfg = fwcfg
    highNext = memory.regions.filter { $0.kind == .ram && $0.end <= 0xC000_0000 }.map(\.end).max()!
  }

  static func name(_ c: [UInt8], _ at: Int) throws -> String {
    let field = c[at..<(at + 56)]
    guard let nul = field.firstIndex(of: 0) else { throw TableFormatError("file name not NUL-terminated") }
    guard field[nul...].allSatisfy({ $0 == 0 }) else { throw TableFormatError("garbage after a file name") }
    return String(decoding: field[..<nul], as: UTF8.self)
  }

  mutating func run(_ commands: [UInt8]) throws {
    guard commands.count % 128 == 0 else { throw TableFormatError("command list is not whole 128-byte entries") }
    for start in stride(from: 0, to: commands.count, by: 128) {
      let c = Array(commands[start..<(start + 128)])
      let command = c.u32(0)
      order.append(command)
      switch command {
      case 1:
        let name = try Self.name(c, 4)
        let align = UInt64(c.u32(60))
        let zone = c[64]
        guard c[65...].allSatisfy({ $0 == 0 }) else { throw TableFormatError("ALLOCATE padding not zero") }
        guard align > 0, align & (align - 1) == 0 else { throw TableFormatError("alignment \(align)") }
        guard files[name] == nil else { throw TableFormatError("\(name) allocated twice") }
        guard let data = fwcfg.file(name) else { throw TableFormatError("no fw_cfg file \(name)") }
        let address: UInt64
        switch zone {
        case 2:
          address = (fsegNext + align - 1) & ~(align - 1)
          fsegNext = address + UInt64(data.count)
          guard fsegNext <= 0x10_0000 else { throw TableFormatError("F segment full") }
        case 1:
          address = (highNext - UInt64(data.count)) & ~(align - 1)
          highNext = address
        default: throw TableFormatError("zone \(zone)")
        }
        try memory.write(address, bytes: data)
        files[name] = Allocation(address: address, size: data.count)
      case 2:
        let dest = try Self.name(c, 4)
        let src = try Self.name(c, 60)
        let offset = Int(c.u32(116))
        let size = Int(c[120])
        guard c[121...].allSatisfy({ $0 == 0 }) else { throw TableFormatError("ADD_POINTER padding not zero") }
        guard let d = files[dest], let s = files[src] else { throw TableFormatError("pointer before ALLOCATE") }
        guard [1, 2, 4, 8].contains(size), offset + size <= d.size else { throw TableFormatError("pointer field") }
        let g = GuestBytes(memory: memory)
        let raw = try g.bytes(d.address + UInt64(offset), size)
        let value = raw.le(0, size)
        guard value < UInt64(s.size) else { throw TableFormatError("pointer offset \(value) outside \(src)") }
        let relocated = value + s.address
        guard size == 8 || relocated >> (8 * UInt64(size)) == 0 else { throw TableFormatError("pointer overflow") }
        try memory.write(
          d.address + UInt64(offset), bytes: (0..<size).map { UInt8(truncatingIfNeeded: relocated >> (8 * UInt64($0))) }
        )
      case 3:
        let file = try Self.name(c, 4)
        let offset = Int(c.u32(60))
        let start = Int(c.u32(64))
        let length = Int(c.u32(68))
        guard c[72...].allSatisfy({ $0 == 0 }) else { throw TableFormatError("ADD_CHECKSUM padding not zero") }
        guard let f = files[file] else { throw TableFormatError("checksum before ALLOCATE") }
        guard start + length <= f.size, (start..<(start + length)).contains(offset) else {
          throw TableFormatError("checksum range")
        }
        let range = try memory.read(f.address + UInt64(start), count: length)
        let old = try memory.read(f.address + UInt64(offset), count: 1)[0]
        try memory.write(f.address + UInt64(offset), bytes: [old &- range.sum8])
      default: throw TableFormatError("unknown command \(command)")
      }
    }
  }
}

/// The same ACPI tables offered to firmware through fw_cfg's linker/loader interface.
@Suite struct TableLoaderTests {
  /// Runs the loader of an fw_cfg with the tables of `platform` in fresh memory.
  func loadThroughFwCfg(_ platform: PlatformDescription, ram: UInt64 = 64 << 20) throws -> (
    GuestMemory, TableLoaderRun, FwCfg
  ) {
    let memory = try GuestMemory(ramSize: ram)
    let fwcfg = FwCfg.standard(memory: memory, cpuCount: platform.cpuCount)
    try fwcfg.addACPITables(for: platform, memory: memory)
    var run = TableLoaderRun(memory: memory, fwcfg: FwCfgPortReader(device: fwcfg))
    let commands = try #require(FwCfgPortReader(device: fwcfg).file("etc/table-loader"))
    try run.run(commands)
    return (memory, run, fwcfg)
  }

  @Test func theFilesAreInTheDirectory() throws {
    let memory = try GuestMemory(ramSize: 16 << 20)
    let fwcfg = FwCfg.standard(memory: memory, cpuCount: 2)
    try fwcfg.addACPITables(for: PlatformDescription(cpuCount: 2), memory: memory)
    let names = FwCfgPortReader(device: fwcfg).directory().map(\.name)
    #expect(names.contains("etc/acpi/rsdp") && names.contains("etc/acpi/tables") && names.contains("etc/table-loader"))
    #expect(!names.contains("etc/mptable"))
    #expect(FwCfgPortReader(device: fwcfg).file("etc/acpi/rsdp")?.count == 36)
    #expect(throws: LoaderError.self) {
      try fwcfg.addACPITables(for: PlatformDescription(cpuCount: 2), memory: memory)
    }
  }

  @Test(arguments: [1, 2, 4])
  func commandsAllocateThenPointThenChecksum(cpus: Int) throws {
    let (_, run, _) = try loadThroughFwCfg(PlatformDescription(cpuCount: cpus))
    #expect(run.order.prefix(2) == [1, 1])
    let firstChecksum = try #require(run.order.firstIndex(of: 3))
    #expect(run.order[2..<firstChecksum].allSatisfy { $0 == 2 })
    #expect(run.order[firstChecksum...].allSatisfy { $0 == 3 })
    let rsdp = try #require(run.files["etc/acpi/rsdp"])
    #expect((0xF0000..<0x10_0000).contains(rsdp.address) && rsdp.address % 16 == 0)
    #expect(try #require(run.files["etc/acpi/tables"]).address % 64 == 0)
  }

  @Test(arguments: [1, 2, 4])
  func firmwareEndsUpWithTheTablesDirectBootGets(cpus: Int) throws {
    let memory = try GuestMemory(ramSize: 64 << 20)
    let numa = cpus > 1 ? try NUMATopology.evenlySplit(nodeCount: 2, cpuCount: cpus, memory: memory) : nil
    let platform = PlatformDescription(cpuCount: cpus, numa: numa)
    try PlatformTables.install(into: memory, platform: platform)
    let direct = try ACPIView.scan(memory)

    let (loaded, run, _) = try loadThroughFwCfg(platform)
    let viaFirmware = try ACPIView.scan(loaded)  // nothing at 0x40E: found in the F segment
    #expect(viaFirmware.rsdpAddress == run.files["etc/acpi/rsdp"]?.address)
    let tables = try #require(run.files["etc/acpi/tables"])
    for t in [viaFirmware.rsdt, viaFirmware.xsdt, viaFirmware.dsdt] + Array(viaFirmware.tables.values) {
      #expect(t.address >= tables.address && t.address + UInt64(t.bytes.count) <= tables.address + UInt64(tables.size))
    }
    #expect(Set(viaFirmware.tables.keys) == Set(direct.tables.keys))
    #expect(try decodeMADT(viaFirmware.tables["APIC"]!).entries == decodeMADT(direct.tables["APIC"]!).entries)
    #expect(viaFirmware.dsdt.body == direct.dsdt.body)
    if numa != nil {
      #expect(try decodeSRAT(viaFirmware.tables["SRAT"]!) == decodeSRAT(direct.tables["SRAT"]!))
      #expect(try decodeSLIT(viaFirmware.tables["SLIT"]!) == decodeSLIT(direct.tables["SLIT"]!))
    }
    // The FADT differs only in its pointers (FIRMWARE_CTRL, DSDT, X_DSDT) and checksum.
    func masked(_ b: [UInt8]) -> [UInt8] {
      var b = b
      for i in [9] + Array(36..<44) + Array(140..<148) { b[i] = 0 }
      return b
    }
    #expect(masked(viaFirmware.fadt.bytes) == masked(direct.fadt.bytes))
    #expect(viaFirmware.facsAddress >= tables.address)
  }

  @Test func loaderCommandsAreWholeEntriesWithKnownNumbers() throws {
    let built = try ACPITables.build(PlatformDescription(cpuCount: 2), memory: GuestMemory(ramSize: 16 << 20))
    let commands = built.files.loaderCommands()
    #expect(
      commands.count == 128 * (built.files.files.count + built.files.pointers.count + built.files.checksums.count))
    #expect(built.files.pointers.count == 3 + 2 * 2 + 2)  // FADT; RSDT and XSDT with FADT, MADT; RSDP
  }
}

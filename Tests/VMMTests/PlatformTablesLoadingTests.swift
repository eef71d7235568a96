import Testing

@testable import VMM

/// Loaders for a machine that writes the platform tables into low memory
/// (`LoadOptions.platformTables`): the kernel's memory map reports the table area reserved, Linux
/// finds the RSDP in `boot_params`, and no image may land on the tables.
@Suite struct PlatformTablesLoadingTests {
  /// The reserved 0xE0000-0xFFFFF entry (tables plus BIOS area, merged) and no usable entry
  /// touching the table area.
  static func expectTableAreaReserved(_ entries: [(address: UInt64, length: UInt64, type: UInt32)]) {
    #expect(entries.contains { $0 == (0xE0000, 0x20000, 2) }, "\(entries)")
    #expect(
      !entries.contains { $0.type == 1 && $0.address < 0xF0000 && 0xE0000 < $0.address + $0.length }, "\(entries)")
  }

  static func zeroPageE820(_ m: GuestMemory) throws -> [(address: UInt64, length: UInt64, type: UInt32)] {
    let count = Int(try m.read(UInt8.self, at: 0x1000 + 0x1E8))
    return try (0..<count).map { i in
      let at = 0x1000 + 0x2D0 + UInt64(i) * 20
      return (
        try m.read(UInt64.self, at: at), try m.read(UInt64.self, at: at + 8), try m.read(UInt32.self, at: at + 16)
      )
    }
  }

  @Test func linuxGetsTheReservedTableAreaAndTheRSDPAddress() throws {
    let m = try GuestMemory(ramSize: 64 << 20)
    _ = try ImageLoader.load(
      image: TestImages.bzImage(kernel: [0xF4]), into: m, options: LoadOptions(platformTables: true))
    Self.expectTableAreaReserved(try Self.zeroPageE820(m))
    #expect(try m.read(UInt64.self, at: 0x1000 + 0x070) == PlatformTables.rsdpAddress)

    // Without the option: the plain map (no table area) and no RSDP pointer.
    let plain = try GuestMemory(ramSize: 64 << 20)
    _ = try ImageLoader.load(image: TestImages.bzImage(kernel: [0xF4]), into: plain)
    #expect(!(try Self.zeroPageE820(plain)).contains { $0.address == 0xE0000 })
    #expect(try plain.read(UInt64.self, at: 0x1000 + 0x070) == 0)
  }

  @Test func multibootGetsTheReservedTableArea() throws {
    let m = try GuestMemory(ramSize: 32 << 20)
    _ = try ImageLoader.load(
      image: TestImages.multibootELF(code: [0xF4]), into: m, options: LoadOptions(platformTables: true))
    let info: UInt64 = 0x2000
    let length = UInt64(try m.read(UInt32.self, at: info + 44))
    let mmap = UInt64(try m.read(UInt32.self, at: info + 48))
    var entries: [(address: UInt64, length: UInt64, type: UInt32)] = []
    var p = mmap
    while p < mmap + length {
      entries.append(
        (try m.read(UInt64.self, at: p + 4), try m.read(UInt64.self, at: p + 12), try m.read(UInt32.self, at: p + 20)))
      p += UInt64(try m.read(UInt32.self, at: p)) + 4
    }
    Self.expectTableAreaReserved(entries)
  }

  @Test func anImageOnTheTablesIsRefused() throws {
    let m = try GuestMemory(ramSize: 16 << 20)
    var options = LoadOptions(flatAddress: 0xE8000, flatMode: .real, platformTables: true)
    try expectLoaderError([0xF4], containing: "the ACPI and MP tables", options: options)
    options.flatAddress = 0x9FF00
    try expectLoaderError([0xF4], containing: "the extended BIOS data area", options: options)
    // The same image loads where the machine writes no tables.
    options.platformTables = false
    options.flatAddress = 0xE8000
    _ = try ImageLoader.load(image: [0xF4], into: m, options: options)
  }
}

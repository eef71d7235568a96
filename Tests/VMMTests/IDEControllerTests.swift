import Foundation
import Testing

@testable import VMM

/// A raw image in a fresh temporary file: `sectors` sectors, sector n filled with (n & 0xFF) and its
/// first 8 bytes holding n (little-endian), so every sector says where it came from.
final class TemporaryDiskImage {
  let path: String

  init(sectors: Int, bytes: Int? = nil) throws {
    path = NSTemporaryDirectory() + "trivisor-ide-\(UUID().uuidString).img"
    var data = [UInt8](repeating: 0, count: bytes ?? sectors * 512)
    for n in 0..<sectors where (n + 1) * 512 <= data.count {
      for i in 0..<512 { data[n * 512 + i] = UInt8(truncatingIfNeeded: n) }
      for i in 0..<8 { data[n * 512 + i] = UInt8(truncatingIfNeeded: UInt64(n) >> (8 * UInt64(i))) }
    }
    try Data(data).write(to: URL(fileURLWithPath: path))
  }

  /// The file's bytes now.
  func contents() throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

  deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The IDE controller (`IDEController`, `IDEChannel`, `ATADrive`) driven through its ports as a
/// BIOS or an ATA driver drives it, against image files.
@Suite struct IDEControllerTests {
  let sink = RecordingSink()
  let bus = PortIOBus()

  /// A controller with `images`, its ports on `bus`.
  func controller(_ images: [DiskImage]) throws -> IDEController {
    let ide = IDEController(disks: images, sink: sink)
    try ide.register(on: bus)
    return ide
  }

  func status(_ base: UInt16 = 0x1F0) -> UInt8 { UInt8(bus.read(port: base + 7, size: 1)) }

  /// Selects a device and sets an LBA28 address and count, then issues `command`.
  func issue(
    _ command: UInt8, lba: UInt64 = 0, count: UInt8 = 1, device: UInt8 = 0, features: UInt8 = 0,
    base: UInt16 = 0x1F0
  ) {
    bus.write(port: base + 6, size: 1, value: UInt32(0xE0 | device << 4 | UInt8(truncatingIfNeeded: lba >> 24) & 0x0F))
    bus.write(port: base + 1, size: 1, value: UInt32(features))
    bus.write(port: base + 2, size: 1, value: UInt32(count))
    bus.write(port: base + 3, size: 1, value: UInt32(lba & 0xFF))
    bus.write(port: base + 4, size: 1, value: UInt32((lba >> 8) & 0xFF))
    bus.write(port: base + 5, size: 1, value: UInt32((lba >> 16) & 0xFF))
    bus.write(port: base + 7, size: 1, value: UInt32(command))
  }

  /// Reads `words` words from the data register.
  func readWords(_ words: Int, base: UInt16 = 0x1F0) -> [UInt8] {
    var bytes: [UInt8] = []
    for _ in 0..<words {
      let w = bus.read(port: base, size: 2)
      bytes += [UInt8(w & 0xFF), UInt8(w >> 8)]
    }
    return bytes
  }

  func sectorNumber(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    bytes.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
  }

  @Test func identifyDescribesTheImage() throws {
    let file = try TemporaryDiskImage(sectors: 20_000)
    _ = try controller([try DiskImage(path: file.path)])
    issue(0xEC)
    #expect(status() == 0x58)  // DRDY DSC DRQ
    let data = readWords(256)
    #expect(status() == 0x50)
    func word(_ i: Int) -> Int { Int(data[2 * i]) | Int(data[2 * i + 1]) << 8 }
    var model = ""
    for i in 27..<47 {
      model += String(UnicodeScalar(UInt8(word(i) >> 8))) + String(UnicodeScalar(UInt8(word(i) & 0xFF)))
    }
    #expect(model.trimmingCharacters(in: .whitespaces) == "Trivisor ATA disk")
    #expect(word(60) | word(61) << 16 == 20_000)
    #expect(word(100) | word(101) << 16 == 20_000)
    #expect(word(49) & 0x0200 != 0)  // LBA
    #expect(word(49) & 0x0100 == 0)  // no DMA
    #expect(word(83) & 0x0400 != 0)  // 48-bit
    #expect(word(3) == 16 && word(6) == 63 && word(1) == 20_000 / (16 * 63))
    // The data register is empty now.
    #expect(bus.read(port: 0x1F0, size: 2) == 0xFFFF)
  }

  @Test func readSectorsDeliversEachSectorWithAnInterrupt() throws {
    let file = try TemporaryDiskImage(sectors: 100)
    let ide = try controller([try DiskImage(path: file.path)])
    bus.write(port: 0x3F6, size: 1, value: 0)  // interrupts on
    issue(0x20, lba: 37, count: 3)
    for n in 0..<3 {
      #expect(sink.levels[14], "interrupt for sector \(n)")
      #expect(status() == 0x58)
      #expect(!sink.levels[14], "reading the status clears it")
      let sector = readWords(256)
      #expect(sectorNumber(sector[...]) == 37 + UInt64(n))
      #expect(sector[300] == UInt8(37 + n))
    }
    #expect(status() == 0x50)
    #expect(sink.risingEdges[14] == 3)
    #expect(ide.sectorsRead == 3)
  }

  @Test func writeSectorsReachTheFile() throws {
    let file = try TemporaryDiskImage(sectors: 64)
    let ide = try controller([try DiskImage(path: file.path)])
    issue(0x30, lba: 10, count: 2)
    #expect(status() == 0x58)
    #expect(!sink.levels[14], "no interrupt before the first block of a PIO write")
    for n in 0..<2 {
      for i in 0..<256 { bus.write(port: 0x1F0, size: 2, value: UInt32(0xA000 + n * 256 + i)) }
      #expect(sink.levels[14])
      _ = status()
    }
    #expect(status() == 0x50)
    issue(0xE7)  // FLUSH CACHE
    #expect(status() == 0x50)
    let bytes = try file.contents()
    #expect(bytes[10 * 512] == 0x00 && bytes[10 * 512 + 1] == 0xA0)
    #expect(bytes[11 * 512 + 2] == 0x01 && bytes[11 * 512 + 3] == 0xA1)
    #expect(sectorNumber(bytes[(12 * 512)...]) == 12, "the next sector is untouched")
    #expect(ide.sectorsWritten == 2)
  }

  @Test func multipleModeMovesBlocksOfSectors() throws {
    let file = try TemporaryDiskImage(sectors: 64)
    _ = try controller([try DiskImage(path: file.path)])
    issue(0xC4, lba: 0, count: 4)
    #expect(status() & 0x01 != 0, "READ MULTIPLE with multiple mode off aborts")
    issue(0xC6, count: 3)
    #expect(status() & 0x01 != 0, "3 is not a power of two")
    issue(0xC6, count: 4)
    #expect(status() == 0x50)
    issue(0xC4, lba: 5, count: 6)
    let first = readWords(4 * 256)
    #expect(status() == 0x58, "a second block follows")
    let second = readWords(2 * 256)
    #expect(status() == 0x50)
    #expect(sectorNumber(first[(3 * 512)...]) == 8)
    #expect(sectorNumber(second[512...]) == 10)
  }

  @Test func lba48AndCHSAddressTheSameSectors() throws {
    let file = try TemporaryDiskImage(sectors: 70_000)
    _ = try controller([try DiskImage(path: file.path)])
    // READ SECTORS EXT at 65,600 (above 16 bits), count 1: previous then current halves.
    bus.write(port: 0x1F6, size: 1, value: 0x40)
    for (port, high, low) in [(2, 0, 1), (3, 0, 0x40), (4, 0, 0x00), (5, 0, 0x01)] as [(UInt16, UInt32, UInt32)] {
      bus.write(port: 0x1F0 + port, size: 1, value: high)
      bus.write(port: 0x1F0 + port, size: 1, value: low)
    }
    bus.write(port: 0x1F7, size: 1, value: 0x24)
    #expect(sectorNumber(readWords(256)[...]) == 65_600)
    // CHS: cylinder 2, head 3, sector 4 with 16 heads and 63 sectors per track.
    bus.write(port: 0x1F6, size: 1, value: 0xA3)
    bus.write(port: 0x1F2, size: 1, value: 1)
    bus.write(port: 0x1F3, size: 1, value: 4)
    bus.write(port: 0x1F4, size: 1, value: 2)
    bus.write(port: 0x1F5, size: 1, value: 0)
    bus.write(port: 0x1F7, size: 1, value: 0x20)
    #expect(sectorNumber(readWords(256)[...]) == (2 * 16 + 3) * 63 + 3)
    // HOB reads back the previous halves.
    bus.write(port: 0x1F3, size: 1, value: 0x12)
    bus.write(port: 0x1F3, size: 1, value: 0x34)
    bus.write(port: 0x3F6, size: 1, value: 0x80)
    #expect(bus.read(port: 0x1F3, size: 1) == 0x12)
    bus.write(port: 0x3F6, size: 1, value: 0x00)
    #expect(bus.read(port: 0x1F3, size: 1) == 0x34)
  }

  @Test func badRequestsEndInTheDevicesErrors() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    let before = try file.contents()
    _ = try controller([try DiskImage(path: file.path, readOnly: true)])
    issue(0x20, lba: 15, count: 2)  // runs past the end
    #expect(status() == 0x51)
    #expect(bus.read(port: 0x1F1, size: 1) == 0x10)  // IDNF
    #expect(bus.read(port: 0x1F0, size: 2) == 0xFFFF, "no data")
    issue(0x30, lba: 0, count: 1)  // read-only image
    #expect(status() == 0x51)
    #expect(bus.read(port: 0x1F1, size: 1) == 0x04)  // ABRT
    for i in 0..<256 { bus.write(port: 0x1F0, size: 2, value: UInt32(i)) }
    for command: UInt8 in [0x00, 0xA1, 0xA0, 0xC8, 0xCA, 0x25, 0xB0, 0xFF] {
      issue(command)
      #expect(status() == 0x51, "command \(command)")
      #expect(bus.read(port: 0x1F1, size: 1) == 0x04)
    }
    issue(0xEF, count: 0x42, features: 0x03)  // UDMA mode 2: no DMA here
    #expect(status() == 0x51)
    issue(0xEF, count: 0x0C, features: 0x03)  // PIO mode 4
    #expect(status() == 0x50)
    // CHS sector 0 does not exist.
    bus.write(port: 0x1F6, size: 1, value: 0xA0)
    bus.write(port: 0x1F3, size: 1, value: 0)
    bus.write(port: 0x1F7, size: 1, value: 0x20)
    #expect(status() == 0x51)
    #expect(try file.contents() == before)
  }

  @Test func nIENMasksTheLineAndSoftResetRestoresTheSignature() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    _ = try controller([try DiskImage(path: file.path)])
    bus.write(port: 0x3F6, size: 1, value: 0x02)  // nIEN
    issue(0x20, lba: 1)
    #expect(!sink.levels[14])
    bus.write(port: 0x3F6, size: 1, value: 0x00)
    #expect(sink.levels[14], "the pending interrupt shows once nIEN clears")
    #expect(bus.read(port: 0x3F6, size: 1) == 0x58)
    #expect(sink.levels[14], "alternate status leaves it pending")
    bus.write(port: 0x3F6, size: 1, value: 0x04)  // SRST
    #expect(!sink.levels[14])
    #expect(status() == 0x80)
    bus.write(port: 0x3F6, size: 1, value: 0x00)
    #expect(status() == 0x50)
    #expect(bus.read(port: 0x1F1, size: 1) == 0x01)
    #expect(bus.read(port: 0x1F2, size: 1) == 1 && bus.read(port: 0x1F3, size: 1) == 1)
    #expect(bus.read(port: 0x1F4, size: 1) == 0 && bus.read(port: 0x1F5, size: 1) == 0)
    #expect(bus.read(port: 0x1F0, size: 2) == 0xFFFF, "the read was cancelled")
  }

  @Test func absentDevicesAndChannelsLookEmpty() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    _ = try controller([try DiskImage(path: file.path)])
    // Device 1 is absent: status 0, registers shared, commands ignored.
    bus.write(port: 0x1F6, size: 1, value: 0xB0)
    #expect(status() == 0)
    bus.write(port: 0x1F2, size: 1, value: 0x55)
    #expect(bus.read(port: 0x1F2, size: 1) == 0x55)
    bus.write(port: 0x1F7, size: 1, value: 0xEC)
    #expect(status() == 0)
    #expect(!sink.levels[14])
    // The secondary channel has no drives.
    for port: UInt16 in [0x170, 0x171, 0x172, 0x176, 0x177, 0x376] { #expect(bus.read(port: port, size: 1) == 0) }
  }

  @Test func thirtyTwoBitDataAccessesMoveTwoWords() throws {
    let file = try TemporaryDiskImage(sectors: 8)
    _ = try controller([try DiskImage(path: file.path)])
    issue(0x20, lba: 6)
    let first = bus.read(port: 0x1F0, size: 4)
    #expect(first == 6)  // bytes 0-3 of sector 6: its number, little-endian
    for _ in 1..<128 { _ = bus.read(port: 0x1F0, size: 4) }
    #expect(status() == 0x50)
  }

  @Test func theSecondChannelAndSlaveWork() throws {
    let files = try (0..<4).map { n in try TemporaryDiskImage(sectors: 8 + n) }
    let _ = try controller(try files.map { try DiskImage(path: $0.path) })
    for (index, (base, device)) in [(0x1F0, 0), (0x1F0, 1), (0x170, 0), (0x170, 1)].enumerated() {
      issue(0xEC, device: UInt8(device), base: UInt16(base))
      let data = readWords(256, base: UInt16(base))
      _ = status(UInt16(base))
      #expect(Int(data[120]) == 8 + index, "drive \(index) reports its own size")
      // ATA strings keep two characters per word, the first in the high byte.
      let serial = stride(from: 20, to: 40, by: 2).flatMap { [data[$0 + 1], data[$0]] }
      #expect(String(decoding: serial, as: UTF8.self).hasPrefix("TRIVISOR-ATA-\(index) "))
    }
    bus.write(port: 0x376, size: 1, value: 0)
    issue(0x20, lba: 0, device: 1, base: 0x170)
    #expect(sink.levels[15] && !sink.levels[14])
  }

  @Test func pciConfigurationSpaceShowsAPIIXIDEFunction() throws {
    let file = try TemporaryDiskImage(sectors: 8)
    let bridge = PCIHostBridge()
    let ide = IDEController(disks: [try DiskImage(path: file.path)], sink: sink)
    #expect(bridge.attach(ide, slot: 1))
    #expect(!bridge.attach(ide, slot: 1), "a slot takes one function")
    #expect(!bridge.attach(ide, slot: 32))
    func config(_ offset: UInt32, _ size: Int = 4) -> UInt32 {
      bridge.write(port: 0xCF8, size: 4, value: 0x8000_0800 | offset & 0xFC)
      return bridge.read(port: 0xCFC + UInt16(offset & 3), size: size)
    }
    #expect(config(0x00) == 0x7010_8086)
    #expect(config(0x08) >> 8 == 0x01_01_00)
    for bar in stride(from: UInt32(0x10), through: 0x24, by: 4) { #expect(config(bar) == 0) }
    bridge.write(port: 0xCF8, size: 4, value: 0x8000_0810)
    bridge.write(port: 0xCFC, size: 4, value: 0xFFFF_FFFF)
    #expect(config(0x10) == 0, "legacy-mode BARs are read-only zero")
    #expect(config(0x41, 1) == 0x80 && config(0x43, 1) == 0x80)
    #expect(config(0x0E, 1) == 0)
    // Slot 2 and function 1 of slot 1 are empty.
    bridge.write(port: 0xCF8, size: 4, value: 0x8000_1000)
    #expect(bridge.read(port: 0xCFC, size: 4) == 0xFFFF_FFFF)
    bridge.write(port: 0xCF8, size: 4, value: 0x8000_0900)
    #expect(bridge.read(port: 0xCFC, size: 4) == 0xFFFF_FFFF)
  }

  @Test func randomPortTrafficNeverCrashesNorLeavesTheImage() throws {
    let file = try TemporaryDiskImage(sectors: 32)
    let size = try file.contents().count
    _ = try controller([try DiskImage(path: file.path)])
    var rng = SplitMix64(seed: 14)
    let ports = Array(0x1F0...0x1F7) + [0x3F6] + Array(0x170...0x177) + [0x376] as [UInt16]
    for _ in 0..<100_000 {
      let port = ports.randomElement(using: &rng)!
      let width = [1, 2, 4].randomElement(using: &rng)!
      if rng.next() & 1 == 0 {
        bus.write(port: port, size: width, value: UInt32(truncatingIfNeeded: rng.next()))
      } else {
        _ = bus.read(port: port, size: width)
      }
    }
    #expect(try file.contents().count == size, "writes stay inside the image")
  }
}

/// Opening images: the one-line errors of bad input, locking between VMs.
@Suite struct DiskImageTests {
  @Test func badFilesAreRefusedWithOneLine() throws {
    #expect(throws: HostFileError.self) { try DiskImage(path: "/nonexistent/disk.img") }
    #expect(throws: HostFileError.self) { try DiskImage(path: NSTemporaryDirectory()) }
    let tiny = try TemporaryDiskImage(sectors: 0, bytes: 100)
    do {
      _ = try DiskImage(path: tiny.path)
      Issue.record("a 100-byte image opened")
    } catch {
      #expect(error.description.contains("at least one 512-byte sector"))
      #expect(!error.description.contains("\n"))
    }
  }

  @Test func aWritableImageIsLockedAgainstOtherUsers() throws {
    let file = try TemporaryDiskImage(sectors: 4)
    let first = try DiskImage(path: file.path)
    do {
      _ = try DiskImage(path: file.path, readOnly: true)
      Issue.record("a locked image opened")
    } catch {
      #expect(error.description.contains("locked by another process"))
    }
    first.close()
    let readers = try (0..<2).map { _ in try DiskImage(path: file.path, readOnly: true) }
    #expect(throws: HostFileError.self) { try DiskImage(path: file.path) }
    _ = readers
  }

  @Test func aPartialLastSectorIsNotPartOfTheDisk() throws {
    let file = try TemporaryDiskImage(sectors: 3, bytes: 3 * 512 + 100)
    let image = try DiskImage(path: file.path)
    #expect(image.sectorCount == 3)
    var buffer = [UInt8](repeating: 0, count: 512)
    #expect(throws: DiskImage.IOError.self) {
      try buffer.withUnsafeMutableBytes { b in try image.read(sector: 3, count: 1, into: b) }
    }
  }
}

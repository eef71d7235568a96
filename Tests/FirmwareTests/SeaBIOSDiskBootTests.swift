import Foundation
import Launcher
import TestHostSupport
import Testing
import VMM

/// `trivisor run --bios bios.bin --disk IMAGE` (and `--virtio-blk IMAGE`): SeaBIOS finds the IDE
/// controller (the virtio-blk function) on PCI, its ATA (virtio) driver identifies the disk, and it
/// boots the disk's MBR (guests/testguests/disk_boot.S), which
/// reads and writes sectors through the BIOS's int 13h and powers off. Checks the console, the exit
/// and the image file afterwards, on every engine. The virtio runs add a virtio console and a
/// virtio network card on the user network, which SeaBIOS must enumerate after the disk.
@Suite(.serialized, .requires(.seabios)) struct SeaBIOSDiskBootTests {
  /// A 1 MiB image: the boot sector, then a line in sector 1 for the guest to print.
  static func makeImage() throws -> String {
    let path = NSTemporaryDirectory() + "trivisor-seabios-disk-\(UUID().uuidString).img"
    var bytes = [UInt8](repeating: 0, count: 1 << 20)
    bytes.replaceSubrange(0..<512, with: DiskBootImage.bootSector)
    let line = Array("disk boot: sector 1 read from the image\r\n".utf8) + [0]
    bytes.replaceSubrange(512..<(512 + line.count), with: line)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
  }

  static let expectedLines = [
    "disk boot: sector 0 running", "disk boot: sector 1 read from the image",
    "disk boot: sector 2 written by the guest", "disk boot: read past the end refused",
  ]

  /// How the disk is attached.
  enum Attachment: String, CaseIterable, Sendable {
    /// On the IDE controller (`--disk`).
    case ide
    /// As a virtio-blk PCI device (`--virtio-blk`).
    case virtio
  }

  static func bootFromDisk(_ engine: any Engine, _ attachment: Attachment = .ide) throws {
    let path = try makeImage()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let disk = try DiskImage(path: path)
    let network = attachment == .virtio ? try UserNetwork() : nil
    let b = try SeaBIOSBootTests.boot(
      try SeaBIOSBootTests.biosImage(), engine: engine, stopOn: nil, timeout: 120,
      disks: attachment == .ide ? [disk] : [], virtioDisks: attachment == .virtio ? [disk] : [],
      virtioConsole: attachment == .virtio, network: network)
    disk.close()
    network?.shutdown()
    #expect(b.outcome.reason == .powerOff, "\(b.outcome.reason.description)\n\(b.serial)")
    switch attachment {
    case .ide:
      #expect(b.debug.contains("PCI: init bdf=00:01.0 id=8086:7010"))
      #expect(b.debug.contains("ata0-0: Trivisor ATA disk ATA-7 Hard-Disk (1 MiBytes)"), "\(b.debug)")
    case .virtio:
      #expect(b.debug.contains("PCI: init bdf=00:02.0 id=1af4:1042"))
      #expect(b.debug.contains("found virtio-blk at 00:02.0"), "\(b.debug)")
      #expect(b.debug.contains("using modern (1.0) virtio mode"))
      #expect(b.debug.contains("PCI: init bdf=00:03.0 id=1af4:1043"), "the virtio console after the disk")
      #expect(b.debug.contains("PCI: init bdf=00:04.0 id=1af4:1041"), "the network card after the console")
    }
    #expect(b.debug.contains("Booting from Hard Disk..."))
    #expect(!b.serial.contains("FAILED"), "\(b.serial)")
    var rest = Substring(b.serial)
    for line in expectedLines {
      guard let r = rest.range(of: line + "\r\n") else {
        Issue.record("console lacks '\(line)' (in order)\n\(b.serial)")
        return
      }
      rest = rest[r.upperBound...]
    }
    // The guest's write reached the file.
    let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    let written = Array("disk boot: sector 2 written by the guest\r\n".utf8)
    #expect(Array(bytes[1024..<(1024 + written.count)]) == written)
  }

  @Test(arguments: ["interp", "dbt"], Attachment.allCases)
  func seaBIOSBootsTheDiskAndTheGuestWritesIt(_ engine: String, _ attachment: Attachment) throws {
    try Self.bootFromDisk(try EngineRegistry.make(engine), attachment)
  }

  @Test(.requires(.kvm), arguments: Attachment.allCases) func seaBIOSBootsTheDiskOnKVM(_ attachment: Attachment) throws
  {
    try Self.bootFromDisk(try EngineRegistry.make("kvm"), attachment)
  }

  @Test func aDiskStillInUseCannotBeOpenedByAnotherVM() throws {
    let path = try Self.makeImage()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let first = try DiskImage(path: path)
    #expect(throws: HostFileError.self) { try DiskImage(path: path) }
    first.close()
    _ = try DiskImage(path: path)
  }
}

import Foundation
import Launcher
import TestHostSupport
import Testing
import VMM

/// One entry read back from a newc archive.
struct NewcEntry: Equatable {
  var name: String
  var mode: UInt32
  var rdev: (UInt32, UInt32)
  var data: [UInt8]
  static func == (a: NewcEntry, b: NewcEntry) -> Bool {
    a.name == b.name && a.mode == b.mode && a.rdev == b.rdev && a.data == b.data
  }
}

/// Reads a newc archive as the kernel does (a test-side reader, independent of the writer).
func readNewc(_ bytes: [UInt8]) -> [NewcEntry]? {
  var entries: [NewcEntry] = []
  var at = 0
  func field(_ i: Int) -> UInt32? {
    let start = at + 6 + 8 * i
    guard start + 8 <= bytes.count else { return nil }
    return UInt32(String(decoding: bytes[start..<start + 8], as: UTF8.self), radix: 16)
  }
  while at + 110 <= bytes.count {
    guard bytes[at..<at + 6].elementsEqual("070701".utf8), let mode = field(1), let size = field(6),
      let rmajor = field(9), let rminor = field(10), let nameSize = field(11), nameSize > 0
    else { return nil }
    let nameStart = at + 110
    guard nameStart + Int(nameSize) <= bytes.count, bytes[nameStart + Int(nameSize) - 1] == 0 else { return nil }
    let name = String(decoding: bytes[nameStart..<nameStart + Int(nameSize) - 1], as: UTF8.self)
    var dataStart = nameStart + Int(nameSize)
    dataStart = (dataStart + 3) & ~3
    guard dataStart + Int(size) <= bytes.count else { return nil }
    if name == "TRAILER!!!" { return entries }
    entries.append(
      NewcEntry(name: name, mode: mode, rdev: (rmajor, rminor), data: Array(bytes[dataStart..<dataStart + Int(size)])))
    at = (dataStart + Int(size) + 3) & ~3
  }
  return nil  // no trailer
}

@Suite struct NewcArchiveTests {
  @Test func entriesParentsAndTrailerReadBack() throws {
    var archive = NewcArchive()
    archive.addFile("/usr/bin/tool", contents: Array("hello".utf8), mode: 0o755)
    archive.addSymbolicLink("bin", target: "usr/bin")
    archive.addCharacterDevice("/dev/console", major: 5, minor: 1)
    archive.addFile("usr/bin/tool", contents: [1, 2, 3])  // the first entry of a path wins
    archive.addFIFO("run/pipe")
    let entries = try #require(readNewc(archive.finished()))
    #expect(entries.map(\.name) == ["usr", "usr/bin", "usr/bin/tool", "bin", "dev", "dev/console", "run", "run/pipe"])
    #expect(entries[0].mode == 0o040755)
    #expect(entries[2] == NewcEntry(name: "usr/bin/tool", mode: 0o100755, rdev: (0, 0), data: Array("hello".utf8)))
    #expect(entries[3].mode == 0o120777 && entries[3].data == Array("usr/bin".utf8))
    #expect(entries[5].mode == 0o020600 && entries[5].rdev == (5, 1))
    #expect(entries[7].mode == 0o010644)
    #expect(archive.finished().count % 4 == 0)
  }

  @Test func pathsAreNormalized() {
    var archive = NewcArchive()
    archive.addDirectory("//a/./b/")
    #expect(archive.contains("/a/b") && archive.contains("a"))
    #expect(readNewc(archive.finished())?.map(\.name) == ["a", "a/b"])
  }
}

@Suite struct KernelModuleSetTests {
  let modulesDep = """
    kernel/drivers/virtio/virtio.ko:
    kernel/drivers/virtio/virtio_ring.ko:
    kernel/drivers/virtio/virtio_pci_modern_dev.ko:
    kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
    kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
    kernel/drivers/net/net-failover.ko:
    """

  @Test func dependenciesLoadFirstEachOnce() throws {
    let set = KernelModuleSet(directory: "/lib/modules/x", modulesDep: modulesDep)
    let order = try set.loadOrder(for: ["virtio_pci", "virtio-blk"])
    #expect(
      order == [
        "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/block/virtio_blk.ko",
      ])
    #expect(try set.loadOrder(for: ["net_failover"]) == ["kernel/drivers/net/net-failover.ko"])
  }

  @Test func builtinModulesAndUnknownNames() throws {
    let set = KernelModuleSet(directory: "/lib/modules/x", modulesDep: modulesDep, builtin: ["virtio", "virtio_ring"])
    #expect(try set.loadOrder(for: ["virtio_blk"]) == ["kernel/drivers/block/virtio_blk.ko"])
    #expect(throws: GuestImageError.self) { try set.loadOrder(for: ["no_such_module"]) }
  }

  @Test(.requires(.linuxKernel)) func hostKernelHasTheDriversTrivisorNeeds() throws {
    let kernel = try #require(HostKernel.newest())
    let contents = try #require(FileManager.default.contents(atPath: kernel))
    let release = try #require(KernelRelease.of(bzImage: [UInt8](contents)))
    #expect(kernel.hasSuffix(release))
    let set = try KernelModuleSet(directory: try #require(HostKernel.modulesDirectory(release: release)))
    let names = LinuxGuestImage.modules(ide: true, virtioBlock: true, virtioConsole: true, virtioNetwork: true)
    let order = try set.loadOrder(for: names)
    #expect(order.last?.hasSuffix("/ext4.ko") == true)
    #expect(order.contains { $0.hasSuffix("/virtio_net.ko") } && order.contains { $0.hasSuffix("/ata_piix.ko") })
    #expect(Set(order).count == order.count)
  }
}

@Suite struct KernelReleaseTests {
  @Test func readsTheVersionStringThroughTheSetupHeader() {
    var image = [UInt8](repeating: 0, count: 0x400)
    image.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
    image[0x20E] = 0x00
    image[0x20F] = 0x01  // string at 0x100 + 0x200
    let text = Array("6.1.0-27-amd64 (debian-kernel@lists.debian.org) #1 SMP".utf8)
    image.replaceSubrange(0x300..<0x300 + text.count, with: text)
    #expect(KernelRelease.of(bzImage: image) == "6.1.0-27-amd64")
    image[0x20F] = 0x7F  // points past the end
    #expect(KernelRelease.of(bzImage: image) == nil)
    #expect(KernelRelease.of(bzImage: [1, 2, 3]) == nil)
  }

  @Test func newestKernelComparesVersionsNumerically() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-boot-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for name in ["vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-27-amd64", "vmlinuz-5.10.0-30-amd64", "config-7.0"] {
      FileManager.default.createFile(atPath: dir + "/" + name, contents: Data())
    }
    #expect(HostKernel.newest(in: dir) == dir + "/vmlinuz-6.1.0-27-amd64")
    #expect(HostKernel.newest(in: "/nonexistent") == nil)
  }
}

@Suite struct SharedLibraryResolverTests {
  @Test func dynamicProgramNeedsItsLoaderAndLibc() throws {
    let files = try SharedLibraryResolver().files(neededBy: "/bin/true")
    #expect(files.first?.contains("ld-linux-x86-64") == true)
    #expect(files.contains { $0.hasSuffix("/libc.so.6") })
  }

  @Test func malformedFilesAreOneLineErrors() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-elf-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    var good = [UInt8](try #require(FileManager.default.contents(atPath: "/bin/true")))
    var rng = Xorshift64(seed: 77)
    for round in 0..<200 {
      var bytes = good
      if round % 2 == 0 {
        bytes = Array(good.prefix(Int(rng.next() % UInt64(good.count))))
      } else {
        for _ in 0..<8 { bytes[Int(rng.next() % 4096)] = UInt8(truncatingIfNeeded: rng.next()) }
      }
      // Parsing must fail cleanly or succeed; never trap.
      _ = try? ELFDynamicInfo(bytes: bytes, name: "mutant")
    }
    good = Array("#!/bin/sh\necho\n".utf8)
    let script = dir.appendingPathComponent("script").path
    FileManager.default.createFile(atPath: script, contents: Data(good))
    #expect(throws: GuestImageError.self) { try SharedLibraryResolver().files(neededBy: script) }
  }
}

@Suite struct LinuxGuestImageTests {
  @Test func applicationImageCarriesProgramLibrariesAndInit() throws {
    let builder = LinuxGuestImage(maximumSize: 64 << 20)
    let entries = try #require(readNewc(try builder.application(program: "true", arguments: ["a b", "c"])))
    let byName = Dictionary(entries.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let argv = try #require(byName["trivisor/argv"]).data
    let words = argv.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    #expect(words.count == 4 && words[0].hasSuffix("/true") && words[1] == "a b" && words[2] == "c" && words[3] == "")
    #expect(byName[String(words[0].dropFirst())]?.mode == 0o100755)
    #expect(byName.keys.contains { $0.hasSuffix("libc.so.6") })
    #expect(byName["trivisor/mode"]?.data == Array("app".utf8))
    #expect(byName["trivisor/modules"]?.data == [])
    let console = try #require(byName["dev/console"])
    #expect(console.rdev == (5, 1))
    #expect(byName["trivisor/init"]?.data.prefix(4) == [0x7F, 0x45, 0x4C, 0x46])
  }

  @Test func rootFilesystemImageKeepsTheTree() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-rootfs-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir + "/sbin", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    FileManager.default.createFile(atPath: dir + "/sbin/real-init", contents: Data("#!/bin/sh\n".utf8))
    chmod(dir + "/sbin/real-init", 0o750)
    try FileManager.default.createSymbolicLink(atPath: dir + "/sbin/init", withDestinationPath: "real-init")
    let builder = LinuxGuestImage(maximumSize: 1 << 20)
    let entries = try #require(readNewc(try builder.rootFilesystem(directory: dir, initPath: "/sbin/init")))
    let byName = Dictionary(entries.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    #expect(byName["sbin/real-init"]?.mode == 0o100750)
    #expect(byName["sbin/init"]?.data == Array("real-init".utf8))
    #expect(byName["trivisor/argv"]?.data == Array("/sbin/init".utf8) + [0])
    #expect(byName["trivisor/mode"]?.data == Array("init".utf8))
    // Bad input: one-line errors.
    #expect(throws: GuestImageError.self) {
      try builder.rootFilesystem(directory: dir + "/none", initPath: "/sbin/init")
    }
    #expect(throws: GuestImageError.self) { try builder.rootFilesystem(directory: dir, initPath: "/bin/init") }
    #expect(throws: GuestImageError.self) {
      try LinuxGuestImage(maximumSize: 100).rootFilesystem(directory: dir, initPath: "/sbin/init")
    }
    #expect(throws: GuestImageError.self) { try builder.application(program: "no-such-program-here", arguments: []) }
  }

  @Test func commandLines() {
    #expect(LinuxGuestImage.commandLine(application: false, extra: nil) == "console=ttyS0 rdinit=/trivisor/init")
    #expect(
      LinuxGuestImage.commandLine(application: true, extra: "foo=1")
        == "console=ttyS0 rdinit=/trivisor/init quiet loglevel=1 panic=-1 foo=1")
  }
}

/// The images checked on QEMU (an independent machine): trivisor-init loads the virtio modules of
/// the host's kernel, runs a dynamically linked program with its libraries, and hands its exit
/// status to isa-debug-exit. About 5 s of TCG.
@Suite(.requires(.qemu, .linuxKernel)) struct LinuxGuestImageOnQEMUTests {
  @Test func applicationRunsWithItsModulesAndExitStatus() throws {
    let kernel = try #require(HostKernel.newest())
    let contents = try #require(FileManager.default.contents(atPath: kernel))
    let release = try #require(KernelRelease.of(bzImage: [UInt8](contents)))
    var builder = LinuxGuestImage(maximumSize: 64 << 20)
    builder.modules = LinuxGuestImage.modules(ide: false, virtioBlock: true, virtioConsole: false)
    builder.moduleSet = try KernelModuleSet(directory: try #require(HostKernel.modulesDirectory(release: release)))
    let image = try builder.application(
      program: "/bin/sh", arguments: ["-c", "while read m rest; do echo module:$m; done < /proc/modules; exit 7"])
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-app-\(getpid()).cpio").path
    FileManager.default.createFile(atPath: path, contents: Data(image))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let result = try HostProcess.run(
      try #require(HostTools.find("qemu-system-x86_64")),
      [
        "-accel", "tcg", "-m", "256", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
        "-kernel", kernel, "-initrd", path, "-append", LinuxGuestImage.commandLine(application: true, extra: nil),
        "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
      ], timeout: 600)
    #expect(!result.timedOut)
    #expect(result.output.contains("module:virtio_blk"), "\(result.output.suffix(2000))")
    #expect(result.output.contains("module:virtio_pci"))
    #expect(result.status == (7 << 1) | 1)
  }
}

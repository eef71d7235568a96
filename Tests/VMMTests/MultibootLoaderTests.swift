import Testing

@testable import VMM

@Suite struct MultibootLoaderTests {
  func u32(_ m: GuestMemory, _ a: UInt64) throws -> UInt32 { try m.read(UInt32.self, at: a) }
  func cString(_ m: GuestMemory, _ a: UInt64) throws -> String {
    var bytes: [UInt8] = []
    var p = a
    while let b = try? m.read(UInt8.self, at: p), b != 0, bytes.count < 4096 {
      bytes.append(b)
      p += 1
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  /// GRUB and QEMU pass "<kernel path> <arguments>": kernels take the first word as their name.
  @Test(arguments: [("quiet", "/boot/kernel quiet"), ("", "/boot/kernel")])
  func theCommandLineStartsWithTheImagePath(_ append: String, _ expected: String) throws {
    let m = try GuestMemory(ramSize: 32 << 20)
    let image = TestImages.multibootELF(code: [0xFA, 0xF4])
    let options = LoadOptions(commandLine: append, imagePath: "/boot/kernel")
    _ = try ImageLoader.load(image: image, into: m, options: options)
    #expect(try cString(m, UInt64(try u32(m, 0x2000 + 16))) == expected)
  }

  @Test func loadsAnELF32KernelWithTheMultibootEntryState() throws {
    let m = try GuestMemory(ramSize: 32 << 20)
    let image = TestImages.multibootELF(code: [0xFA, 0xF4])
    #expect(ImageLoader.detectFormat(image) == "Multiboot ELF32")
    let boot = try ImageLoader.load(image: image, into: m, options: LoadOptions(commandLine: "quiet"))
    #expect(boot.mode == .protected32)
    #expect(boot.registers.rax == 0x2BAD_B002)
    #expect(boot.registers.rbx == 0x2000)
    #expect(boot.registers.rip == 0x10_000C)
    #expect(boot.registers.rflags == 0x2)
    let s = boot.specialRegisters
    #expect(s.cr0 & 0x8000_0001 == 1)  // PE, no paging
    #expect(s.efer == 0)
    #expect(s.cs.db && !s.cs.l && s.cs.limit == 0xFFFF_FFFF && s.cs.selector == 0x08)
    #expect(s.ds.db && s.ds.limit == 0xFFFF_FFFF && s.ds.base == 0)
    #expect(try m.read(0x10_000C, count: 2) == [0xFA, 0xF4])
    #expect(try m.read(0x10_000E, count: 0x1000).allSatisfy { $0 == 0 })

    let info: UInt64 = 0x2000
    let flags = try u32(m, info)
    #expect(flags & 0x245 == 0x245)  // mem, cmdline, mmap, loader name
    #expect(flags & 0x8 == 0)  // no modules
    #expect(try u32(m, info + 4) == 640)
    #expect(try u32(m, info + 8) == 31 * 1024)
    #expect(try cString(m, UInt64(try u32(m, info + 16))) == "quiet")
    #expect(try cString(m, UInt64(try u32(m, info + 64))) == "trivisor")
    // Memory map: usable low memory, EBDA, BIOS, usable from 1 MiB.
    let length = try u32(m, info + 44)
    let mmap = UInt64(try u32(m, info + 48))
    #expect(length == 4 * 24)
    var entries: [(UInt64, UInt64, UInt32)] = []
    var p = mmap
    while p < mmap + UInt64(length) {
      let size = try u32(m, p)
      entries.append((try m.read(UInt64.self, at: p + 4), try m.read(UInt64.self, at: p + 12), try u32(m, p + 20)))
      p += UInt64(size) + 4
    }
    #expect(entries.count == 4)
    #expect(entries[0] == (0, 0x9FC00, 1))
    #expect(entries[1].2 == 2)
    #expect(entries[3] == (0x10_0000, (32 << 20) - 0x10_0000, 1))
  }

  @Test func passesTheInitrdAsAPageAlignedModule() throws {
    let m = try GuestMemory(ramSize: 32 << 20)
    let initrd = (0..<5000).map { UInt8(truncatingIfNeeded: $0) }
    _ = try ImageLoader.load(
      image: TestImages.multibootELF(), into: m, options: LoadOptions(initrd: initrd))
    let info: UInt64 = 0x2000
    #expect(try u32(m, info) & 0x8 == 0x8)
    #expect(try u32(m, info + 20) == 1)
    let module = UInt64(try u32(m, info + 24))
    let start = try u32(m, module)
    let end = try u32(m, module + 4)
    #expect(start % 4096 == 0 && start >= 0x10_0000 + 0x100D)
    #expect(end - start == 5000)
    #expect(try m.read(UInt64(start), count: 5000) == initrd)
    #expect(try cString(m, UInt64(try u32(m, module + 8))) == "initrd")
  }

  @Test func loadsWithTheAddressFields() throws {
    let m = try GuestMemory(ramSize: 16 << 20)
    let image = TestImages.multibootKludge(payload: [0x90, 0x90, 0xF4], bss: 0x100)
    #expect(ImageLoader.detectFormat(image) == "Multiboot")
    let boot = try ImageLoader.load(image: image, into: m, options: LoadOptions())
    #expect(boot.registers.rip == 0x20_0020)
    #expect(try m.read(0x20_0020, count: 3) == [0x90, 0x90, 0xF4])
    #expect(try m.read(0x20_0000, count: 4) == [0x02, 0xB0, 0xAD, 0x1B])
    #expect(boot.registers.rax == 0x2BAD_B002)
  }

  @Test func findsTheHeaderAnywhereInTheFirst8KiB() throws {
    let m = try GuestMemory(ramSize: 16 << 20)
    let padding = [UInt8](repeating: 0, count: 8000)
    let load: UInt32 = 0x20_0000
    let header = TestImages.multibootHeader(
      addresses: (header: load + 8000, load: load, loadEnd: 0, bssEnd: 0, entry: load))
    let boot = try ImageLoader.load(image: padding + header + [0xF4], into: m, options: LoadOptions())
    #expect(boot.registers.rip == UInt64(load))
    // Beyond 8 KiB it is not found.
    try expectLoaderError([UInt8](repeating: 0, count: 8192) + header, containing: "unrecognized")
  }

  @Test func refusesBadHeaders() throws {
    try expectLoaderError(
      TestImages.multibootHeader(badChecksum: true) + [0xF4], containing: "unrecognized")
    let data = TestImages.multibootHeader(flags: 0x8) + [0xF4]
    try expectLoaderError(
      TestImages.elf(is64: false, entry: 0x10_000C, segments: [.init(at: 0x10_0000, data: data)]),
      containing: "unsupported features")
    try expectLoaderError(
      TestImages.multibootHeader() + [0xF4], containing: "not ELF and its header has no address fields")
    try expectLoaderError(
      TestImages.elf(is64: false, entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: [0xF4])]),
      containing: "no Multiboot header")
    try expectLoaderError(TestImages.multibootELF(machine: 62), containing: "expected i386")
    // header_addr below load_addr by more than the header's file offset.
    let bad = TestImages.multibootHeader(
      addresses: (header: 0x20_0000, load: 0x10_0000, loadEnd: 0, bssEnd: 0, entry: 0x10_0000))
    try expectLoaderError(bad + [0xF4], containing: "does not match header_addr")
    let beyond = TestImages.multibootHeader(
      addresses: (header: 0x20_0000, load: 0x20_0000, loadEnd: 0x30_0000, bssEnd: 0, entry: 0x20_0000))
    try expectLoaderError(beyond, containing: "truncated")
    let bssBelow = TestImages.multibootHeader(
      addresses: (header: 0x20_0000, load: 0x20_0000, loadEnd: 0x20_0020, bssEnd: 0x20_0010, entry: 0x20_0000))
    try expectLoaderError(bssBelow, containing: "bss_end_addr")
    let entryOutside = TestImages.multibootHeader(
      addresses: (header: 0x20_0000, load: 0x20_0000, loadEnd: 0, bssEnd: 0, entry: 0x40_0000))
    try expectLoaderError(entryOutside + [0xF4], containing: "entry_addr")
    let overGDT = TestImages.multibootHeader(
      addresses: (header: 0x500, load: 0x500, loadEnd: 0, bssEnd: 0, entry: 0x500))
    try expectLoaderError(overGDT, containing: "overlaps the boot GDT")
    let overInfo = TestImages.multibootHeader(
      addresses: (header: 0x2000, load: 0x2000, loadEnd: 0, bssEnd: 0, entry: 0x2000))
    try expectLoaderError(overInfo, containing: "overlaps the Multiboot information")
  }

  @Test func refusesAnInitrdThatDoesNotFit() throws {
    try expectLoaderError(
      TestImages.multibootELF(), containing: "initrd",
      ramMiB: 2, options: LoadOptions(initrd: [UInt8](repeating: 1, count: 2 << 20)))
    try expectLoaderError(
      TestImages.multibootELF(), containing: "initrd is empty", options: LoadOptions(initrd: []))
  }

  @Test func refusesATooLongCommandLine() throws {
    try expectLoaderError(
      TestImages.multibootELF(), containing: "command line",
      options: LoadOptions(commandLine: String(repeating: "x", count: 20000)))
  }
}

import Testing

@testable import VMM

@Suite struct LinuxLoaderTests {
  let kernel = (0..<0x800).map { UInt8(truncatingIfNeeded: $0 * 7) }

  @Test func loadsThroughThe64BitBootProtocol() throws {
    let m = try GuestMemory(ramSize: 64 << 20)
    let image = TestImages.bzImage(kernel: kernel)
    #expect(ImageLoader.detectFormat(image) == "Linux bzImage")
    let initrd = [UInt8](repeating: 0xA5, count: 10000)
    let boot = try ImageLoader.load(
      image: image, into: m, options: LoadOptions(commandLine: "console=ttyS0 panic=-1", initrd: initrd))
    #expect(boot.mode == .long64)
    #expect(boot.registers.rip == 0x10_0200)
    #expect(boot.registers.rsi == 0x1000)
    #expect(boot.specialRegisters.cs.selector == 0x10 && boot.specialRegisters.ds.selector == 0x18)
    #expect(try m.read(0x10_0000, count: kernel.count) == kernel)

    let zp: UInt64 = 0x1000
    #expect(try m.read(UInt32.self, at: zp + 0x202) == 0x5372_6448)  // header copied
    #expect(try m.read(UInt16.self, at: zp + 0x206) == 0x020F)
    #expect(try m.read(UInt8.self, at: zp + 0x210) == 0xFF)  // type_of_loader
    #expect(try m.read(UInt8.self, at: zp + 0x1EF) == 0)  // sentinel
    let cmdline = UInt64(try m.read(UInt32.self, at: zp + 0x228))
    #expect(try m.read(cmdline, count: 23) == Array("console=ttyS0 panic=-1".utf8) + [0])
    let ramdisk = UInt64(try m.read(UInt32.self, at: zp + 0x218))
    #expect(try m.read(UInt32.self, at: zp + 0x21C) == 10000)
    #expect(ramdisk % 4096 == 0)
    #expect(ramdisk + 10000 <= 64 << 20)
    #expect(ramdisk >= 0x100_0000 + 0x10_0000)  // above the decompression area
    #expect(try m.read(ramdisk, count: 10000) == initrd)
    // E820: 4 entries, the last usable from 1 MiB to the end of RAM.
    #expect(try m.read(UInt8.self, at: zp + 0x1E8) == 4)
    let last = zp + 0x2D0 + 3 * 20
    #expect(try m.read(UInt64.self, at: last) == 0x10_0000)
    #expect(try m.read(UInt64.self, at: last + 8) == (64 << 20) - 0x10_0000)
    #expect(try m.read(UInt32.self, at: last + 16) == 1)
  }

  @Test func initrdRespectsInitrdAddrMax() throws {
    let m = try GuestMemory(ramSize: 256 << 20)
    _ = try ImageLoader.load(
      image: TestImages.bzImage(initrdAddressMax: 0x3FF_FFFF), into: m,
      options: LoadOptions(initrd: [1, 2, 3]))
    let ramdisk = UInt64(try m.read(UInt32.self, at: 0x1218))
    #expect(ramdisk + 3 <= 0x400_0000)
    #expect(ramdisk == 0x3FF_F000)
  }

  @Test func refusesUnsupportedKernels() throws {
    try expectLoaderError(TestImages.bzImage(version: 0x020B), containing: "2.12")
    try expectLoaderError(TestImages.bzImage(xloadflags: 0x2), containing: "XLF_KERNEL_64")
    var zImage = TestImages.bzImage()
    zImage[0x211] = 0
    try expectLoaderError(zImage, containing: "zImage")
    try expectLoaderError(Array(TestImages.bzImage().prefix(1024)), containing: "truncated")
    var sixSectors = TestImages.bzImage()
    sixSectors[0x1F1] = 6
    try expectLoaderError(sixSectors, containing: "truncated")
  }

  @Test func refusesTooSmallRAMTooLongCommandLineAndHugeInitrd() throws {
    try expectLoaderError(TestImages.bzImage(initSize: 0x800_0000), containing: "init_size", ramMiB: 64)
    try expectLoaderError(TestImages.bzImage(), containing: "to decompress", ramMiB: 16)
    try expectLoaderError(
      TestImages.bzImage(cmdlineSize: 10), containing: "command line", ramMiB: 64,
      options: LoadOptions(commandLine: "01234567890"))
    try expectLoaderError(
      TestImages.bzImage(), containing: "initrd", ramMiB: 32,
      options: LoadOptions(initrd: [UInt8](repeating: 0, count: 16 << 20)))
    try expectLoaderError(
      TestImages.bzImage(), containing: "initrd is empty", ramMiB: 64, options: LoadOptions(initrd: []))
  }
}

@Suite struct FlatLoaderTests {
  let code: [UInt8] = [0xEB, 0xFE]

  @Test func realMode() throws {
    let m = try GuestMemory(ramSize: 1 << 20)
    let boot = try ImageLoader.load(
      image: code, into: m, options: LoadOptions(flatAddress: 0x7C00, flatMode: .real))
    #expect(boot.mode == .real)
    #expect(boot.specialRegisters.cs.base == 0 && boot.specialRegisters.cs.selector == 0)
    #expect(boot.registers.rip == 0x7C00)
    #expect(boot.specialRegisters.cr0 & 1 == 0)
    #expect(try m.read(0x7C00, count: 2) == code)
    let high = try ImageLoader.load(
      image: code, into: m, options: LoadOptions(flatAddress: 0x1_2000, flatEntry: 0x1_2345, flatMode: .real))
    #expect(high.specialRegisters.cs.selector == 0x1000 && high.specialRegisters.cs.base == 0x1_0000)
    #expect(high.registers.rip == 0x2345)
  }

  @Test func protectedAndLongMode() throws {
    let m = try GuestMemory(ramSize: 4 << 20)
    let p = try ImageLoader.load(
      image: code, into: m, options: LoadOptions(flatAddress: 0x10_0000, flatMode: .protected32))
    #expect(p.mode == .protected32 && p.registers.rip == 0x10_0000 && p.specialRegisters.cs.db)
    let l = try ImageLoader.load(
      image: code, into: m, options: LoadOptions(flatAddress: 0x10_0000, flatEntry: 0x10_0001))
    #expect(l.mode == .long64 && l.registers.rip == 0x10_0001 && l.specialRegisters.cs.l)
  }

  @Test func refusesBadPlacements() throws {
    try expectLoaderError(code, containing: "outside guest RAM", options: LoadOptions(flatAddress: 0x1000_0000))
    try expectLoaderError(code, containing: "overlaps the boot page tables", options: LoadOptions(flatAddress: 0x9000))
    try expectLoaderError([], containing: "empty", options: LoadOptions(flatAddress: 0x10_0000))
    try expectLoaderError(
      code, containing: "below 1 MiB", options: LoadOptions(flatAddress: 0x10_0000, flatMode: .real))
    try expectLoaderError(
      code, containing: "wraps", options: LoadOptions(flatAddress: UInt64.max))
  }
}

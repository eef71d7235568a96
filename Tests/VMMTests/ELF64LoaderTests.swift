import Testing

@testable import VMM

@Suite struct ELF64LoaderTests {
  let code: [UInt8] = [0x48, 0xC7, 0xC0, 0x2A, 0x00, 0x00, 0x00, 0xF4]  // mov rax, 42; hlt

  func memory(_ mib: UInt64 = 16) throws -> GuestMemory {
    let m = try GuestMemory(ramSize: mib << 20)
    try m.fill(0, length: mib << 20, byte: 0xFF)  // so BSS zeroing is visible
    return m
  }

  func expectError(
    _ image: [UInt8], containing text: String, memory: GuestMemory? = nil, options: LoadOptions = LoadOptions(),
    sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let m = try memory ?? self.memory()
    do {
      _ = try ImageLoader.load(image: image, into: m, options: options)
      Issue.record("image loaded; expected an error containing \"\(text)\"", sourceLocation: sourceLocation)
    } catch {
      #expect(error.message.contains(text), "\(error.message)", sourceLocation: sourceLocation)
      #expect(!error.message.contains("\n"), sourceLocation: sourceLocation)
    }
  }

  @Test func loadsSegmentsZeroesBSSAndEntersLongMode() throws {
    let m = try memory()
    let data: [UInt8] = [1, 2, 3, 4]
    let image = TestImages.elf(
      entry: 0x10_0000,
      segments: [
        .init(at: 0x10_0000, data: code),
        .init(at: 0x20_0000, data: data, memorySize: 0x3000),
      ])
    #expect(ImageLoader.detectFormat(image) == "ELF64")
    let boot = try ImageLoader.load(image: image, into: m, options: LoadOptions())
    #expect(try m.read(0x10_0000, count: code.count) == code)
    #expect(try m.read(0x20_0000, count: 4) == data)
    #expect(try m.read(0x20_0004, count: 0x2FFC).allSatisfy { $0 == 0 })
    #expect(try m.read(UInt8.self, at: 0x20_3000) == 0xFF)  // past memsz: untouched
    #expect(boot.mode == .long64)
    #expect(boot.registers.rip == 0x10_0000)
    #expect(boot.registers.rsp == 0x80000)
    #expect(boot.registers.rflags == 0x2)
    #expect(boot.registers.rdi == 0)
    #expect(boot.registers.rsi == 0)
    let s = boot.specialRegisters
    #expect(s.cr0 == 0x8000_0031 && s.cr4 == 0x20 && s.efer == 0x500 && s.cr3 == 0x9000)
    #expect(s.cs.selector == 0x10 && s.cs.l && !s.cs.db && s.cs.type == 11)
    #expect(s.ss.selector == 0x18 && s.ds.selector == 0x18)
    #expect(s.gdt.base == 0x500 && s.gdt.limit == 31)
    #expect(!boot.summary.isEmpty)
  }

  @Test func buildsIdentityPageTablesAndGDT() throws {
    let m = try memory()
    _ = try ImageLoader.load(
      image: TestImages.elf(entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)]), into: m,
      options: LoadOptions())
    #expect(try m.read(UInt64.self, at: 0x9000) == 0xA003)
    #expect(try m.read(UInt64.self, at: 0x9008) == 0)
    for g: UInt64 in 0..<4 {
      #expect(try m.read(UInt64.self, at: 0xA000 + g * 8) == (0xB000 + g * 0x1000) | 3)
    }
    #expect(try m.read(UInt64.self, at: 0xA020) == 0)  // 16 MiB guest: 4 GiB mapped
    // 3 GiB + 2 MiB lives in directory 3, entry 1.
    #expect(try m.read(UInt64.self, at: 0xE008) == 0xC020_0083)
    #expect(try m.read(UInt64.self, at: 0x508) == 0x00CF_9B00_0000_FFFF)
    #expect(try m.read(UInt64.self, at: 0x510) == 0x00AF_9B00_0000_FFFF)
    #expect(try m.read(UInt64.self, at: 0x518) == 0x00CF_9300_0000_FFFF)
  }

  @Test func mapsAllRAMAbove4GiB() throws {
    let m = try GuestMemory(ramSize: 6 << 30)  // 3 GiB low, 3 GiB at 4-7 GiB
    #expect(LongModeSetup.mappedGiB(for: m) == 7)
    _ = try LongModeSetup.prepare(m)
    #expect(try m.read(UInt64.self, at: 0xA000 + 6 * 8) == 0x11000 | 3)
    #expect(try m.read(UInt64.self, at: 0x11000 + 511 * 8) == (7 << 30) - (2 << 20) | 0x83)
  }

  @Test func acceptsETDynAndTranslatesVirtualEntry() throws {
    let m = try memory()
    let image = TestImages.elf(
      type: 3, entry: 0xFFFF_FFFF_8000_0004,
      segments: [.init(at: 0x30_0000, data: code, virtualAddress: 0xFFFF_FFFF_8000_0000)])
    let boot = try ImageLoader.load(image: image, into: m, options: LoadOptions())
    #expect(boot.registers.rip == 0x30_0004)
  }

  @Test func passesTheCommandLineInRDIAndRSI() throws {
    let m = try memory()
    let boot = try ImageLoader.load(
      image: TestImages.elf(entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)]), into: m,
      options: LoadOptions(commandLine: "console=ttyS0"))
    #expect(boot.registers.rdi == 0x4000)
    #expect(boot.registers.rsi == 0x4000)
    #expect(try m.read(0x4000, count: 14) == Array("console=ttyS0".utf8) + [0])
  }

  @Test func refusesEmptyTruncatedAndForeignImages() throws {
    try expectError([], containing: "empty")
    try expectError([0x7F, 0x45, 0x4C, 0x46, 2, 1], containing: "truncated")
    try expectError(Array(repeating: 0x41, count: 100), containing: "unrecognized")
    var image = TestImages.elf(entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)])
    image[5] = 2
    try expectError(image, containing: "little endian")
    let i386 = TestImages.elf(machine: 3, entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)])
    try expectError(i386, containing: "EM_386")
    let arm = TestImages.elf(machine: 183, entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)])
    try expectError(arm, containing: "AArch64")
    let relocatable = TestImages.elf(type: 1, entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)])
    try expectError(relocatable, containing: "not an executable")
    let truncated = Array(TestImages.elf(entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)]).dropLast(4))
    try expectError(truncated, containing: "outside the")
  }

  @Test func refusesBadProgramHeaders() throws {
    var image = TestImages.elf(entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)])
    TestImages.put(&image, 32, UInt64(0xFFFF_FFFF_FFFF_FFF0))  // e_phoff
    try expectError(image, containing: "program header table")
    image = TestImages.elf(entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)])
    TestImages.put(&image, 54, UInt16(40))  // e_phentsize
    try expectError(image, containing: "program header size")
    image = TestImages.elf(entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)])
    TestImages.put(&image, 64 + 8, UInt64(1 << 40))  // p_offset
    try expectError(image, containing: "outside the")
    image = TestImages.elf(entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)])
    TestImages.put(&image, 64 + 40, UInt64(2))  // p_memsz < p_filesz
    try expectError(image, containing: "larger than p_memsz")
    var noLoad = TestImages.Segment(at: 0x10_0000, data: code)
    noLoad.type = 4
    try expectError(TestImages.elf(entry: 0x10_0000, segments: [noLoad]), containing: "no loadable")
    image = TestImages.elf(entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code)])
    TestImages.put(&image, 56, UInt16(0))
    try expectError(image, containing: "no program headers")
  }

  @Test func refusesBadPlacement() throws {
    try expectError(
      TestImages.elf(
        entry: 0x10_0000, segments: [.init(at: 0x10_0000, data: code), .init(at: 0x10_0004, data: code)]),
      containing: "overlaps ELF64 image segment 0")
    try expectError(
      TestImages.elf(entry: 0x2000_0000, segments: [.init(at: 0x2000_0000, data: code)]),
      containing: "outside guest RAM")
    try expectError(
      TestImages.elf(entry: 0xFF_FFF0, segments: [.init(at: 0xFF_FFF0, data: code, memorySize: 0x100)]),
      containing: "outside guest RAM")
    try expectError(
      TestImages.elf(entry: 0x9000, segments: [.init(at: 0x9000, data: code)]),
      containing: "overlaps the boot page tables")
    try expectError(
      TestImages.elf(entry: 0x500, segments: [.init(at: 0x4F0, data: code, memorySize: 0x20)]),
      containing: "overlaps the boot GDT")
    try expectError(
      TestImages.elf(entry: 0x7F000, segments: [.init(at: 0x7F000, data: code)]),
      containing: "overlaps the boot stack")
    try expectError(
      TestImages.elf(
        entry: 0x10,
        segments: [.init(at: 0xFFFF_FFFF_FFFF_F000, data: code, memorySize: 0x2000)]),
      containing: "overflows")
    try expectError(
      TestImages.elf(entry: 0x20_0000, segments: [.init(at: 0x10_0000, data: code)]),
      containing: "not inside any loaded segment")
  }

  @Test func commandLineAreaIsReservedOnlyWhenUsed() throws {
    let low = TestImages.elf(entry: 0x4000, segments: [.init(at: 0x4000, data: code)])
    _ = try ImageLoader.load(image: low, into: try memory(), options: LoadOptions())
    try expectError(low, containing: "overlaps the command line", options: LoadOptions(commandLine: "x"))
  }

  @Test func a64BitELFWithAMultibootHeaderStillBootsInLongMode() throws {
    let data = TestImages.multibootHeader() + code
    let image = TestImages.elf(entry: 0x10_000C, segments: [.init(at: 0x10_0000, data: data)])
    let boot = try ImageLoader.load(image: image, into: try memory(), options: LoadOptions())
    #expect(boot.mode == .long64 && boot.registers.rip == 0x10_000C)
  }

  @Test func tinyRAMFailsCleanly() throws {
    let m = try GuestMemory(ramSize: 32 << 10)
    do {
      _ = try ImageLoader.load(image: code, into: m, options: LoadOptions(flatAddress: 0x1000))
      Issue.record("loaded into 32 KiB")
    } catch {
      #expect(error.message.contains("page tables"))
    }
  }

  @Test func bssOnlySegmentMayPointPastTheFile() throws {
    let m = try memory()
    var image = TestImages.elf(
      entry: 0x10_0000,
      segments: [.init(at: 0x10_0000, data: code), .init(at: 0x20_0000, data: [], memorySize: 0x1000)])
    TestImages.put(&image, 64 + 56 + 8, UInt64(1 << 30))  // second segment's p_offset
    _ = try ImageLoader.load(image: image, into: m, options: LoadOptions())
    #expect(try m.read(0x20_0000, count: 0x1000).allSatisfy { $0 == 0 })
  }
}

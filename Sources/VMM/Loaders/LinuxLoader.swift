/// Loads a Linux bzImage through the 64-bit boot protocol (Documentation/arch/x86/boot.rst).
///
/// Requirements checked: the boot sector signature 0xAA55, the "HdrS" setup header of protocol
/// 2.12 or later, `XLF_KERNEL_64` in `xloadflags`, `LOADED_HIGH` in `loadflags`, and a
/// protected-mode kernel that fits in RAM together with the `init_size` the kernel needs at
/// `pref_address` to decompress itself.
///
/// Layout: the protected-mode kernel (everything after the `setup_sects` real-mode sectors) at
/// 1 MiB; the zero page (`boot_params`) at 0x1000 holding a copy of the setup header, the E820 map,
/// `type_of_loader` 0xFF, `cmd_line_ptr` (the command line at 0x4000, at most `cmdline_size`
/// bytes), the initrd's `ramdisk_image`/`ramdisk_size` and, when the machine writes the platform
/// tables (`LoadOptions.platformTables`), `acpi_rsdp_addr`. The initrd goes as high as possible
/// below min(end of RAM under 4 GiB, `initrd_addr_max` + 1), 4 KiB aligned, above everything else.
///
/// Entry: long mode as `LongModeSetup` builds it (identity map of at least 4 GiB, which covers the
/// kernel, zero page, command line and initrd), CS = 0x10, DS/ES/SS = 0x18 as the protocol wants,
/// RIP = 1 MiB + 0x200 (`startup_64`), RSI = the zero page, interrupts off.
enum LinuxLoader {
  static let loadAddress: UInt64 = 0x10_0000
  static let zeroPage: UInt64 = BootLayout.zeroPage.lowerBound
  static let minimumProtocol: UInt16 = 0x020C

  /// True if `bytes` look like a bzImage (boot signature and "HdrS").
  static func isBzImage(_ bytes: [UInt8]) -> Bool {
    let image = ImageBytes(bytes, name: "bzImage")
    return (try? image.u16(0x1FE, "")) == 0xAA55 && (try? image.u32(0x202, "")) == 0x5372_6448
  }

  static func load(_ bytes: [UInt8], into memory: GuestMemory, options: LoadOptions) throws(LoaderError)
    -> BootState
  {
    let image = ImageBytes(bytes, name: "bzImage")
    guard try image.u16(0x1FE, "the boot signature") == 0xAA55 else {
      throw LoaderError("bzImage has no boot sector signature 0xAA55")
    }
    guard try image.u32(0x202, "the setup header magic") == 0x5372_6448 else {
      throw LoaderError("bzImage has no \"HdrS\" setup header")
    }
    let version = try image.u16(0x206, "the boot protocol version")
    guard version >= minimumProtocol else {
      throw LoaderError(
        "bzImage uses boot protocol \(version >> 8).\(version & 0xFF); the 64-bit entry needs 2.12 or later")
    }
    let loadflags = try image.u8(0x211, "loadflags")
    guard loadflags & 0x01 != 0 else { throw LoaderError("bzImage is not loaded high (a zImage); not supported") }
    let xloadflags = try image.u16(0x236, "xloadflags")
    guard xloadflags & 0x01 != 0 else { throw LoaderError("bzImage has no 64-bit entry point (XLF_KERNEL_64 clear)") }
    var setupSectors = UInt64(try image.u8(0x1F1, "setup_sects"))
    if setupSectors == 0 { setupSectors = 4 }
    let setupSize = (setupSectors + 1) * 512
    guard image.count > setupSize else {
      throw LoaderError("bzImage is truncated: \(image.count) bytes, the setup code alone is \(setupSize)")
    }
    let kernelSize = image.count - setupSize
    let initSize = UInt64(try image.u32(0x260, "init_size"))
    let prefAddress = try image.u64(0x258, "pref_address")
    let cmdlineSize = UInt64(try image.u32(0x238, "cmdline_size"))
    let initrdAddressMax = UInt64(try image.u32(0x22C, "initrd_addr_max"))

    var plan = LoadPlan(
      memory: memory,
      reserved: LongModeSetup.reservedRanges(for: memory) + [
        (BootLayout.zeroPage, "the zero page"), (BootLayout.commandLine, "the command line"),
      ] + options.platformReservations)
    try plan.claim(loadAddress, length: max(kernelSize, initSize), "the kernel (kernel image and init_size)")
    // The kernel decompresses itself to pref_address (for a relocatable kernel below it, to
    // pref_address as well); keep the initrd out of that area.
    if prefAddress > loadAddress {
      let decompressEnd = try checkedAdd(prefAddress, initSize, "pref_address + init_size")
      let lowEnd = E820Map.lowRAMEnd(for: memory)
      guard decompressEnd <= lowEnd else {
        throw LoaderError(
          "kernel needs RAM up to 0x\(hex(decompressEnd)) to decompress (pref_address + init_size); guest RAM below 4 GiB ends at 0x\(hex(lowEnd))"
        )
      }
      let start = max(prefAddress, plan.highestEnd)
      if decompressEnd > start {
        try plan.claim(start, length: decompressEnd - start, "the kernel's decompression area")
      }
    }
    var summary = [
      "bzImage protocol \(version >> 8).\(version & 0xFF): kernel \(kernelSize) bytes at 0x\(hex(loadAddress)), init_size 0x\(hex(initSize))"
    ]

    // Zero page.
    var zero = [UInt8](repeating: 0, count: 4096)
    let headerEnd = min(0x202 + UInt64(try image.u8(0x201, "the setup header length")), 0x290, setupSize)
    for i in 0x1F1..<Int(headerEnd) { zero[i] = image.bytes[i] }
    func put<T: FixedWidthInteger>(_ offset: Int, _ value: T) {
      withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { zero[offset + i] = b } }
    }
    put(0x1FA, UInt16(0xFFFF))  // vid_mode: normal
    put(0x210, UInt8(0xFF))  // type_of_loader: undefined boot loader
    put(0x211, loadflags & ~0x20)  // clear QUIET_FLAG
    put(0x214, UInt32(loadAddress))  // code32_start

    let limit = cmdlineSize > 0 ? cmdlineSize : 255
    let cmdline = try KernelCommandLine.write(options.commandLine, into: memory, limit: limit)
    put(0x228, UInt32(cmdline))

    if let initrd = options.initrd {
      let (address, size) = try placeInitrd(initrd, memory: memory, plan: &plan, addressMax: initrdAddressMax)
      put(0x218, UInt32(address))
      put(0x21C, UInt32(size))
      summary.append("initrd \(size) bytes at 0x\(hex(address))")
    }

    // boot_params.acpi_rsdp_addr: the kernel takes the RSDP from here before any legacy scan.
    if options.platformTables { put(0x070, PlatformTables.rsdpAddress) }
    let e820 = options.memoryMap(for: memory).prefix(128)
    put(0x1E8, UInt8(e820.count))
    for (i, e) in e820.enumerated() {
      put(0x2D0 + i * 20, e.address)
      put(0x2D0 + i * 20 + 8, e.length)
      put(0x2D0 + i * 20 + 16, e.kind.rawValue)
    }

    try guestWrite(memory, loadAddress, try image.slice(setupSize, length: kernelSize, "the kernel"), "the kernel")
    try guestWrite(memory, zeroPage, zero, "the zero page")
    let sregs = try LongModeSetup.prepare(memory)
    var registers = Registers()
    registers.rip = loadAddress + 0x200
    registers.rsi = zeroPage
    registers.rsp = BootLayout.stackTop
    registers.rflags = 0x2
    summary.append("64-bit entry at 0x\(hex(registers.rip)), zero page at 0x\(hex(zeroPage))")
    return BootState(mode: .long64, registers: registers, specialRegisters: sregs, summary: summary)
  }

  private static func placeInitrd(
    _ initrd: [UInt8], memory: GuestMemory, plan: inout LoadPlan, addressMax: UInt64
  ) throws(LoaderError) -> (UInt64, UInt64) {
    guard !initrd.isEmpty else { throw LoaderError("initrd is empty") }
    let size = UInt64(initrd.count)
    let ceiling = min(E820Map.lowRAMEnd(for: memory), addressMax == 0 ? 0x3800_0000 : addressMax + 1)
    let floor = plan.highestEnd
    guard size <= UInt32.max, ceiling > floor, size <= ceiling - floor else {
      throw LoaderError(
        "initrd (\(size >> 10) KiB) is too large: \((ceiling > floor ? ceiling - floor : 0) >> 10) KiB free between 0x\(hex(floor)) and 0x\(hex(ceiling))"
      )
    }
    let address = (ceiling - size) & ~UInt64(0xFFF)
    guard address >= floor else {
      throw LoaderError("initrd (\(size >> 10) KiB) does not fit below 0x\(hex(ceiling)) once aligned")
    }
    try plan.claim(address, length: size, "the initrd")
    try guestWrite(memory, address, initrd, "the initrd")
    return (address, size)
  }
}

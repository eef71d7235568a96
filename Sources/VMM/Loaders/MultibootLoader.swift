/// Loads a Multiboot (version 1) kernel: a 32-bit ELF, or any image using the header's address
/// fields (the "a.out kludge", header flag bit 16), and starts it the way the Multiboot
/// specification prescribes.
///
/// Header: magic 0x1BADB002 at a 4-byte aligned offset within the first 8 KiB, followed by flags
/// and a checksum making the three sum to zero. Required-feature flags understood: bit 0 (page
/// align modules), bit 1 (memory information, always provided), bit 2 (video mode: accepted, but
/// no video information is provided; the console is text mode). Other bits in 0-15 are refused.
///
/// Entry state: 32-bit protected mode, paging off, CS = 0x08 flat code, DS/ES/FS/GS/SS = 0x18 flat
/// data, EAX = 0x2BADB002, EBX = the information structure (at 0x2000), ESP = 0x80000 (the
/// specification leaves ESP undefined), EFLAGS = 0x2.
///
/// Information structure: `mem_lower`/`mem_upper`, the E820 memory map (`mmap_*`), the command
/// line (always, possibly empty), the boot loader name "trivisor", and the initrd as the only
/// module (page aligned, after the kernel, named "initrd").
enum MultibootLoader {
  static let headerMagic: UInt32 = 0x1BAD_B002
  static let bootloaderMagic: UInt32 = 0x2BAD_B002
  static let searchLimit = 8192
  static let infoAddress: UInt64 = BootLayout.multibootInfo.lowerBound
  static let mmapAddress: UInt64 = infoAddress + 0x100
  static let modulesAddress: UInt64 = infoAddress + 0x800
  static let moduleNameAddress: UInt64 = infoAddress + 0x900
  static let loaderNameAddress: UInt64 = infoAddress + 0xA00
  static let loaderName = "trivisor"

  struct Header {
    var offset: UInt64
    var flags: UInt32
    var headerAddress: UInt32 = 0
    var loadAddress: UInt32 = 0
    var loadEndAddress: UInt32 = 0
    var bssEndAddress: UInt32 = 0
    var entryAddress: UInt32 = 0
    var usesAddressFields: Bool { flags & 0x1_0000 != 0 }
  }

  /// The Multiboot header, if the image has a valid one.
  static func findHeader(_ image: ImageBytes) throws(LoaderError) -> Header? {
    let limit = min(image.bytes.count, searchLimit)
    var offset = 0
    while offset + 12 <= limit {
      let at = UInt64(offset)
      if try image.u32(at, "Multiboot magic") == headerMagic {
        let flags = try image.u32(at + 4, "Multiboot flags")
        let checksum = try image.u32(at + 8, "Multiboot checksum")
        if headerMagic &+ flags &+ checksum == 0 {
          var h = Header(offset: at, flags: flags)
          if h.usesAddressFields {
            h.headerAddress = try image.u32(at + 12, "Multiboot header_addr")
            h.loadAddress = try image.u32(at + 16, "Multiboot load_addr")
            h.loadEndAddress = try image.u32(at + 20, "Multiboot load_end_addr")
            h.bssEndAddress = try image.u32(at + 24, "Multiboot bss_end_addr")
            h.entryAddress = try image.u32(at + 28, "Multiboot entry_addr")
          }
          return h
        }
      }
      offset += 4
    }
    return nil
  }

  static func hasHeader(_ bytes: [UInt8]) -> Bool {
    (try? findHeader(ImageBytes(bytes, name: "image"))) != nil
  }

  static func load(_ bytes: [UInt8], into memory: GuestMemory, options: LoadOptions) throws(LoaderError)
    -> BootState
  {
    let image = ImageBytes(bytes, name: "Multiboot image")
    guard let header = try findHeader(image) else {
      throw LoaderError("no valid Multiboot header (magic 0x1BADB002 with checksum) in the first 8 KiB")
    }
    let unsupported = header.flags & 0xFFF8
    guard unsupported == 0 else {
      throw LoaderError("Multiboot header requires unsupported features (flags 0x\(hex(UInt64(unsupported))))")
    }
    var plan = LoadPlan(
      memory: memory,
      reserved: ProtectedModeSetup.reservedRanges + [
        (BootLayout.multibootInfo, "the Multiboot information"),
        (BootLayout.commandLine, "the command line"),
      ] + options.platformReservations)
    var summary: [String] = []
    let entry: UInt64
    if header.usesAddressFields {
      entry = try loadAddressFields(header, image, &plan, &summary)
    } else {
      guard ELFFile.hasMagic(bytes) else {
        throw LoaderError("Multiboot image is not ELF and its header has no address fields (flag bit 16)")
      }
      let elf = try ELFFile(image)
      guard elf.elfClass == .elf32 else {
        throw LoaderError("Multiboot ELF image is 64-bit; Multiboot v1 expects a 32-bit ELF")
      }
      guard elf.machine == ELFFile.em386 else {
        throw LoaderError("Multiboot ELF image is for \(ELFFile.machineName(elf.machine)), expected i386 (EM_386)")
      }
      summary.append(try elf.load(image, into: &plan, name: "Multiboot ELF image"))
      entry = elf.physicalEntry
      try elf.requireEntryInSegment(entry, name: "Multiboot ELF")
    }
    let kernelEnd = plan.highestEnd
    let sregs = try ProtectedModeSetup.prepare(memory)
    try writeInformation(
      memory: memory, options: options, plan: &plan, kernelEnd: kernelEnd, summary: &summary)
    var registers = Registers()
    registers.rax = UInt64(bootloaderMagic)
    registers.rbx = infoAddress
    registers.rip = entry
    registers.rsp = BootLayout.stackTop
    registers.rflags = 0x2
    summary.append("protected mode, EAX=0x2BADB002, EBX=0x\(hex(infoAddress)) (Multiboot information)")
    return BootState(mode: .protected32, registers: registers, specialRegisters: sregs, summary: summary)
  }

  /// The a.out kludge: load `[load_addr, load_end_addr)` from the file position matching
  /// `header_addr`, zero up to `bss_end_addr`, enter at `entry_addr`.
  private static func loadAddressFields(
    _ h: Header, _ image: ImageBytes, _ plan: inout LoadPlan, _ summary: inout [String]
  ) throws(LoaderError) -> UInt64 {
    let headerAddress = UInt64(h.headerAddress)
    let loadAddress = UInt64(h.loadAddress)
    guard loadAddress <= headerAddress, headerAddress - loadAddress <= h.offset else {
      throw LoaderError(
        "Multiboot load_addr 0x\(hex(loadAddress)) does not match header_addr 0x\(hex(headerAddress)) at file offset 0x\(hex(h.offset))"
      )
    }
    let fileOffset = h.offset - (headerAddress - loadAddress)
    let loadEnd: UInt64 = h.loadEndAddress == 0 ? loadAddress + (image.count - fileOffset) : UInt64(h.loadEndAddress)
    guard loadEnd > loadAddress else {
      throw LoaderError("Multiboot load_end_addr 0x\(hex(loadEnd)) is not above load_addr 0x\(hex(loadAddress))")
    }
    let loadSize = loadEnd - loadAddress
    guard image.contains(fileOffset, length: loadSize) else {
      throw LoaderError(
        "Multiboot image is truncated: load_end_addr needs 0x\(hex(loadSize)) bytes from offset 0x\(hex(fileOffset)), the file has \(image.count)"
      )
    }
    let bssEnd = h.bssEndAddress == 0 ? loadEnd : UInt64(h.bssEndAddress)
    guard bssEnd >= loadEnd else {
      throw LoaderError("Multiboot bss_end_addr 0x\(hex(bssEnd)) is below load_end_addr 0x\(hex(loadEnd))")
    }
    try plan.claim(loadAddress, length: bssEnd - loadAddress, "Multiboot kernel")
    let entry = UInt64(h.entryAddress)
    guard entry >= loadAddress && entry < bssEnd else {
      throw LoaderError(
        "Multiboot entry_addr 0x\(hex(entry)) is outside the loaded image 0x\(hex(loadAddress))-0x\(hex(bssEnd - 1))")
    }
    try guestWrite(plan.memory, loadAddress, try image.slice(fileOffset, length: loadSize, "kernel"), "the kernel")
    try guestZero(plan.memory, loadEnd, bssEnd - loadEnd, "the kernel's BSS")
    summary.append(
      "Multiboot kernel (address fields): 0x\(hex(loadAddress))-0x\(hex(bssEnd - 1)), entry 0x\(hex(entry))")
    return entry
  }

  private static func writeInformation(
    memory: GuestMemory, options: LoadOptions, plan: inout LoadPlan, kernelEnd: UInt64, summary: inout [String]
  ) throws(LoaderError) {
    var info = [UInt8](repeating: 0, count: 88)
    func put(_ offset: Int, _ value: UInt32) {
      withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { info[offset + i] = b } }
    }
    var flags: UInt32 = 0x1 | 0x4 | 0x40 | 0x200  // mem, cmdline, mmap, boot loader name
    put(4, 640)
    put(8, UInt32(clamping: E820Map.upperMemoryKiB(for: memory)))

    let cmdline = try KernelCommandLine.write(options.multibootCommandLine, into: memory, limit: nil)
    put(16, UInt32(cmdline))

    if let initrd = options.initrd {
      guard !initrd.isEmpty else { throw LoaderError("initrd is empty") }
      guard let start = alignUp(kernelEnd, 4096) else { throw LoaderError("no room for the initrd") }
      let size = UInt64(initrd.count)
      let lowEnd = E820Map.lowRAMEnd(for: memory)
      guard start < lowEnd, size <= lowEnd - start else {
        throw LoaderError(
          "initrd (\(size) bytes) does not fit between the kernel end 0x\(hex(start)) and the end of low RAM 0x\(hex(lowEnd))"
        )
      }
      try plan.claim(start, length: size, "the initrd")
      try guestWrite(memory, start, initrd, "the initrd")
      try guestWrite(memory, moduleNameAddress, Array("initrd".utf8) + [0], "the module name")
      var module = [UInt8]()
      for v in [UInt32(start), UInt32(start + size), UInt32(moduleNameAddress), 0] {
        module += withUnsafeBytes(of: v.littleEndian, Array.init)
      }
      try guestWrite(memory, modulesAddress, module, "the Multiboot module list")
      flags |= 0x8
      put(20, 1)
      put(24, UInt32(modulesAddress))
      summary.append("initrd module at 0x\(hex(start))-0x\(hex(start + size - 1))")
    }

    var mmap = [UInt8]()
    for e in options.memoryMap(for: memory) {
      mmap += withUnsafeBytes(of: UInt32(20).littleEndian, Array.init)
      mmap += withUnsafeBytes(of: e.address.littleEndian, Array.init)
      mmap += withUnsafeBytes(of: e.length.littleEndian, Array.init)
      mmap += withUnsafeBytes(of: e.kind.rawValue.littleEndian, Array.init)
    }
    try guestWrite(memory, mmapAddress, mmap, "the Multiboot memory map")
    put(44, UInt32(mmap.count))
    put(48, UInt32(mmapAddress))

    try guestWrite(memory, loaderNameAddress, Array(loaderName.utf8) + [0], "the boot loader name")
    put(64, UInt32(loaderNameAddress))
    put(0, flags)
    try guestWrite(memory, infoAddress, info, "the Multiboot information")
  }
}

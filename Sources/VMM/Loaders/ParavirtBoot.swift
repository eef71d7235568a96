/// The PV boot (`trivisor run --pv`): builds a deprivileged domain the way Xen's domain builder
/// does for an x86-64 PV kernel.
///
/// Guest-physical layout: the ELF's `PT_LOAD` segments at their physical addresses; after the
/// image, page-aligned, the phys-to-machine list (`mfn_list`, identity: pfn == mfn), the
/// `start_info` page, the initial page tables, one stack page. Everything from physical 0 up to at
/// least 512 KiB past the stack, rounded to 4 MiB (within RAM), is mapped at `virtual base +
/// physical`, where the virtual base is each segment's virtual minus physical address (one value
/// for all segments). Mappings are user pages (the kernel runs at ring 3), the page-table frames
/// read-only. At the top of low RAM: the shared info page, then the monitor's reserved pages;
/// `nr_pages` stops below them.
///
/// Entry: 64-bit ring 3 (CS 0xE033, SS/DS/ES/FS/GS 0xE02B) at the ELF entry, RSI = `start_info`'s
/// virtual address, RSP = the top of the stack page, RFLAGS 0x2, events masked; the machine then
/// calls `ParavirtDomain.startDeprivileged(boot:)` to install the monitor.
public enum ParavirtBoot {
  /// `start_info.magic`.
  static let magic = "xen-3.0-x86_64"
  /// The longest command line `start_info.cmd_line` holds (1024 bytes with its NUL).
  public static let commandLineLimit = 1023

  /// The shared info page's address for a monitor at `layout` (the page below it).
  static func sharedInfoAddress(_ layout: ParavirtMonitor.Layout) -> UInt64 { layout.base - 0x1000 }

  /// Loads the PV kernel `image` into `memory` for `cpus` vCPUs with `commandLine`; the boot
  /// state of vCPU 0. The `Xen` ELF notes XEN_ELFNOTE_ENTRY (the entry instead of `e_entry`) and
  /// XEN_ELFNOTE_HYPERCALL_PAGE (a page of the image, returned as `BootState.hypercallPage` for
  /// `ParavirtDomain.startDeprivileged` to fill with the engine's stubs) are honoured. Errors are
  /// one line.
  public static func load(
    image bytes: [UInt8], into memory: GuestMemory, commandLine: String, cpus: Int = 1
  ) throws(LoaderError) -> BootState {
    let file = ImageBytes(bytes, name: "PV kernel")
    let elf = try ELFFile(file)
    guard elf.elfClass == .elf64, elf.machine == ELFFile.emX86_64 else {
      throw LoaderError("a PV kernel must be a 64-bit x86-64 ELF image")
    }
    guard elf.type == ELFFile.etExec else { throw LoaderError("a PV kernel must be an executable ELF (ET_EXEC)") }
    let segments = elf.loadSegments.filter { $0.memorySize > 0 }
    guard let first = segments.first else { throw LoaderError("the PV kernel has no loadable segment") }
    let virtualBase = first.virtualAddress &- first.physicalAddress
    guard virtualBase & 0xFFF == 0,
      segments.allSatisfy({ $0.virtualAddress &- $0.physicalAddress == virtualBase })
    else {
      throw LoaderError("the PV kernel's segments must all lie at one page-aligned virtual-minus-physical offset")
    }
    guard let layout = ParavirtMonitor.Layout(memory: memory, cpus: cpus) else {
      throw LoaderError("not enough RAM for a PV domain of \(cpus) vCPUs (or too many vCPUs)")
    }
    let limit = sharedInfoAddress(layout)
    let commandLineBytes = Array(commandLine.utf8)
    guard commandLineBytes.count <= commandLineLimit else {
      throw LoaderError("the command line is longer than \(commandLineLimit) bytes")
    }
    var imageEnd: UInt64 = 0
    for s in segments {
      let end = s.physicalAddress.addingReportingOverflow(s.memorySize)
      guard !end.overflow, end.partialValue <= limit else {
        throw LoaderError(
          "segment at physical 0x\(String(s.physicalAddress, radix: 16)) does not fit in the RAM below 0x\(String(limit, radix: 16))"
        )
      }
      imageEnd = max(imageEnd, end.partialValue)
    }
    let notes = try xenNotes(file)
    let entry = notes[1] ?? elf.entry
    let inImage = { (v: UInt64) in segments.contains { v >= $0.virtualAddress && v < $0.virtualAddress + $0.memorySize }
    }
    guard inImage(entry) else { throw LoaderError("the entry point 0x\(String(entry, radix: 16)) is in no segment") }
    if let page = notes[2], page & 0xFFF != 0 || !inImage(page) {
      throw LoaderError("the hypercall page 0x\(String(page, radix: 16)) is not a page of the image")
    }
    // The bootstrap area after the image.
    let pages = limit >> 12
    let p2m = (imageEnd + 0xFFF) & ~0xFFF
    let startInfo = p2m + ((pages * 8 + 0xFFF) & ~0xFFF)
    let tables = startInfo + 0x1000
    var tableCount = 4
    var mapEnd: UInt64 = 0
    var stack: UInt64 = 0
    for _ in 0..<8 {
      stack = tables + UInt64(tableCount) * 0x1000
      mapEnd = min((stack + 0x1000 + (512 << 10) + (4 << 20) - 1) & ~((4 << 20) - 1), limit)
      let needed = tablesNeeded(virtualBase, virtualBase + mapEnd)
      if needed <= tableCount { break }
      tableCount = needed
    }
    guard stack + 0x1000 <= limit else { throw LoaderError("the PV kernel is too large for the RAM given") }
    let canonical = { (v: UInt64) in Int64(bitPattern: v << 16) >> 16 == Int64(bitPattern: v) }
    let lastLinear = virtualBase &+ mapEnd &- 1
    guard canonical(virtualBase), canonical(lastLinear), lastLinear > virtualBase,
      !((virtualBase >> 39) & 0x1FF...(lastLinear >> 39) & 0x1FF).contains(UInt64(ParavirtMonitor.Layout.rootSlot))
    else {
      throw LoaderError(
        "the PV kernel's virtual range must be canonical and outside the monitor's slot (0xffff8000...)")
    }
    var used = 1
    do {
      for s in segments {
        let file = Array(bytes[Int(s.offset)..<Int(s.offset + s.fileSize)])
        try memory.write(s.physicalAddress, bytes: file + [UInt8](repeating: 0, count: Int(s.memorySize - s.fileSize)))
      }
      var list = [UInt8](repeating: 0, count: Int(pages) * 8)
      for pfn in 0..<Int(pages) {
        for k in 0..<8 { list[pfn * 8 + k] = UInt8(truncatingIfNeeded: pfn >> (8 * k)) }
      }
      try memory.write(p2m, bytes: list)
      try memory.write(tables, bytes: [UInt8](repeating: 0, count: tableCount * 0x1000))
      try memory.write(stack, bytes: [UInt8](repeating: 0, count: 0x1000))
      var next = tables + 0x1000  // the root table is the first
      let tableRange = tables..<tables + UInt64(tableCount) * 0x1000
      for physical in stride(from: UInt64(0), to: mapEnd, by: 0x1000) {
        let linear = virtualBase &+ physical
        var table = tables
        for shift in [39, 30, 21] as [UInt64] {
          let slot = table + ((linear >> shift) & 0x1FF) * 8
          var entry = try memory.read(UInt64.self, at: slot)
          if entry & 1 == 0 {
            entry = next | 0x7
            next += 0x1000
            used += 1
            try memory.write(entry, at: slot)
          }
          table = entry & 0x000F_FFFF_FFFF_F000
        }
        guard used <= tableCount else { throw LoaderError("the PV domain's page tables outgrew their estimate") }
        let writable: UInt64 = tableRange.contains(physical) ? 0 : 0x2
        try memory.write(physical | 0x5 | writable, at: table + ((linear >> 12) & 0x1FF) * 8)
      }
      // start_info (Xen's x86-64 layout).
      var info = [UInt8](repeating: 0, count: 0x1000)
      func put(_ bytes: [UInt8], _ at: Int) { info.replaceSubrange(at..<at + bytes.count, with: bytes) }
      put(Array(magic.utf8), 0)
      put(le(pages), 32)  // nr_pages
      put(le(limit), 40)  // shared_info (machine address)
      put(le(tables &+ virtualBase), 88)  // pt_base
      put(le(UInt64(used)), 96)  // nr_pt_frames
      put(le(p2m &+ virtualBase), 104)  // mfn_list
      put(commandLineBytes, 128)  // cmd_line
      try memory.write(startInfo, bytes: info)
    } catch {
      throw LoaderError("cannot write the PV domain into guest memory: \(error)")
    }
    var registers = Registers()
    registers.rip = entry
    registers.rsp = virtualBase &+ stack + 0x1000
    registers.rsi = virtualBase &+ startInfo
    registers.rflags = 0x2
    let hex = { (v: UInt64) in "0x" + String(v, radix: 16) }
    return BootState(
      mode: .long64, registers: registers,
      specialRegisters: ParavirtMonitor.specialRegisters(vcpu: 0, cr3: tables), msrs: ParavirtMonitor.msrs,
      summary: [
        "PV kernel: \(segments.count) segments up to \(hex(imageEnd)), virtual base \(hex(virtualBase)), entry \(hex(elf.entry))",
        "start_info \(hex(virtualBase &+ startInfo)), page tables \(hex(tables)) (\(used) frames), mapped to \(hex(mapEnd))",
        "shared info \(hex(limit)), monitor \(hex(layout.base))-\(hex(layout.reservedRange.upperBound))",
      ],
      hypercallPage: notes[2].map { $0 &- virtualBase })
  }

  /// The `Xen` ELF notes the builder reads (XEN_ELFNOTE_ENTRY 1, XEN_ELFNOTE_HYPERCALL_PAGE 2):
  /// note type to its value (the first 8 bytes of its descriptor, zero-extended).
  static func xenNotes(_ image: ImageBytes) throws(LoaderError) -> [UInt32: UInt64] {
    let phoff = try image.u64(32, "e_phoff")
    let phentsize = UInt64(try image.u16(54, "e_phentsize"))
    let phnum = UInt64(try image.u16(56, "e_phnum"))
    var notes: [UInt32: UInt64] = [:]
    for i in 0..<min(phnum, UInt64(ELFFile.maximumProgramHeaders)) {
      let header = phoff + i * phentsize
      guard try image.u32(header, "p_type") == 4 else { continue }  // PT_NOTE
      let offset = try image.u64(header + 8, "p_offset")
      let size = try image.u64(header + 32, "p_filesz")
      try image.require(offset, length: size, "a PT_NOTE segment")
      var at = offset
      while at + 12 <= offset + size {
        let nameSize = UInt64(try image.u32(at, "n_namesz"))
        let descSize = UInt64(try image.u32(at + 4, "n_descsz"))
        let type = try image.u32(at + 8, "n_type")
        let name = at + 12
        let desc = name + ((nameSize + 3) & ~3)
        let next = desc + ((descSize + 3) & ~3)
        guard nameSize <= 64, descSize <= 1 << 16, next <= offset + size else {
          throw LoaderError("the PV kernel has a malformed ELF note")
        }
        if nameSize == 4, image.bytes[Int(name)..<Int(name + 4)] == [0x58, 0x65, 0x6E, 0x00], descSize >= 1 {
          var value: UInt64 = 0
          for k in 0..<min(descSize, 8) { value |= UInt64(image.bytes[Int(desc + k)]) << (8 * k) }
          notes[type] = value
        }
        at = next
      }
    }
    return notes
  }

  /// Page-table frames needed to map `[start, end)` (4 KiB pages): the root, then one table per
  /// 512 GiB, 1 GiB and 2 MiB span touched.
  static func tablesNeeded(_ start: UInt64, _ end: UInt64) -> Int {
    guard end > start else { return 1 }
    let last = end - 1
    return 1 + [39, 30, 21].reduce(0) { n, shift in n + Int((last >> UInt64(shift)) - (start >> UInt64(shift)) + 1) }
  }

  /// `v` as 8 little-endian bytes.
  private static func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

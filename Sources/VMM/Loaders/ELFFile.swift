/// A parsed, validated ELF header and program header table (32- or 64-bit, little endian).
///
/// Parsing checks everything a loader relies on: the magic, class, data encoding, version, the
/// program header table's bounds, and each `PT_LOAD` segment's file range and sizes. Loaders add
/// their own checks (machine, placement).
struct ELFFile {
  enum Class: UInt8 {
    case elf32 = 1
    case elf64 = 2
  }

  struct Segment {
    var type: UInt32
    var flags: UInt32
    var offset: UInt64
    var virtualAddress: UInt64
    var physicalAddress: UInt64
    var fileSize: UInt64
    var memorySize: UInt64
    var isExecutable: Bool { flags & 1 != 0 }
  }

  static let magic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]
  static let ptLoad: UInt32 = 1
  static let ptDynamic: UInt32 = 2
  static let ptInterp: UInt32 = 3
  static let emX86_64: UInt16 = 62
  static let em386: UInt16 = 3
  static let etExec: UInt16 = 2
  static let etDyn: UInt16 = 3
  /// More program headers than any real kernel has; refusing them bounds the work on bad input.
  static let maximumProgramHeaders = 4096

  let elfClass: Class
  let type: UInt16
  let machine: UInt16
  let entry: UInt64
  /// `PT_LOAD` segments with a non-zero memory size, in file order.
  let loadSegments: [Segment]
  /// The `PT_INTERP` segment (the dynamic loader's path), if any; its file range is checked.
  let interpreterSegment: Segment?
  /// The `PT_DYNAMIC` segment (the dynamic section), if any; its file range is checked.
  let dynamicSegment: Segment?

  static func hasMagic(_ bytes: [UInt8]) -> Bool {
    bytes.count >= 4 && Array(bytes[0..<4]) == magic
  }

  static func machineName(_ m: UInt16) -> String {
    switch m {
    case emX86_64: return "x86-64 (EM_X86_64)"
    case em386: return "i386 (EM_386)"
    case 40: return "ARM (EM_ARM)"
    case 183: return "AArch64 (EM_AARCH64)"
    case 243: return "RISC-V (EM_RISCV)"
    default: return "machine \(m)"
    }
  }

  init(_ image: ImageBytes) throws(LoaderError) {
    guard image.count >= 16 else {
      throw LoaderError("ELF image is truncated: \(image.count) bytes, no ELF identification")
    }
    guard ELFFile.hasMagic(image.bytes) else { throw LoaderError("not an ELF image (bad magic)") }
    guard let cls = Class(rawValue: image.bytes[4]) else {
      throw LoaderError("ELF image has an invalid class \(image.bytes[4]) (expected 1 = 32-bit or 2 = 64-bit)")
    }
    guard image.bytes[5] == 1 else { throw LoaderError("ELF image is not little endian (EI_DATA = \(image.bytes[5]))") }
    guard image.bytes[6] == 1 else { throw LoaderError("ELF image has unknown version \(image.bytes[6])") }
    elfClass = cls
    let is64 = cls == .elf64
    let headerSize: UInt64 = is64 ? 64 : 52
    try image.require(0, length: headerSize, "the ELF header")
    type = try image.u16(16, "e_type")
    machine = try image.u16(18, "e_machine")
    guard try image.u32(20, "e_version") == 1 else { throw LoaderError("ELF image has e_version other than 1") }
    let phoff: UInt64
    let phentsize: UInt16
    let phnum: UInt16
    if is64 {
      entry = try image.u64(24, "e_entry")
      phoff = try image.u64(32, "e_phoff")
      phentsize = try image.u16(54, "e_phentsize")
      phnum = try image.u16(56, "e_phnum")
    } else {
      entry = UInt64(try image.u32(24, "e_entry"))
      phoff = UInt64(try image.u32(28, "e_phoff"))
      phentsize = try image.u16(42, "e_phentsize")
      phnum = try image.u16(44, "e_phnum")
    }
    guard type == ELFFile.etExec || type == ELFFile.etDyn else {
      throw LoaderError("ELF image is not an executable (e_type \(type); expected ET_EXEC or ET_DYN)")
    }
    guard phnum > 0 else { throw LoaderError("ELF image has no program headers") }
    guard phnum != 0xFFFF else { throw LoaderError("ELF image uses extended program header numbering (PN_XNUM)") }
    guard Int(phnum) <= ELFFile.maximumProgramHeaders else {
      throw LoaderError("ELF image has \(phnum) program headers (at most \(ELFFile.maximumProgramHeaders))")
    }
    let expectedEntrySize: UInt16 = is64 ? 56 : 32
    guard phentsize == expectedEntrySize else {
      throw LoaderError("ELF image has program header size \(phentsize) (expected \(expectedEntrySize))")
    }
    let tableSize = UInt64(phnum) * UInt64(phentsize)
    guard image.contains(phoff, length: tableSize) else {
      throw LoaderError(
        "ELF program header table (offset 0x\(hex(phoff)), \(phnum) entries) is outside the \(image.count)-byte file")
    }
    var segments: [Segment] = []
    var interpreter: Segment?
    var dynamic: Segment?
    for i in 0..<UInt64(phnum) {
      let at = phoff + i * UInt64(phentsize)
      let s: Segment
      if is64 {
        s = Segment(
          type: try image.u32(at, "p_type"), flags: try image.u32(at + 4, "p_flags"),
          offset: try image.u64(at + 8, "p_offset"), virtualAddress: try image.u64(at + 16, "p_vaddr"),
          physicalAddress: try image.u64(at + 24, "p_paddr"), fileSize: try image.u64(at + 32, "p_filesz"),
          memorySize: try image.u64(at + 40, "p_memsz"))
      } else {
        s = Segment(
          type: try image.u32(at, "p_type"), flags: try image.u32(at + 24, "p_flags"),
          offset: UInt64(try image.u32(at + 4, "p_offset")),
          virtualAddress: UInt64(try image.u32(at + 8, "p_vaddr")),
          physicalAddress: UInt64(try image.u32(at + 12, "p_paddr")),
          fileSize: UInt64(try image.u32(at + 16, "p_filesz")),
          memorySize: UInt64(try image.u32(at + 20, "p_memsz")))
      }
      if s.type == ELFFile.ptInterp || s.type == ELFFile.ptDynamic {
        guard image.contains(s.offset, length: s.fileSize) else {
          throw LoaderError("ELF segment \(i) (type \(s.type)) is outside the \(image.count)-byte file")
        }
        if s.type == ELFFile.ptInterp { interpreter = s } else { dynamic = s }
        continue
      }
      guard s.type == ELFFile.ptLoad, s.memorySize > 0 || s.fileSize > 0 else { continue }
      guard s.fileSize <= s.memorySize else {
        throw LoaderError(
          "ELF segment \(i) has p_filesz 0x\(hex(s.fileSize)) larger than p_memsz 0x\(hex(s.memorySize))")
      }
      // A BSS-only segment's offset means nothing (linkers may point it past the end of the file).
      guard s.fileSize == 0 || image.contains(s.offset, length: s.fileSize) else {
        throw LoaderError(
          "ELF segment \(i) (file offset 0x\(hex(s.offset)), 0x\(hex(s.fileSize)) bytes) is outside the \(image.count)-byte file"
        )
      }
      guard s.physicalAddress.addingReportingOverflow(s.memorySize).overflow == false,
        s.virtualAddress.addingReportingOverflow(s.memorySize).overflow == false
      else {
        throw LoaderError("ELF segment \(i) at 0x\(hex(s.physicalAddress)) with size 0x\(hex(s.memorySize)) overflows")
      }
      segments.append(s)
    }
    guard !segments.isEmpty else { throw LoaderError("ELF image has no loadable (PT_LOAD) segments") }
    loadSegments = segments
    interpreterSegment = interpreter
    dynamicSegment = dynamic
  }

  /// The physical address of `entry`: translated through the segment whose virtual range holds it
  /// (for kernels linked at a virtual address different from their load address).
  var physicalEntry: UInt64 {
    for s in loadSegments where entry >= s.virtualAddress && entry - s.virtualAddress < s.memorySize {
      return s.physicalAddress + (entry - s.virtualAddress)
    }
    return entry
  }

  /// Copies every segment into `plan`'s memory at its physical address and zeroes its BSS part,
  /// after claiming all of them (so a bad layout is refused before anything is written).
  func load(_ image: ImageBytes, into plan: inout LoadPlan, name: String) throws(LoaderError) -> String {
    for (i, s) in loadSegments.enumerated() {
      try plan.claim(s.physicalAddress, length: s.memorySize, "\(name) segment \(i)")
    }
    var lowest = UInt64.max
    var highest: UInt64 = 0
    for (i, s) in loadSegments.enumerated() {
      if s.fileSize > 0 {
        let data = try image.slice(s.offset, length: s.fileSize, "segment \(i)")
        try guestWrite(plan.memory, s.physicalAddress, data, "\(name) segment \(i)")
      }
      try guestZero(plan.memory, s.physicalAddress + s.fileSize, s.memorySize - s.fileSize, "segment \(i)'s BSS")
      lowest = min(lowest, s.physicalAddress)
      highest = max(highest, s.physicalAddress + s.memorySize)
    }
    return
      "\(name): \(loadSegments.count) segment(s) at 0x\(hex(lowest))-0x\(hex(highest - 1)), entry 0x\(hex(physicalEntry))"
  }

  /// Throws unless `address` lies in a loaded segment.
  func requireEntryInSegment(_ address: UInt64, name: String) throws(LoaderError) {
    let inside = loadSegments.contains {
      address >= $0.physicalAddress && address - $0.physicalAddress < $0.memorySize
    }
    guard inside else { throw LoaderError("\(name) entry point 0x\(hex(address)) is not inside any loaded segment") }
  }
}

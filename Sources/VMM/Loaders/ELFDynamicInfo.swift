/// What a dynamically linked ELF program asks of its loader: the interpreter (`PT_INTERP`, e.g.
/// `/lib64/ld-linux-x86-64.so.2`), the shared libraries it names (`DT_NEEDED`) and its library
/// search paths (`DT_RUNPATH`, `DT_RPATH`). Used to pack a program with its libraries into a guest
/// (`trivisor run --app`).
///
/// Every offset comes from the file and is checked: a malformed file is a `LoaderError`, never a
/// crash. A static executable has no interpreter and no needed libraries.
public struct ELFDynamicInfo: Equatable, Sendable {
  /// The `PT_INTERP` path, nil for a static executable.
  public let interpreter: String?
  /// The `DT_NEEDED` names, in order.
  public let needed: [String]
  /// The `DT_RUNPATH` and `DT_RPATH` directories, in order (`$ORIGIN` left as written).
  public let searchPaths: [String]
  /// The ELF machine is x86-64.
  public let isX86_64: Bool

  /// More dynamic entries than any real program has: refusing them bounds the work.
  static let maximumEntries = 1 << 16

  /// Parses `bytes`, an ELF file called `name` in messages.
  public init(bytes: [UInt8], name: String) throws(LoaderError) {
    let image = ImageBytes(bytes, name: name)
    let elf = try ELFFile(image)
    isX86_64 = elf.machine == ELFFile.emX86_64
    if let s = elf.interpreterSegment {
      interpreter = try Self.string(image, at: s.offset, limit: s.offset + s.fileSize, "PT_INTERP")
    } else {
      interpreter = nil
    }
    guard let dynamic = elf.dynamicSegment else {
      needed = []
      searchPaths = []
      return
    }
    let entrySize: UInt64 = elf.elfClass == ELFFile.Class.elf64 ? 16 : 8
    var neededOffsets: [UInt64] = []
    var pathOffsets: [UInt64] = []
    var stringTableAddress: UInt64?
    var stringTableSize: UInt64?
    var at = dynamic.offset
    let end = dynamic.offset + dynamic.fileSize
    var count = 0
    while at + entrySize <= end && count < Self.maximumEntries {
      let tag: UInt64
      let value: UInt64
      if entrySize == 16 {
        tag = try image.u64(at, "dynamic tag")
        value = try image.u64(at + 8, "dynamic value")
      } else {
        tag = UInt64(try image.u32(at, "dynamic tag"))
        value = UInt64(try image.u32(at + 4, "dynamic value"))
      }
      switch tag {
      case 0: at = end  // DT_NULL
      case 1: neededOffsets.append(value)  // DT_NEEDED
      case 5: stringTableAddress = value  // DT_STRTAB
      case 10: stringTableSize = value  // DT_STRSZ
      case 15, 29: pathOffsets.append(value)  // DT_RPATH, DT_RUNPATH
      default: break
      }
      at += entrySize
      count += 1
    }
    guard !neededOffsets.isEmpty || !pathOffsets.isEmpty else {
      needed = []
      searchPaths = []
      return
    }
    guard let address = stringTableAddress else { throw LoaderError("\(name) has DT_NEEDED but no DT_STRTAB") }
    // DT_STRTAB is a virtual address: find the file offset through the segment that maps it.
    guard
      let segment = elf.loadSegments.first(where: {
        address >= $0.virtualAddress && address - $0.virtualAddress < $0.fileSize
      })
    else { throw LoaderError("\(name)'s string table (0x\(hex(address))) is in no loaded part of the file") }
    let tableStart = segment.offset + (address - segment.virtualAddress)
    let segmentEnd = segment.offset + segment.fileSize
    var tableEnd = segmentEnd
    if let size = stringTableSize, size < segmentEnd - tableStart { tableEnd = tableStart + size }
    func entryString(_ offset: UInt64, _ what: String) throws(LoaderError) -> String {
      guard offset < tableEnd - tableStart else { throw LoaderError("\(name)'s \(what) is outside its string table") }
      return try Self.string(image, at: tableStart + offset, limit: tableEnd, what)
    }
    var names: [String] = []
    for offset in neededOffsets { names.append(try entryString(offset, "DT_NEEDED name")) }
    var paths: [String] = []
    for offset in pathOffsets {
      paths += try entryString(offset, "DT_RUNPATH").split(separator: ":").map(String.init)
    }
    needed = names
    searchPaths = paths
  }

  /// The NUL-terminated string at `offset`, which must end before `limit`.
  private static func string(_ image: ImageBytes, at offset: UInt64, limit: UInt64, _ what: String)
    throws(LoaderError) -> String
  {
    let bytes = try image.slice(offset, length: limit - offset, what)
    guard let nul = bytes.firstIndex(of: 0) else { throw LoaderError("\(image.name)'s \(what) is not terminated") }
    return String(decoding: bytes[bytes.startIndex..<nul], as: UTF8.self)
  }
}

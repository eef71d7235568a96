/// Just enough ELF64 parsing to check the kernel image's shape.
struct ELF64Header {
  struct ProgramHeader {
    var type: UInt32
    var offset: UInt64
    var virtualAddress: UInt64
    var physicalAddress: UInt64
    var fileSize: UInt64
    var memorySize: UInt64
  }

  struct FormatError: Error, CustomStringConvertible {
    var description: String
  }

  var type: UInt16
  var machine: UInt16
  var entry: UInt64
  var programHeaders: [ProgramHeader]

  init(_ bytes: [UInt8]) throws {
    guard bytes.count >= 64, bytes[0..<4] == [0x7F, 0x45, 0x4C, 0x46] else { throw FormatError(description: "not ELF") }
    guard bytes[4] == 2, bytes[5] == 1 else { throw FormatError(description: "not ELF64 little-endian") }
    type = UInt16(Self.read(bytes, 16, 2))
    machine = UInt16(Self.read(bytes, 18, 2))
    entry = Self.read(bytes, 24, 8)
    let tableOffset = Int(Self.read(bytes, 32, 8))
    let entrySize = Int(Self.read(bytes, 54, 2))
    let count = Int(Self.read(bytes, 56, 2))
    guard entrySize >= 56, tableOffset + entrySize * count <= bytes.count else {
      throw FormatError(description: "program headers out of range")
    }
    programHeaders = (0..<count).map { index in
      let base = tableOffset + index * entrySize
      return ProgramHeader(
        type: UInt32(Self.read(bytes, base, 4)), offset: Self.read(bytes, base + 8, 8),
        virtualAddress: Self.read(bytes, base + 16, 8), physicalAddress: Self.read(bytes, base + 24, 8),
        fileSize: Self.read(bytes, base + 32, 8), memorySize: Self.read(bytes, base + 40, 8))
    }
  }

  static func read(_ bytes: [UInt8], _ offset: Int, _ size: Int) -> UInt64 {
    var value: UInt64 = 0
    for index in (0..<size).reversed() { value = value << 8 | UInt64(bytes[offset + index]) }
    return value
  }
}

/// A Multiboot v1 header found in the first 8 KiB of an image.
struct MultibootHeader {
  var fileOffset: Int
  var magic: UInt32
  var flags: UInt32
  var checksum: UInt32
  var headerAddress: UInt32
  var loadAddress: UInt32
  var loadEndAddress: UInt32
  var bssEndAddress: UInt32
  var entryAddress: UInt32

  static func find(in bytes: [UInt8]) -> MultibootHeader? {
    var offset = 0
    while offset + 32 <= min(bytes.count, 8192) {
      let word = { (index: Int) in UInt32(ELF64Header.read(bytes, offset + 4 * index, 4)) }
      if word(0) == 0x1BAD_B002 {
        return MultibootHeader(
          fileOffset: offset, magic: word(0), flags: word(1), checksum: word(2), headerAddress: word(3),
          loadAddress: word(4), loadEndAddress: word(5), bssEndAddress: word(6), entryAddress: word(7))
      }
      offset += 4
    }
    return nil
  }
}

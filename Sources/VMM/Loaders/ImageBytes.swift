/// Bounds-checked little-endian reads from an image file. Every offset is checked with overflow-safe
/// arithmetic; a read past the end throws a `LoaderError` naming the field.
struct ImageBytes {
  let bytes: [UInt8]
  /// What the error messages call the file ("ELF image", "bzImage").
  let name: String

  init(_ bytes: [UInt8], name: String) {
    self.bytes = bytes
    self.name = name
  }

  var count: UInt64 { UInt64(bytes.count) }

  /// True when `[offset, offset+length)` lies inside the file.
  func contains(_ offset: UInt64, length: UInt64) -> Bool {
    offset <= count && length <= count - offset
  }

  func require(_ offset: UInt64, length: UInt64, _ what: String) throws(LoaderError) {
    guard contains(offset, length: length) else {
      throw LoaderError(
        "\(name) is truncated: \(what) at offset 0x\(hex(offset)) (\(length) bytes) is past the end of the \(count)-byte file"
      )
    }
  }

  func u8(_ offset: UInt64, _ what: String) throws(LoaderError) -> UInt8 {
    try require(offset, length: 1, what)
    return bytes[Int(offset)]
  }

  func u16(_ offset: UInt64, _ what: String) throws(LoaderError) -> UInt16 {
    try require(offset, length: 2, what)
    let i = Int(offset)
    return UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
  }

  func u32(_ offset: UInt64, _ what: String) throws(LoaderError) -> UInt32 {
    try require(offset, length: 4, what)
    let i = Int(offset)
    return UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
  }

  func u64(_ offset: UInt64, _ what: String) throws(LoaderError) -> UInt64 {
    let low = try u32(offset, what)
    let high = try u32(offset + 4, what)
    return UInt64(high) << 32 | UInt64(low)
  }

  /// The bytes `[offset, offset+length)`.
  func slice(_ offset: UInt64, length: UInt64, _ what: String) throws(LoaderError) -> ArraySlice<UInt8> {
    try require(offset, length: length, what)
    return bytes[Int(offset)..<Int(offset + length)]
  }
}

/// `a + b`, or a `LoaderError` when it overflows 64 bits.
func checkedAdd(_ a: UInt64, _ b: UInt64, _ what: String) throws(LoaderError) -> UInt64 {
  let (sum, overflow) = a.addingReportingOverflow(b)
  guard !overflow else { throw LoaderError("\(what) overflows: 0x\(hex(a)) + 0x\(hex(b))") }
  return sum
}

/// Lower-case hexadecimal without prefix.
func hex(_ v: UInt64) -> String { String(v, radix: 16) }

/// `v` rounded up to a multiple of `alignment` (a power of two), or nil on overflow.
func alignUp(_ v: UInt64, _ alignment: UInt64) -> UInt64? {
  let (sum, overflow) = v.addingReportingOverflow(alignment - 1)
  return overflow ? nil : sum & ~(alignment - 1)
}

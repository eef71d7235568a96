/// A growing little-endian byte image of a firmware table (ACPI, MP) or of a device's register
/// block (virtio structures, configuration spaces), with the few operations they need: append
/// integers and fixed-width strings, patch a field later, read and write a guest access of 1-8
/// bytes at any offset.
struct TableBytes {
  /// The bytes so far.
  private(set) var bytes: [UInt8] = []

  /// The number of bytes so far (the offset the next append lands at).
  var count: Int { bytes.count }

  /// Appends a byte.
  mutating func u8(_ value: UInt8) { bytes.append(value) }
  /// Appends a 16-bit little-endian value.
  mutating func u16(_ value: UInt16) { append(value) }
  /// Appends a 32-bit little-endian value.
  mutating func u32(_ value: UInt32) { append(value) }
  /// Appends a 64-bit little-endian value.
  mutating func u64(_ value: UInt64) { append(value) }

  private mutating func append<T: FixedWidthInteger>(_ value: T) {
    withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
  }

  /// Appends raw bytes.
  mutating func raw(_ data: [UInt8]) { bytes += data }

  /// Appends `count` zero bytes.
  mutating func zeros(_ count: Int) { bytes += [UInt8](repeating: 0, count: count) }

  /// Appends `text` as ASCII in exactly `width` bytes: cut, or padded with `pad` (the ACPI
  /// specification pads OEM IDs with spaces or NULs; the MP specification with spaces).
  mutating func ascii(_ text: String, width: Int, pad: UInt8 = 0x20) {
    var field = Array(text.utf8.prefix(width))
    field += [UInt8](repeating: pad, count: width - field.count)
    bytes += field
  }

  /// Overwrites the little-endian value at `offset` (a field whose value is known only later).
  mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
    withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { bytes[offset + i] = b } }
  }

  /// The little-endian value of `size` bytes (1...8) at `offset`; bytes past the end read as 0.
  func read(at offset: Int, size: Int) -> UInt64 {
    var value: UInt64 = 0
    for i in 0..<size where bytes.indices.contains(offset + i) {
      value |= UInt64(bytes[offset + i]) << (8 * UInt64(i))
    }
    return value
  }

  /// Writes the low `size` bytes (1...8) of `value` at `offset`, little-endian; bytes that would
  /// land past the end are dropped.
  mutating func write(_ value: UInt64, at offset: Int, size: Int) {
    for i in 0..<size where bytes.indices.contains(offset + i) {
      bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
    }
  }

  /// Makes `bytes[range]` sum to zero modulo 256 by adjusting the byte at `checksumOffset` (which
  /// lies inside `range`): the ACPI and MP checksum rule.
  mutating func fixChecksum(at checksumOffset: Int, over range: Range<Int>) {
    bytes[checksumOffset] &-= byteSum(bytes[range])
  }
}

/// The sum of `bytes` modulo 256: zero for a table with a correct ACPI or MP checksum.
func byteSum(_ bytes: some Sequence<UInt8>) -> UInt8 {
  bytes.reduce(0, &+)
}

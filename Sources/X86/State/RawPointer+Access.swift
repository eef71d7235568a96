extension UnsafeMutableRawPointer {
  /// The `size` bytes here (1 to 8, any alignment) as a little-endian value: one load for 1, 2, 4
  /// and 8 bytes.
  @inline(__always)
  func loadLittleEndian(size: Int) -> UInt64 {
    switch size {
    case 1: return UInt64(load(as: UInt8.self))
    case 2: return UInt64(loadUnaligned(as: UInt16.self))
    case 4: return UInt64(loadUnaligned(as: UInt32.self))
    case 8: return loadUnaligned(as: UInt64.self)
    default:
      var value: UInt64 = 0
      for k in 0..<size { value |= UInt64(load(fromByteOffset: k, as: UInt8.self)) << UInt64(8 * k) }
      return value
    }
  }
}

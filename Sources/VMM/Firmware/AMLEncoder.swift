/// A very small ACPI Machine Language encoder: just what the DSDT needs to declare data objects
/// (ACPI specification, "ACPI Machine Language (AML) Specification").
///
/// Supported terms:
/// - `DefName := NameOp NameString DataRefObject` with `NameOp` 0x08;
/// - `NameString` of one 4-character `NameSeg` (shorter names padded with `_`), optionally
///   prefixed by the root character `\` (0x5C);
/// - `DefPackage := PackageOp PkgLength NumElements PackageElementList` with `PackageOp` 0x12 and
///   at most 255 elements;
/// - integers as `ZeroOp` (0x00), `OneOp` (0x01), or the smallest of `BytePrefix` 0x0A,
///   `WordPrefix` 0x0B, `DWordPrefix` 0x0C, `QWordPrefix` 0x0E followed by the little-endian value.
///
/// - `DefScope := ScopeOp PkgLength NameString TermList` (0x10) and
///   `DefDevice := DeviceOp PkgLength NameString TermList` (0x5B 0x82);
/// - `DefBuffer := BufferOp PkgLength BufferSize ByteList` (0x11), which carries resource
///   templates (`ResourceTemplate` builds their descriptors).
///
/// `PkgLength` counts its own bytes plus everything up to the end of the package. One byte holds
/// lengths up to 63 (bits 5-0); longer lengths take one to three more bytes: the lead byte's
/// bits 7-6 give how many, its bits 3-0 hold the low nibble, each following byte the next 8 bits.
enum AMLEncoder {
  /// `NameOp`.
  static let nameOp: UInt8 = 0x08
  /// `PackageOp`.
  static let packageOp: UInt8 = 0x12
  /// `ZeroOp`.
  static let zeroOp: UInt8 = 0x00
  /// `OneOp`.
  static let oneOp: UInt8 = 0x01
  /// `BytePrefix`.
  static let bytePrefix: UInt8 = 0x0A
  /// `WordPrefix`.
  static let wordPrefix: UInt8 = 0x0B
  /// `DWordPrefix`.
  static let dwordPrefix: UInt8 = 0x0C
  /// `QWordPrefix`.
  static let qwordPrefix: UInt8 = 0x0E
  /// `RootChar` (`\`).
  static let rootChar: UInt8 = 0x5C
  /// `ScopeOp`.
  static let scopeOp: UInt8 = 0x10
  /// `MethodOp`.
  static let methodOp: UInt8 = 0x14
  /// `BufferOp`.
  static let bufferOp: UInt8 = 0x11
  /// `ExtOpPrefix` and `DeviceOp`.
  static let deviceOp: [UInt8] = [0x5B, 0x82]

  /// The `PkgLength` encoding for a package whose bytes after the `PkgLength` number
  /// `contentLength`.
  static func pkgLength(contentLength: Int) -> [UInt8] {
    // The encoded length includes the encoding itself: take the shortest form that fits.
    let oneByte = contentLength + 1
    if oneByte <= 0x3F { return [UInt8(oneByte)] }
    for extraBytes in 1...3 {
      let total = contentLength + 1 + extraBytes
      guard total < 1 << (4 + 8 * extraBytes) else { continue }
      var out = [UInt8(extraBytes << 6) | UInt8(total & 0x0F)]
      for i in 0..<extraBytes { out.append(UInt8(truncatingIfNeeded: total >> (4 + 8 * i))) }
      return out
    }
    preconditionFailure("AML package of \(contentLength) bytes exceeds the 28-bit PkgLength")
  }

  /// An AML integer constant in its shortest encoding.
  static func integer(_ value: UInt64) -> [UInt8] {
    switch value {
    case 0: return [zeroOp]
    case 1: return [oneOp]
    case ...0xFF: return [bytePrefix, UInt8(value)]
    case ...0xFFFF: return [wordPrefix] + littleEndian(UInt16(value))
    case ...0xFFFF_FFFF: return [dwordPrefix] + littleEndian(UInt32(value))
    default: return [qwordPrefix] + littleEndian(value)
    }
  }

  private static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian, Array.init)
  }

  /// A `NameString`: `\` (optional) and one `NameSeg` of 1-4 characters (`A`-`Z`, `_`, and
  /// digits after the first), padded to four with `_`.
  static func nameString(_ path: String) -> [UInt8] {
    var chars = Array(path.utf8)
    var out: [UInt8] = []
    if chars.first == rootChar {
      out.append(rootChar)
      chars.removeFirst()
    }
    precondition((1...4).contains(chars.count), "AML name segment \(path) must have 1-4 characters")
    for (i, c) in chars.enumerated() {
      let valid = (c >= 0x41 && c <= 0x5A) || c == 0x5F || (i > 0 && c >= 0x30 && c <= 0x39)
      precondition(valid, "AML name segment \(path) has an invalid character")
    }
    return out + chars + [UInt8](repeating: 0x5F, count: 4 - chars.count)
  }

  /// `Name(path, value)`: declares the data object `path` with the encoded `value`.
  static func name(_ path: String, _ value: [UInt8]) -> [UInt8] {
    [nameOp] + nameString(path) + value
  }

  /// `Package() { elements }` with each element already encoded.
  static func package(_ elements: [[UInt8]]) -> [UInt8] {
    precondition(elements.count <= 0xFF, "an AML Package holds at most 255 elements")
    let content = [UInt8(elements.count)] + elements.flatMap { $0 }
    return [packageOp] + pkgLength(contentLength: content.count) + content
  }

  /// `Scope(path) { terms }`.
  static func scope(_ path: String, _ terms: [[UInt8]]) -> [UInt8] {
    let content = nameString(path) + terms.flatMap { $0 }
    return [scopeOp] + pkgLength(contentLength: content.count) + content
  }

  /// `Device(name) { terms }`.
  static func device(_ name: String, _ terms: [[UInt8]]) -> [UInt8] {
    let content = nameString(name) + terms.flatMap { $0 }
    return deviceOp + pkgLength(contentLength: content.count) + content
  }

  /// `Method(name, argumentCount, NotSerialized) { body }`.
  static func method(_ name: String, argumentCount: Int, _ body: [[UInt8]]) -> [UInt8] {
    precondition((0...7).contains(argumentCount), "an AML method takes 0-7 arguments")
    let content = nameString(name) + [UInt8(argumentCount)] + body.flatMap { $0 }
    return [methodOp] + pkgLength(contentLength: content.count) + content
  }

  /// `Buffer() { bytes }`.
  static func buffer(_ bytes: [UInt8]) -> [UInt8] {
    let content = integer(UInt64(bytes.count)) + bytes
    return [bufferOp] + pkgLength(contentLength: content.count) + content
  }

  /// `EisaId("PNP0A03")` as its 32-bit integer: three letters of five bits each (`A` = 1) and
  /// four hexadecimal digits, stored big-endian.
  static func eisaID(_ id: String) -> [UInt8] {
    let c = Array(id.utf8)
    precondition(c.count == 7, "an EISA ID has three letters and four hex digits")
    let letters = UInt16(c[0] - 0x40) << 10 | UInt16(c[1] - 0x40) << 5 | UInt16(c[2] - 0x40)
    let product = UInt16(String(decoding: c[3...], as: UTF8.self), radix: 16) ?? 0
    let bytes = [UInt8(letters >> 8), UInt8(letters & 0xFF), UInt8(product >> 8), UInt8(product & 0xFF)]
    return integer(UInt64(bytes[0]) | UInt64(bytes[1]) << 8 | UInt64(bytes[2]) << 16 | UInt64(bytes[3]) << 24)
  }
}

/// The release string of a Linux bzImage (`uname -r`, e.g. `6.1.0-27-amd64`), which names its
/// modules' directory `/lib/modules/RELEASE`.
///
/// The setup header's `kernel_version` field (offset 0x20E) points, 0x200 bytes off, at the
/// version string the kernel prints first ("6.1.0-27-amd64 (debian-kernel@...) #1 SMP ..."); the
/// release is its first word.
public enum KernelRelease {
  /// The release of `bzImage`, or nil when it is not a bzImage with a readable version string.
  public static func of(bzImage bytes: [UInt8]) -> String? {
    guard bytes.count > 0x210, bytes[0x202..<0x206].elementsEqual("HdrS".utf8) else { return nil }
    let pointer = Int(bytes[0x20E]) | Int(bytes[0x20F]) << 8
    let start = pointer + 0x200
    guard pointer != 0, start < bytes.count else { return nil }
    let end = min(bytes.count, start + 256)
    let text = bytes[start..<end].prefix { $0 != 0 && $0 != 0x20 }
    guard !text.isEmpty, text.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
    return String(decoding: text, as: UTF8.self)
  }
}

import Foundation
import VMM

/// A memory size as the user writes it: plain bytes, or a number with a K, M, G or T suffix
/// (binary units, case-insensitive, an optional trailing B or iB: `256M`, `1G`, `65536K`, `1GiB`).
public struct MemorySize: Equatable, Sendable {
  /// The size in bytes.
  public let bytes: UInt64

  /// Why a size was refused (one line).
  public struct Invalid: Error, CustomStringConvertible, Equatable {
    /// Why the text is not a size, in one line.
    public let description: String
  }

  /// The smallest guest the VMM accepts (the low-memory boot structures need 1 MiB).
  public static let minimum: UInt64 = 1 << 20

  /// A size of `bytes` bytes.
  public init(bytes: UInt64) { self.bytes = bytes }

  /// Parses `256M`, `1G`, `65536K` or a byte count; throws `Invalid` for anything else, zero or absurd sizes.
  public init(parsing text: String) throws(Invalid) {
    var t = text.trimmingCharacters(in: .whitespaces).uppercased()
    guard !t.isEmpty else { throw Invalid(description: "empty memory size") }
    if t.hasSuffix("IB") { t.removeLast(2) } else if t.hasSuffix("B") && t.count > 1 { t.removeLast() }
    var shift: UInt64 = 0
    if let last = t.last, let s = ["K": 10, "M": 20, "G": 30, "T": 40][String(last)] {
      shift = UInt64(s)
      t.removeLast()
    }
    guard !t.isEmpty, t.allSatisfy(\.isASCII), let n = UInt64(t) else {
      throw Invalid(description: "invalid memory size '\(text)' (use e.g. 256M, 1G, 65536K or bytes)")
    }
    let (value, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
    guard !overflow, value <= GuestMemory.maximumRAM else {
      throw Invalid(description: "memory size '\(text)' is absurd (the most is 1T)")
    }
    guard value >= Self.minimum else {
      throw Invalid(description: "memory size '\(text)' is too small (the least is 1M)")
    }
    guard value % GuestMemory.pageSize == 0 else {
      throw Invalid(description: "memory size '\(text)' is not a multiple of 4 KiB")
    }
    bytes = value
  }
}

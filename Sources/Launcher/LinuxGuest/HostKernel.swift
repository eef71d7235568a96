import Foundation

/// The host's installed Linux kernels (Debian's `linux-image-*` packages put them in `/boot` and
/// their modules in `/lib/modules/RELEASE`): what `--rootfs` and `--app` boot without `--kernel`.
public enum HostKernel {
  /// The newest `/boot/vmlinuz-*` by version order, or nil when there is none.
  public static func newest(in directory: String = "/boot") -> String? {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
    let kernels = names.filter { $0.hasPrefix("vmlinuz-") }
    guard let best = kernels.max(by: { versionLess(String($0.dropFirst(8)), String($1.dropFirst(8))) }) else {
      return nil
    }
    return directory + "/" + best
  }

  /// The modules directory of `release`, when it exists.
  public static func modulesDirectory(release: String, root: String = "/lib/modules") -> String? {
    var isDirectory: ObjCBool = false
    let path = root + "/" + release
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue ? path : nil
  }

  /// `a < b` comparing runs of digits as numbers (6.1.0-9 before 6.1.0-27).
  static func versionLess(_ a: String, _ b: String) -> Bool {
    func parts(_ s: String) -> [(Int, String)] {
      var result: [(Int, String)] = []
      var digits = ""
      var other = ""
      for c in s {
        if c.isNumber {
          if !other.isEmpty { result.append((-1, other)); other = "" }
          digits.append(c)
        } else {
          if !digits.isEmpty { result.append((Int(digits.prefix(18)) ?? 0, "")); digits = "" }
          other.append(c)
        }
      }
      if !digits.isEmpty { result.append((Int(digits.prefix(18)) ?? 0, "")) }
      if !other.isEmpty { result.append((-1, other)) }
      return result
    }
    for (x, y) in zip(parts(a), parts(b)) where x != y {
      return x.0 != y.0 ? x.0 < y.0 : x.1 < y.1
    }
    return parts(a).count < parts(b).count
  }
}

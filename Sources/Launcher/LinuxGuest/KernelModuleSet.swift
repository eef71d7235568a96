import Foundation
import VMM

/// The loadable modules of one kernel release, as `depmod` describes them in
/// `/lib/modules/RELEASE/modules.dep`, and the order to load a set of them in.
///
/// Each `modules.dep` line is `PATH: DEPENDENCY...`, the dependencies already complete (every
/// module the first needs, transitively), listed so that the last must load first. Names match
/// with `-` and `_` taken as the same, as modprobe does. A module built into the kernel
/// (`modules.builtin`) needs no loading.
public struct KernelModuleSet: Sendable {
  /// The modules directory, e.g. `/lib/modules/6.1.0-27-amd64`.
  public let directory: String
  private var paths: [String: String] = [:]
  private var dependencies: [String: [String]] = [:]
  private var builtin: Set<String> = []

  /// Reads `directory`'s `modules.dep` (and `modules.builtin` if present).
  public init(directory: String) throws(GuestImageError) {
    let dep: [UInt8]
    do { dep = try HostFile.readRegular(directory + "/modules.dep", what: "module list", maxSize: 64 << 20) } catch {
      throw GuestImageError("cannot read the kernel's module list: \(error.description)")
    }
    self.init(directory: directory, modulesDep: String(decoding: dep, as: UTF8.self))
    if let list = try? HostFile.readRegular(directory + "/modules.builtin", what: "builtin list", maxSize: 64 << 20) {
      for line in String(decoding: list, as: UTF8.self).split(separator: "\n") {
        builtin.insert(Self.moduleName(of: String(line)))
      }
    }
  }

  /// A set described by the text of a `modules.dep` file (for tests and other sources).
  public init(directory: String, modulesDep: String, builtin: [String] = []) {
    self.directory = directory
    for line in modulesDep.split(separator: "\n") {
      guard let colon = line.firstIndex(of: ":") else { continue }
      let path = line[..<colon].trimmingCharacters(in: .whitespaces)
      guard !path.isEmpty else { continue }
      let name = Self.moduleName(of: path)
      paths[name] = path
      dependencies[name] = line[line.index(after: colon)...].split(separator: " ").map {
        Self.moduleName(of: String($0))
      }
    }
    self.builtin = Set(builtin.map(Self.canonical))
  }

  /// The module paths (relative to `directory`) to load, in order, so that `names` are available:
  /// each module after everything it needs, each once; built-in modules are left out.
  public func loadOrder(for names: [String]) throws(GuestImageError) -> [String] {
    var order: [String] = []
    var seen: Set<String> = []
    for requested in names.map(Self.canonical) {
      if builtin.contains(requested) { continue }
      guard let needs = dependencies[requested] else {
        throw GuestImageError("the kernel has no module '\(requested)' in \(directory) (nor built in)")
      }
      for name in needs.reversed() + [requested] where !seen.contains(name) && !builtin.contains(name) {
        guard let path = paths[name] else {
          throw GuestImageError("module '\(requested)' needs '\(name)', which \(directory)/modules.dep does not list")
        }
        seen.insert(name)
        order.append(path)
      }
    }
    return order
  }

  /// `kernel/drivers/block/virtio_blk.ko` → `virtio_blk` (compressed suffixes too).
  static func moduleName(of path: String) -> String {
    var name = Substring(path.split(separator: "/").last ?? "")
    for suffix in [".xz", ".zst", ".gz", ".ko"] where name.hasSuffix(suffix) { name = name.dropLast(suffix.count) }
    return canonical(String(name))
  }

  /// Module names compare with `-` as `_`.
  static func canonical(_ name: String) -> String { name.replacingDashes }
}

extension String {
  fileprivate var replacingDashes: String { String(map { $0 == "-" ? "_" : $0 }) }
}

import Foundation
import VMM

/// Finds the files a dynamically linked program needs to run on another root filesystem: its
/// interpreter (the dynamic loader) and, transitively, every `DT_NEEDED` library, looked up the
/// way the GNU dynamic loader does without its cache: the object's `DT_RPATH`/`DT_RUNPATH`
/// (`$ORIGIN` expanded), then the multiarch and traditional system directories.
///
/// Paths are the host's; the guest gets each file at the same path (the content of a symbolic
/// link's target), so the loader finds them in the same places.
public struct SharedLibraryResolver: Sendable {
  /// The system library directories, in the order they are searched.
  public static let systemDirectories = [
    "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
  ]
  /// At most this many libraries: a loop of `DT_NEEDED` or a huge tree stops here.
  public static let maximumLibraries = 512

  /// Where paths are looked up: `/` for the host itself (a directory to resolve inside a tree).
  public let root: String

  /// A resolver over the filesystem rooted at `root`.
  public init(root: String = "/") { self.root = root }

  /// The interpreter and every library `program` needs, each path once, in discovery order.
  public func files(neededBy program: String) throws(GuestImageError) -> [String] {
    let top = try info(program)
    guard top.isX86_64 else { throw GuestImageError("\(program) is not an x86-64 program") }
    var result: [String] = []
    var seen: Set<String> = []
    if let interpreter = top.interpreter {
      guard exists(interpreter) else {
        throw GuestImageError("\(program)'s dynamic loader \(interpreter) does not exist")
      }
      result.append(interpreter)
      seen.insert(interpreter)
    }
    var queue: [(path: String, info: ELFDynamicInfo)] = [(program, top)]
    while !queue.isEmpty {
      let (path, object) = queue.removeFirst()
      let origin = (path as NSString).deletingLastPathComponent
      let directories = object.searchPaths.map { $0.replacingOccurrences(of: "$ORIGIN", with: origin) }
      for name in object.needed {
        guard let found = locate(name, in: directories + Self.systemDirectories) else {
          throw GuestImageError("library \(name), needed by \(path), is not in any library directory")
        }
        guard !seen.contains(found) else { continue }
        guard result.count < Self.maximumLibraries else {
          throw GuestImageError("\(program) needs more than \(Self.maximumLibraries) libraries")
        }
        seen.insert(found)
        result.append(found)
        queue.append((found, try info(found)))
      }
    }
    return result
  }

  private func info(_ path: String) throws(GuestImageError) -> ELFDynamicInfo {
    let bytes = try readHostFile(hostPath(path), maxSize: 1 << 30)
    do { return try ELFDynamicInfo(bytes: bytes, name: path) } catch {
      throw GuestImageError("\(path): \(error.message)")
    }
  }

  private func locate(_ name: String, in directories: [String]) -> String? {
    if name.contains("/") { return exists(name) ? name : nil }
    return directories.lazy.map { $0 + "/" + name }.first(where: exists)
  }

  private func exists(_ path: String) -> Bool {
    var s = stat()
    return stat(hostPath(path), &s) == 0 && (s.st_mode & S_IFMT) == S_IFREG
  }

  /// `path` inside `root`.
  func hostPath(_ path: String) -> String { root == "/" ? path : root + path }
}

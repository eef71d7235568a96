/// A cpio archive in the "newc" format (magic `070701`), the format Linux unpacks an initramfs
/// from. Paths are relative to the archive's root (a leading `/` is dropped); every parent
/// directory is added before its first entry, so the kernel can create each one in order. The
/// first entry of a path wins: later additions of the same path are ignored. Owners are root and
/// times zero, so the same inputs always give the same bytes.
public struct NewcArchive: Sendable {
  private var bytes: [UInt8] = []
  private var paths: Set<String> = []
  private var nextInode: UInt32 = 1

  /// The file types the archive stores, with their `st_mode` type bits.
  enum FileType: UInt32 {
    case fifo = 0o010000
    case characterDevice = 0o020000
    case directory = 0o040000
    case regular = 0o100000
    case symbolicLink = 0o120000
  }

  private static let hexDigits = Array("0123456789ABCDEF".utf8)

  /// An empty archive.
  public init() {}

  /// The number of bytes the archive holds so far (without its trailer).
  public var byteCount: Int { bytes.count }

  /// Whether `path` has an entry.
  public func contains(_ path: String) -> Bool { paths.contains(Self.normalized(path)) }

  /// Adds a directory with permission bits `mode`.
  public mutating func addDirectory(_ path: String, mode: UInt32 = 0o755) {
    add(Self.normalized(path), type: .directory, mode: mode, data: [])
  }

  /// Adds a regular file with `contents` and permission bits `mode`.
  public mutating func addFile(_ path: String, contents: [UInt8], mode: UInt32 = 0o644) {
    add(Self.normalized(path), type: .regular, mode: mode, data: contents)
  }

  /// Adds a symbolic link to `target`.
  public mutating func addSymbolicLink(_ path: String, target: String) {
    add(Self.normalized(path), type: .symbolicLink, mode: 0o777, data: Array(target.utf8))
  }

  /// Adds a character device node (e.g. `/dev/console`, 5:1).
  public mutating func addCharacterDevice(_ path: String, major: UInt32, minor: UInt32, mode: UInt32 = 0o600) {
    add(Self.normalized(path), type: .characterDevice, mode: mode, data: [], device: (major, minor))
  }

  /// Adds a named pipe.
  public mutating func addFIFO(_ path: String, mode: UInt32 = 0o644) {
    add(Self.normalized(path), type: .fifo, mode: mode, data: [])
  }

  /// The archive: its entries and the `TRAILER!!!` entry that ends it.
  public func finished() -> [UInt8] {
    var copy = self
    copy.appendEntry(name: "TRAILER!!!", mode: 0, inode: 0, links: 1, data: [], device: (0, 0))
    return copy.bytes
  }

  /// `path` without leading, trailing or doubled slashes, and without `.` components.
  static func normalized(_ path: String) -> String {
    path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
  }

  private mutating func add(
    _ path: String, type: FileType, mode: UInt32, data: [UInt8], device: (UInt32, UInt32) = (0, 0)
  ) {
    guard !path.isEmpty, !paths.contains(path) else { return }
    if let slash = path.lastIndex(of: "/") {
      let parent = String(path[..<slash])
      if !paths.contains(parent) { add(parent, type: .directory, mode: 0o755, data: []) }
    }
    paths.insert(path)
    appendEntry(
      name: path, mode: type.rawValue | (mode & 0o7777), inode: nextInode, links: type == .directory ? 2 : 1,
      data: data,
      device: device)
    nextInode += 1
  }

  private mutating func appendEntry(
    name: String, mode: UInt32, inode: UInt32, links: UInt32, data: [UInt8], device: (UInt32, UInt32)
  ) {
    let nameBytes = Array(name.utf8) + [0]
    let fields: [UInt32] = [
      inode, mode, 0, 0, links, 0, UInt32(data.count), 0, 0, device.0, device.1, UInt32(nameBytes.count), 0,
    ]
    bytes += Array("070701".utf8)
    for field in fields {
      for shift in stride(from: 28, through: 0, by: -4) {
        bytes.append(Self.hexDigits[Int((field >> UInt32(shift)) & 0xF)])
      }
    }
    bytes += nameBytes
    pad()
    bytes += data
    pad()
  }

  private mutating func pad() {
    while bytes.count % 4 != 0 { bytes.append(0) }
  }
}

import Foundation
import VMM

/// The initramfs images behind two of the four ways to start a guest (docs/linux.md):
/// `--rootfs DIR` (a directory as the root filesystem, its init as PID 1, like a system
/// container) and `--app PROGRAM` (one program with the libraries it needs, like an application
/// container). Both start `trivisor-init` (`TrivisorInitImage`, guests/linuxinit), which loads the
/// kernel modules the machine's devices need, then hands over to the init or runs the program.
///
/// What trivisor-init reads: `/trivisor/mode` (`init` or `app`), `/trivisor/argv` (the command,
/// NUL-separated) and `/trivisor/modules` (module paths in load order, NUL-separated).
public struct LinuxGuestImage: Sendable {
  /// Where trivisor-init is in the image: the kernel's `rdinit=`.
  public static let initPath = "/trivisor/init"

  /// The kernel modules to pack and load, by name (`virtio_blk`), and the set they come from.
  public var modules: [String] = []
  /// The kernel's module set; needed when `modules` is not empty.
  public var moduleSet: KernelModuleSet?
  /// The largest archive to build, in bytes (the guest must also hold it unpacked).
  public var maximumSize: Int

  /// A builder whose archives stay within `maximumSize` bytes.
  public init(maximumSize: Int) { self.maximumSize = maximumSize }

  /// The image for `--app`: `program` (a path, or a name looked up in `$PATH`) and what it needs,
  /// run with `arguments`.
  public func application(program: String, arguments: [String]) throws(GuestImageError) -> [UInt8] {
    let path = try Self.locateProgram(program)
    var archive = NewcArchive()
    try addHostFile(path, mode: 0o755, to: &archive)
    for library in try SharedLibraryResolver().files(neededBy: path) {
      try addHostFile(library, mode: 0o755, to: &archive)
    }
    archive.addDirectory("tmp", mode: 0o1777)
    return try finish(&archive, mode: "app", argv: [path] + arguments)
  }

  /// The image for `--rootfs`: every file under `directory`, with `initPath` (a path inside it,
  /// `/sbin/init` by default) as PID 1.
  public func rootFilesystem(directory: String, initPath: String) throws(GuestImageError) -> [UInt8] {
    var s = stat()
    guard stat(directory, &s) == 0, (s.st_mode & S_IFMT) == S_IFDIR else {
      throw GuestImageError("--rootfs \(directory) is not a directory")
    }
    guard initPath.hasPrefix("/") else { throw GuestImageError("--init \(initPath) must be an absolute path") }
    var l = stat()
    guard lstat(directory + initPath, &l) == 0 else {
      throw GuestImageError("\(directory) has no \(initPath) (give the init with --init PATH)")
    }
    var archive = NewcArchive()
    try addTree(directory, relative: "", to: &archive)
    return try finish(&archive, mode: "init", argv: [initPath])
  }

  /// The kernel command line for these images: the serial console, trivisor-init as the initramfs
  /// init, quiet for `--app` (the program's output alone), then `extra`.
  public static func commandLine(application: Bool, extra: String?) -> String {
    var words = ["console=ttyS0", "rdinit=\(initPath)"]
    if application { words += ["quiet", "loglevel=1", "panic=-1"] }
    if let extra, !extra.isEmpty { words.append(extra) }
    return words.joined(separator: " ")
  }

  /// `program` as an absolute host path: as given when it has a slash, else the first match in
  /// `$PATH`.
  static func locateProgram(_ program: String) throws(GuestImageError) -> String {
    guard !program.isEmpty else { throw GuestImageError("--app needs a program") }
    if program.contains("/") {
      if program.hasPrefix("/") { return program }
      return FileManager.default.currentDirectoryPath + "/" + program
    }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
      let candidate = String(directory) + "/" + program
      if access(candidate, X_OK) == 0 { return candidate.hasPrefix("/") ? candidate : "/" + candidate }
    }
    throw GuestImageError("--app \(program): no such program in $PATH")
  }

  private func finish(_ archive: inout NewcArchive, mode: String, argv: [String]) throws(GuestImageError)
    -> [UInt8]
  {
    var modulePaths: [String] = []
    if !modules.isEmpty {
      guard let moduleSet else { throw GuestImageError("the kernel's modules are needed but were not found") }
      for relative in try moduleSet.loadOrder(for: modules) {
        let guestPath = moduleSet.directory + "/" + relative
        try addHostFile(guestPath, mode: 0o644, to: &archive)
        modulePaths.append(guestPath)
      }
    }
    archive.addDirectory("dev")
    archive.addCharacterDevice("dev/console", major: 5, minor: 1)
    archive.addDirectory("proc", mode: 0o555)
    archive.addDirectory("sys", mode: 0o555)
    archive.addFile(Self.initPath, contents: TrivisorInitImage.executable, mode: 0o755)
    archive.addFile("/trivisor/mode", contents: Array(mode.utf8))
    archive.addFile("/trivisor/argv", contents: Self.nulSeparated(argv))
    archive.addFile("/trivisor/modules", contents: Self.nulSeparated(modulePaths))
    let bytes = archive.finished()
    try checkSize(bytes.count)
    return bytes
  }

  static func nulSeparated(_ items: [String]) -> [UInt8] { items.flatMap { Array($0.utf8) + [0] } }

  private func checkSize(_ count: Int) throws(GuestImageError) {
    guard count <= maximumSize else {
      throw GuestImageError(
        "the guest's initramfs would be \(count >> 20) MiB, more than \(maximumSize >> 20) MiB: give the guest more --memory"
      )
    }
  }

  /// Adds the host file `path` (following symbolic links) at the same path.
  private func addHostFile(_ path: String, mode: UInt32, to archive: inout NewcArchive) throws(GuestImageError) {
    archive.addFile(path, contents: try readHostFile(path, maxSize: maximumSize), mode: mode)
    try checkSize(archive.byteCount)
  }

  /// Adds everything under `root + relative`, sorted by name, without following symbolic links.
  private func addTree(_ root: String, relative: String, to archive: inout NewcArchive) throws(GuestImageError) {
    let directory = root + relative
    guard let handle = opendir(directory) else {
      throw GuestImageError("cannot read the directory \(directory): \(String(cString: strerror(errno)))")
    }
    var names: [String] = []
    while let entry = readdir(handle) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    closedir(handle)
    for name in names.sorted() {
      let path = relative + "/" + name
      var s = stat()
      guard lstat(root + path, &s) == 0 else { continue }
      let permissions = UInt32(s.st_mode) & 0o7777
      switch s.st_mode & S_IFMT {
      case S_IFDIR:
        archive.addDirectory(path, mode: permissions)
        try addTree(root, relative: path, to: &archive)
      case S_IFREG:
        archive.addFile(path, contents: try readHostFile(root + path, maxSize: maximumSize), mode: permissions)
      case S_IFLNK:
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(root + path, &buffer, buffer.count - 1)
        guard n >= 0 else { continue }
        archive.addSymbolicLink(
          path, target: String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
      case S_IFCHR:
        let device = UInt64(s.st_rdev)  // glibc's dev_t encoding (the major/minor macros)
        let major = UInt32(truncatingIfNeeded: (device >> 8) & 0xFFF | (device >> 32) & ~0xFFF)
        let minor = UInt32(truncatingIfNeeded: device & 0xFF | (device >> 12) & ~0xFF)
        archive.addCharacterDevice(path, major: major, minor: minor, mode: permissions)
      case S_IFIFO:
        archive.addFIFO(path, mode: permissions)
      default:
        continue  // sockets and block devices have no meaning inside the guest
      }
      try checkSize(archive.byteCount)
    }
  }
}

extension LinuxGuestImage {
  /// The modules Debian's kernel needs for the machine's devices (it builds these drivers as
  /// modules): the PIIX IDE driver and SCSI disks for `--disk`, the virtio PCI transport and the
  /// device drivers for the virtio devices, and ext4 (which also mounts ext2 and ext3) with disks.
  public static func modules(ide: Bool, virtioBlock: Bool, virtioConsole: Bool, virtioNetwork: Bool = false)
    -> [String]
  {
    var names: [String] = []
    if ide { names += ["ata_piix", "sd_mod"] }
    if virtioBlock || virtioConsole || virtioNetwork { names.append("virtio_pci") }
    if virtioBlock { names.append("virtio_blk") }
    if virtioConsole { names.append("virtio_console") }
    if virtioNetwork { names.append("virtio_net") }
    // The file system guests put on their disks. ext4 asks the crypto API for crc32c at mount
    // time (modules.softdep), which nothing loads in the guest: load the generic one first.
    if ide || virtioBlock { names += ["crc32c_generic", "ext4"] }
    return names
  }
}

/// The regular host file at `path` (at most `maxSize` bytes), its errors as one-line
/// `GuestImageError`s.
func readHostFile(_ path: String, maxSize: Int) throws(GuestImageError) -> [UInt8] {
  do { return try HostFile.readRegular(path, what: "file", maxSize: UInt64(maxSize)) } catch {
    throw GuestImageError(error.description)
  }
}

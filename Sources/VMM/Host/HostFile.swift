#if canImport(Glibc)
  import Glibc
#endif

/// A host file the user named that cannot be used, as one line for the user.
public struct HostFileError: Error, CustomStringConvertible, Sendable {
  /// The one-line message, naming the file and the problem.
  public let description: String
  /// An error with the one-line `description`.
  public init(_ description: String) { self.description = description }
}

/// Opening the files a user names (images, firmware, initrd, console outputs, statistics) without
/// ever blocking: a FIFO, a terminal or another device must give a clear error, not a VMM that
/// waits forever before its `--timeout` is even armed.
public enum HostFile {
  /// Reads a whole regular file of at most `maxSize` bytes. The file is opened with O_NONBLOCK, so
  /// a FIFO without a writer is refused instead of waited on.
  public static func readRegular(_ path: String, what: String, maxSize: UInt64 = 1 << 32) throws(HostFileError)
    -> [UInt8]
  {
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
    guard fd >= 0 else { throw HostFileError("cannot open \(what) '\(path)': \(errorText(errno))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw HostFileError("cannot stat \(what) '\(path)': \(errorText(errno))") }
    guard st.st_mode & S_IFMT == S_IFREG else {
      throw HostFileError("\(what) '\(path)' is \(kindName(st.st_mode)), not a regular file")
    }
    guard st.st_size > 0 else { throw HostFileError("\(what) '\(path)' is empty") }
    guard UInt64(st.st_size) <= maxSize else {
      throw HostFileError("\(what) '\(path)' is larger than \(maxSize >> 20) MiB")
    }
    var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
    var offset = 0
    while offset < bytes.count {
      let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, $0.count - offset) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else {
        throw HostFileError("cannot read \(what) '\(path)': \(n < 0 ? errorText(errno) : "it shrank while being read")")
      }
      offset += n
    }
    return bytes
  }

  /// Opens `path` for appending output, creating it if needed (mode 0644). Regular files and
  /// FIFOs with a reader are accepted; a FIFO without a reader, a directory or another device is
  /// refused at once. The descriptor is non-blocking (write it through `HostOutputWriter`).
  public static func openOutput(_ path: String, what: String) throws(HostFileError) -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0o644)
    guard fd >= 0 else {
      let e = errno
      if e == ENXIO { throw HostFileError("\(what) '\(path)' is a FIFO that no process is reading") }
      throw HostFileError("cannot open \(what) '\(path)': \(errorText(e))")
    }
    var st = stat()
    let kind = fstat(fd, &st) == 0 ? st.st_mode & S_IFMT : 0
    guard kind == S_IFREG || kind == S_IFIFO else {
      close(fd)
      throw HostFileError("\(what) '\(path)' is \(kindName(st.st_mode)), not a regular file or FIFO")
    }
    return fd
  }

  /// Checks, before a run, that `path` names something `writeAtomically`-style output can replace:
  /// not a directory, and in a directory that exists.
  public static func checkOutputPath(_ path: String, what: String) throws(HostFileError) {
    guard !path.isEmpty else { throw HostFileError("\(what): empty path") }
    var st = stat()
    if stat(path, &st) == 0 {
      guard st.st_mode & S_IFMT == S_IFREG else {
        throw HostFileError("\(what) '\(path)' is \(kindName(st.st_mode)), not a regular file")
      }
      guard access(path, W_OK) == 0 else { throw HostFileError("\(what) '\(path)' is not writable") }
      return
    }
    let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
    var dst = stat()
    guard stat(directory.isEmpty ? "/" : directory, &dst) == 0, dst.st_mode & S_IFMT == S_IFDIR else {
      throw HostFileError("\(what) '\(path)': directory '\(directory)' does not exist")
    }
  }

  /// Writes `bytes` to a regular file at `path` (created or truncated), with a one-line error.
  public static func write(_ bytes: [UInt8], to path: String, what: String) throws(HostFileError) {
    try checkOutputPath(path, what: what)
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0o644)
    guard fd >= 0 else { throw HostFileError("cannot write \(what) '\(path)': \(errorText(errno))") }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
      let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { throw HostFileError("cannot write \(what) '\(path)': \(errorText(errno))") }
      offset += n
    }
  }

  static func errorText(_ e: Int32) -> String { String(cString: strerror(e)) }

  static func kindName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFDIR: return "a directory"
    case S_IFIFO: return "a FIFO"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFSOCK: return "a socket"
    case S_IFLNK: return "a symbolic link"
    default: return "not a regular file"
    }
  }
}

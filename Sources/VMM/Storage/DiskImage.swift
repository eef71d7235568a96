#if canImport(Glibc)
  import Glibc
#endif

/// A raw disk image file backing a guest disk: sector `n` is bytes `512n ..< 512(n+1)` of the file.
///
/// Opened once, before the machine runs, with one-line errors for what a user can get wrong (a
/// missing or unreadable file, not a regular file, empty, locked by another VM). The file is
/// locked with `flock` for as long as the image is open: exclusively when writable, shared when
/// read-only, so two VMs cannot write one image (nor one write what another reads), as QEMU does
/// by default.
///
/// Reads and writes go straight to the file (`pread`/`pwrite`) as the guest's device commands
/// complete, so the file holds every write the guest finished; `flush()` (the guest's FLUSH CACHE)
/// and `close()` make them durable with `fsync`. Accesses outside the image are refused by the
/// caller's range check, never by the host: `read`/`write` of sectors past the end fail.
public final class DiskImage: @unchecked Sendable {
  /// Bytes per sector.
  public static let sectorSize = 512

  /// The file's path as the user gave it.
  public let path: String
  /// Whether the guest may write (false: write commands fail with the device's error).
  public let isReadOnly: Bool
  /// Whole sectors in the image (a trailing partial sector is not part of the disk).
  public let sectorCount: UInt64
  private var descriptor: Int32

  /// Opens `path` (read-write unless `readOnly`) and locks it (see above).
  public init(path: String, readOnly: Bool = false) throws(HostFileError) {
    self.path = path
    isReadOnly = readOnly
    let fd = open(path, (readOnly ? O_RDONLY : O_RDWR) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
    guard fd >= 0 else {
      throw HostFileError(
        "cannot open disk image '\(path)'\(readOnly ? "" : " for writing"): \(HostFile.errorText(errno))")
    }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
      let e = errno
      Glibc.close(fd)
      throw HostFileError("cannot stat disk image '\(path)': \(HostFile.errorText(e))")
    }
    guard st.st_mode & S_IFMT == S_IFREG else {
      Glibc.close(fd)
      throw HostFileError("disk image '\(path)' is \(HostFile.kindName(st.st_mode)), not a regular file")
    }
    guard st.st_size >= DiskImage.sectorSize else {
      Glibc.close(fd)
      throw HostFileError(
        "disk image '\(path)' is \(st.st_size) bytes: a disk needs at least one \(DiskImage.sectorSize)-byte sector")
    }
    guard flock(fd, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0 else {
      let e = errno
      Glibc.close(fd)
      if e == EWOULDBLOCK {
        throw HostFileError("disk image '\(path)' is locked by another process (another VM using it?)")
      }
      throw HostFileError("cannot lock disk image '\(path)': \(HostFile.errorText(e))")
    }
    // Back to blocking I/O: a regular file never blocks for long, and partial transfers are
    // handled below either way.
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
    descriptor = fd
    sectorCount = UInt64(st.st_size) / UInt64(DiskImage.sectorSize)
  }

  deinit { close() }

  /// Why a transfer failed (the device turns it into its error status).
  public struct IOError: Error, CustomStringConvertible {
    /// The problem in one line.
    public let description: String
  }

  /// Reads `count` sectors from `sector` into `buffer` (at least `count * 512` bytes).
  public func read(sector: UInt64, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) {
    try transfer(sector: sector, count: count, buffer.baseAddress!, write: false)
  }

  /// Writes `count` sectors from `buffer` at `sector`.
  public func write(sector: UInt64, count: Int, from buffer: UnsafeRawBufferPointer) throws(IOError) {
    guard !isReadOnly else { throw IOError(description: "disk image '\(path)' is read-only") }
    try transfer(sector: sector, count: count, UnsafeMutableRawPointer(mutating: buffer.baseAddress!), write: true)
  }

  private func transfer(sector: UInt64, count: Int, _ base: UnsafeMutableRawPointer, write: Bool) throws(IOError) {
    guard descriptor >= 0 else { throw IOError(description: "disk image '\(path)' is closed") }
    guard count >= 0, sector <= sectorCount, UInt64(count) <= sectorCount - sector else {
      throw IOError(description: "sectors \(sector)+\(count) are outside disk image '\(path)' (\(sectorCount) sectors)")
    }
    let total = count * DiskImage.sectorSize
    var done = 0
    while done < total {
      let offset = off_t(sector) * off_t(DiskImage.sectorSize) + off_t(done)
      let n =
        write
        ? pwrite(descriptor, base + done, total - done, offset) : pread(descriptor, base + done, total - done, offset)
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else {
        let reason = n < 0 ? HostFile.errorText(errno) : "the file is shorter than when it was opened"
        throw IOError(description: "cannot \(write ? "write" : "read") disk image '\(path)': \(reason)")
      }
      done += n
    }
  }

  /// Makes every completed write durable (`fsync`); true on success.
  @discardableResult public func flush() -> Bool {
    guard descriptor >= 0, !isReadOnly else { return true }
    return fsync(descriptor) == 0
  }

  /// Flushes and closes the file (and so releases its lock). Later transfers fail.
  public func close() {
    guard descriptor >= 0 else { return }
    flush()
    Glibc.close(descriptor)
    descriptor = -1
  }
}

#if canImport(Glibc)
  import Glibc
#endif

/// The translator's code buffer, W^X: one unnamed shared-memory file mapped twice, once read-write (where
/// the translator writes and patches code) and once read-execute (where the host CPU runs it), so
/// no page is ever writable and executable through the same mapping, and patching a chain needs no
/// `mprotect`. x86-64 keeps instruction fetch coherent with stores (also through another mapping of
/// the same physical page), so no cache flush is needed; other hosts would need one.
///
/// Code is bump-allocated; when the buffer is full the code cache flushes everything and starts
/// over (`reset`), as QEMU's TCG does.
package final class ExecutableMemory {
  /// Bytes in the buffer.
  package let capacity: Int
  /// Where the translator writes.
  package let writable: UnsafeMutableRawPointer
  /// Where the code runs (the same bytes).
  package let executable: UnsafeRawPointer
  /// Bytes used so far.
  package private(set) var used = 0

  /// A buffer of `capacity` bytes (rounded up to pages). Fails with a one-line reason when the host
  /// refuses the mappings (no memfd, or a policy forbidding executable shared mappings).
  package init(capacity: Int) throws(TranslatorError) {
    let size = (capacity + 4095) & ~4095
    self.capacity = size
    let fd = try Self.anonymousFile()
    defer { close(fd) }
    guard ftruncate(fd, off_t(size)) == 0 else {
      throw TranslatorError("cannot size the \(size >> 20) MiB code buffer: errno \(errno)")
    }
    guard let w = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), w != MAP_FAILED else {
      throw TranslatorError("cannot map the code buffer for writing: errno \(errno)")
    }
    guard let x = mmap(nil, size, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0), x != MAP_FAILED else {
      munmap(w, size)
      throw TranslatorError("cannot map the code buffer for execution: errno \(errno)")
    }
    writable = w
    executable = UnsafeRawPointer(x)
  }

  /// A file with no name (created in /dev/shm, or /tmp, and unlinked at once) to map twice.
  private static func anonymousFile() throws(TranslatorError) -> Int32 {
    for directory in ["/dev/shm", "/tmp"] {
      var template = Array("\(directory)/trivisor-dbt-XXXXXX".utf8CString)
      let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
      if fd >= 0 {
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return fd
      }
    }
    throw TranslatorError("cannot create the code buffer's backing file in /dev/shm or /tmp: errno \(errno)")
  }

  deinit {
    munmap(writable, capacity)
    munmap(UnsafeMutableRawPointer(mutating: executable), capacity)
  }

  /// Copies `code` in (16-byte aligned) and returns its offset, or nil when it does not fit.
  package func append(_ code: [UInt8]) -> Int? {
    let start = (used + 15) & ~15
    guard start + code.count <= capacity else { return nil }
    code.withUnsafeBytes { (writable + start).copyMemory(from: $0.baseAddress!, byteCount: code.count) }
    used = start + code.count
    return start
  }

  /// Overwrites `bytes` at `offset` (patching a jump of code already in the buffer).
  package func patch(at offset: Int, _ bytes: [UInt8]) {
    precondition(offset >= 0 && offset + bytes.count <= used)
    bytes.withUnsafeBytes { (writable + offset).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
  }

  /// Forgets every translation: the buffer is empty again.
  package func reset() { used = 0 }

  /// The executable address of `offset`.
  package func entry(_ offset: Int) -> UnsafeRawPointer { executable + offset }
}

/// A translator failure with a one-line reason.
package struct TranslatorError: Error, CustomStringConvertible {
  package var description: String
  package init(_ description: String) { self.description = description }
}

import ArgumentParser
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// Prints a one-line error for the user to stderr and returns the exit code to throw: bad input
/// and usage errors end with status 2 (docs/exit-status.md).
func usageFailure(_ message: String) -> ExitCode {
  printError("trivisor: error: \(message)")
  return ExitCode(ExitStatus.usage)
}

/// Writes a line to stderr.
func printError(_ line: String) {
  var text = line
  if !text.hasSuffix("\n") { text += "\n" }
  var bytes = Array(text.utf8)
  var offset = 0
  while offset < bytes.count {
    let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
    if n < 0 && errno == EINTR { continue }
    if n <= 0 { return }
    offset += n
  }
}

/// Reads a whole file for the user, with one-line errors naming the problem.
func readUserFile(_ path: String, what: String) throws(ExitCodeError) -> [UInt8] {
  let fd = open(path, O_RDONLY | O_CLOEXEC)
  guard fd >= 0 else {
    throw ExitCodeError("cannot open \(what) '\(path)': \(String(cString: strerror(errno)))")
  }
  defer { close(fd) }
  var st = stat()
  guard fstat(fd, &st) == 0 else { throw ExitCodeError("cannot stat \(what) '\(path)'") }
  guard (st.st_mode & S_IFMT) == S_IFREG else { throw ExitCodeError("\(what) '\(path)' is not a regular file") }
  guard st.st_size > 0 else { throw ExitCodeError("\(what) '\(path)' is empty") }
  guard st.st_size <= 1 << 32 else { throw ExitCodeError("\(what) '\(path)' is larger than 4 GiB") }
  var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
  var offset = 0
  while offset < bytes.count {
    let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, $0.count - offset) }
    if n < 0 && errno == EINTR { continue }
    guard n > 0 else { throw ExitCodeError("cannot read \(what) '\(path)'") }
    offset += n
  }
  return bytes
}

/// Parses an address or size written in decimal or `0x` hexadecimal.
func parseNumber(_ text: String) -> UInt64? {
  let t = text.lowercased().replacingOccurrences(of: "_", with: "")
  if t.hasPrefix("0x") { return UInt64(t.dropFirst(2), radix: 16) }
  return UInt64(t)
}

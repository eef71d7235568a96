import ArgumentParser
import Launcher
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// Prints a one-line error for the user to stderr and returns the exit code to throw: bad input
/// and usage errors end with status 2 (docs/exit-status.md).
func usageFailure(_ message: String) -> ExitCode {
  printError("trivisor: error: \(oneLine(message))")
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

/// Reads a whole regular file for the user (never blocks on a FIFO or device), with one-line
/// errors naming the problem.
func readUserFile(_ path: String, what: String) throws(UsageError) -> [UInt8] {
  try hostFile { () throws(HostFileError) in try HostFile.readRegular(path, what: what) }
}

/// Runs a host-file operation, turning its error into a usage failure (status 2).
func hostFile<T>(_ body: () throws(HostFileError) -> T) throws(UsageError) -> T {
  do throws(HostFileError) {
    return try body()
  } catch {
    throw UsageError(error.description)
  }
}

/// `text` on one line: newlines, tabs and other control characters in user-supplied values are
/// shown escaped, so an error stays one line whatever the user typed.
func oneLine(_ text: String) -> String {
  var out = ""
  for scalar in text.unicodeScalars {
    switch scalar {
    case "\n": out += "\\n"
    case "\r": out += "\\r"
    case "\t": out += "\\t"
    default:
      if scalar.value < 0x20 || scalar.value == 0x7F {
        out += "\\u{" + String(scalar.value, radix: 16) + "}"
      } else {
        out.unicodeScalars.append(scalar)
      }
    }
  }
  return out
}

/// Parses an address or size written in decimal or `0x` hexadecimal.
func parseNumber(_ text: String) -> UInt64? {
  let t = text.lowercased().replacingOccurrences(of: "_", with: "")
  if t.hasPrefix("0x") { return UInt64(t.dropFirst(2), radix: 16) }
  return UInt64(t)
}

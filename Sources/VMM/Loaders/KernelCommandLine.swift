/// The kernel command line at `BootLayout.commandLine`.
enum KernelCommandLine {
  /// Writes `text` NUL-terminated and returns its address. `limit` is the kernel's maximum length
  /// (excluding the NUL), when it has one.
  static func write(_ text: String, into memory: GuestMemory, limit: UInt64?) throws(LoaderError) -> UInt64 {
    let bytes = Array(text.utf8)
    let room = UInt64(BootLayout.commandLine.count) - 1
    let maximum = min(room, limit ?? room)
    guard UInt64(bytes.count) <= maximum else {
      throw LoaderError("command line is \(bytes.count) bytes long; at most \(maximum) fit")
    }
    guard !bytes.contains(0) else { throw LoaderError("command line contains a NUL byte") }
    try guestWrite(memory, BootLayout.commandLine.lowerBound, bytes + [0], "the command line")
    return BootLayout.commandLine.lowerBound
  }
}

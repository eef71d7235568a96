import Foundation

/// Finding and running host tools (QEMU, llvm-objdump) with a timeout.
enum Tools {
  struct Result {
    var status: Int32
    var output: String
    var timedOut: Bool
  }

  /// The tool next to the running Swift toolchain, else on PATH, else nil.
  static func find(_ name: String) -> String? {
    var directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
    directories.insert(contentsOf: ["/opt/swift/usr/bin", "/usr/bin", "/usr/local/bin"], at: 0)
    for directory in directories {
      let path = directory + "/" + name
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
  }

  /// Runs `path` with `arguments`, collecting stdout and stderr; killed after `timeout` seconds.
  static func run(_ path: String, _ arguments: [String], timeout: TimeInterval) throws -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = DispatchTime.now() + timeout
    let timer = DispatchSource.makeTimerSource()
    let killed = Flag()
    timer.schedule(deadline: deadline)
    timer.setEventHandler {
      killed.set()
      process.terminate()
    }
    timer.resume()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    timer.cancel()
    return Result(
      status: process.terminationStatus, output: String(decoding: data, as: UTF8.self), timedOut: killed.value)
  }
}

/// A thread-safe one-way flag.
final class Flag: @unchecked Sendable {
  private let lock = NSLock()
  private var raised = false
  func set() { lock.withLock { raised = true } }
  var value: Bool { lock.withLock { raised } }
}

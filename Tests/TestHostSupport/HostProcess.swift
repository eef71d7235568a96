import Foundation

/// Running host tools (QEMU, llvm-objdump) with a timeout.
public enum HostProcess {
  /// How a run ended.
  public struct Result: Sendable {
    /// The exit status (or the signal that ended it).
    public var status: Int32
    /// Standard output and error, interleaved.
    public var output: String
    /// The run was killed at its timeout.
    public var timedOut: Bool
  }

  /// Runs `path` with `arguments`, collecting stdout and stderr; killed after `timeout` seconds.
  public static func run(_ path: String, _ arguments: [String], timeout: TimeInterval) throws -> Result {
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
private final class Flag: @unchecked Sendable {
  private let lock = NSLock()
  private var raised = false
  func set() { lock.withLock { raised = true } }
  var value: Bool { lock.withLock { raised } }
}

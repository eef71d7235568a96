import Benchmarks
import Foundation
import GuestImages
import Launcher

/// The reference kernel under QEMU (`--peers`): the same image booted through its Multiboot v1
/// entry by `qemu-system-x86_64 -kernel`, with the same command line, as a peer measured in the
/// same `trivisor bench` run.
struct QEMUPeer {
  /// `tcg` (QEMU's binary translator) or `kvm`.
  let accelerator: String

  var name: String { "qemu-\(accelerator)" }

  /// The QEMU binary on PATH, or nil.
  static func executable() -> String? { PeerProcess.find("qemu-system-x86_64") }

  /// Runs the kernel and returns its console output and wall time; throws a one-line reason when
  /// QEMU cannot be started or the run times out.
  func run(
    qemu: String, commandLine: String, timeoutSeconds: Double, onLine: @escaping @Sendable (String) -> Void
  ) throws(UsageError) -> (output: String, wallSeconds: Double, status: Int32) {
    guard let kernel = GuestImages.referenceKernelURL else {
      throw UsageError("the reference kernel resource is missing")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: qemu)
    process.arguments = [
      "-accel", accelerator, "-m", "64", "-kernel", kernel.path, "-append", commandLine, "-serial", "stdio",
      "-display", "none", "-monitor", "none", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    process.standardInput = FileHandle.nullDevice
    let collector = OutputCollector(onLine: onLine)
    stdout.fileHandleForReading.readabilityHandler = { handle in
      let data = handle.availableData
      if !data.isEmpty { collector.append(data) }
    }
    let start = Date()
    do { try process.run() } catch { throw UsageError("cannot start \(qemu): \(error.localizedDescription)") }
    let deadline = start.addingTimeInterval(timeoutSeconds)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    let timedOut = process.isRunning
    if timedOut {
      process.terminate()
      process.waitUntilExit()
    }
    process.waitUntilExit()
    stdout.fileHandleForReading.readabilityHandler = nil
    collector.append(stdout.fileHandleForReading.readDataToEndOfFile())
    let wall = Date().timeIntervalSince(start)
    if timedOut { throw UsageError("\(name) did not finish within \(Int(timeoutSeconds)) s") }
    let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let output = collector.text
    if !output.contains("BENCH"), let first = errors.split(separator: "\n").first {
      throw UsageError("\(name) failed (status \(process.terminationStatus)): \(first)")
    }
    return (output, wall, process.terminationStatus)
  }
}

/// Thread-safe accumulation of a child's output, with complete lines passed on.
private final class OutputCollector: @unchecked Sendable {
  private let lock = NSLock()
  private var bytes: [UInt8] = []
  private var lineStart = 0
  private let onLine: @Sendable (String) -> Void
  init(onLine: @escaping @Sendable (String) -> Void) { self.onLine = onLine }

  func append(_ data: Data) {
    lock.lock()
    bytes += data
    var lines: [String] = []
    while let newline = bytes[lineStart...].firstIndex(of: 10) {
      lines.append(String(decoding: bytes[lineStart..<newline], as: UTF8.self))
      lineStart = newline + 1
    }
    lock.unlock()
    lines.forEach(onLine)
  }

  var text: String {
    lock.lock()
    defer { lock.unlock() }
    return String(decoding: bytes, as: UTF8.self)
  }
}

import Foundation
import Testing
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// `trivisor run` as a user runs it, a separate process, against hostile host I/O: FIFOs where
/// files are expected, a stdout whose reader went away or stopped reading, signals from outside,
/// malformed option values. Each must end promptly with its documented status and one line.
/// Nothing here measures time: a watchdog only turns a hang into a failure.
@Suite(.enabled(if: TrivisorBinary.path != nil, "the trivisor executable was not built next to the tests"))
struct HostIOTests {
  @Test(arguments: [
    ["run", "FIFO"], ["run", "--bios", "FIFO"], ["run", "--initrd", "FIFO", "/bin/true"],
    ["run", "--serial", "file:FIFO"], ["run", "--debugcon", "file:FIFO"],
  ])
  func aFIFOIsRefusedAtOnce(_ arguments: [String]) throws {
    let fifo = try TemporaryFIFO()
    let run = try TrivisorBinary.run(arguments.map { $0.replacingOccurrences(of: "FIFO", with: fifo.path) })
    #expect(run.status == ExitStatus.usage)
    #expect(run.stderrLines.count == 1 && run.stderr.contains(fifo.path), "\(run.stderr)")
  }

  @Test(arguments: [
    (["run", "--memory", "-5"], "memory"), (["run", "--memory", "1M\n"], "1M\\n"),
    (["run", "--stats-json", "/tmp"], "directory"), (["run", "--serial", "file:/nonexistent/dir/out"], "nonexistent"),
    (["run", "--debugcon", "tcp:1"], "debugcon"), (["run", "--irqchip", "both"], "irqchip"),
    (["run", "--timeout", "-1"], "timeout"), (["run", "/"], "directory"), (["run", "--cpu", "z80"], "--cpu"),
    (["run", "--numa", "0"], "--numa"), (["run", "--numa", "2", "--irqchip", "kernel"], "--numa"),
    (["run", "--disk", "/nonexistent/disk.img"], "/nonexistent/disk.img"), (["run", "--disk", "/tmp"], "/tmp"),
    (["run", "--virtio-blk", ",readonly"], "--virtio-blk"),
    (["run", "--net", "tap"], "--net"), (["run", "--net", "user,hostfwd=tcp::0-:22"], "hostfwd"),
    (["run", "--net", "user,hostfwd=tcp:192.0.2.1:2222-:22"], "cannot listen on 192.0.2.1:2222"),
    (["run", "--disk", "a", "--disk", "b", "--disk", "c", "--disk", "d", "--disk", "e"], "at most 4"),
    (["run", "--rootfs", "/nonexistent/root"], "/nonexistent/root"),
    (["run", "--rootfs", "/proc/self/fd/0"], "--rootfs"),
    (["run", "--rootfs", "/", "--init", "/nonexistent-init"], "/nonexistent-init"),
    (["run", "--init", "/sbin/init"], "--init needs --rootfs"), (["run", "--app", "/etc/hostname"], "/etc/hostname"),
    (["run", "--app", "no-such-program-xyz"], "no-such-program-xyz"),
    (["run", "--app", "true", "--rootfs", "/"], "--app"),
    (["run", "--app", "true", "--demo"], "--app"), (["run", "--", "x"], "--app"),
    (["run", "--app", "true", "--kernel", "/etc/hostname"], "/etc/hostname"),
  ])
  func badValuesAreOneLineAndStatus2(_ arguments: [String], _ mentions: String) throws {
    let run = try TrivisorBinary.run(arguments)
    #expect(run.status == ExitStatus.usage, "\(arguments): \(run.stderr)")
    #expect(run.stderrLines.count == 1, "\(arguments): \(run.stderr)")
    #expect(run.stderr.contains(mentions), "\(arguments): \(run.stderr)")
  }

  @Test(arguments: [["--disk", "IMG", "--disk", "IMG"], ["--disk", "IMG", "--virtio-blk", "IMG,readonly"]])
  func oneImageTwiceIsRefused(_ arguments: [String]) throws {
    let path = NSTemporaryDirectory() + "trivisor-cli-disk-\(UUID().uuidString).img"
    try Data(count: 4096).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let run = try TrivisorBinary.run(["run"] + arguments.map { $0.replacingOccurrences(of: "IMG", with: path) })
    #expect(run.status == ExitStatus.usage, "\(run.stderr)")
    #expect(run.stderrLines.count == 1 && run.stderr.contains("given twice"), "\(run.stderr)")
  }

  @Test func anImageAnotherProcessHoldsIsRefused() throws {
    let path = NSTemporaryDirectory() + "trivisor-cli-disk-\(UUID().uuidString).img"
    try Data(count: 4096).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let holder = try DiskImage(path: path)  // this test process holds the lock
    let run = try TrivisorBinary.run(["run", "--virtio-blk", path])
    holder.close()
    #expect(run.status == ExitStatus.usage, "\(run.stderr)")
    #expect(run.stderrLines.count == 1 && run.stderr.contains("locked by another process"), "\(run.stderr)")
  }

  @Test func aForwardToAPortInUseIsOneLineAndStatus2() throws {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #expect(listener >= 0)
    defer { close(listener) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(listener, $0, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, $0, &length) == 0
      }
    }
    #expect(bound)
    let port = UInt16(bigEndian: address.sin_port)
    let run = try TrivisorBinary.run(["run", "--net", "user,hostfwd=tcp:127.0.0.1:\(port)-:22"])
    #expect(run.status == ExitStatus.usage, "\(run.stderr)")
    #expect(run.stderrLines.count == 1, "\(run.stderr)")
    #expect(run.stderr.contains("127.0.0.1:\(port)") && run.stderr.contains("in use"), "\(run.stderr)")
  }

  @Test func aClosedStdoutEndsTheRunWithStatus16() throws {
    let image = try SpamGuest()
    let run = try TrivisorBinary.run(
      ["run", "--engine", "interp", "--flat-address", "0x100000", "--timeout", "600", image.path],
      stdout: .closedPipe)
    #expect(run.status == ExitStatus.outputClosed, "\(run.stderr)")
    #expect(run.stderr.contains("broken pipe"))
  }

  @Test func aStalledNonBlockingStdoutCannotHoldTheTimeoutBack() throws {
    let image = try SpamGuest()
    let run = try TrivisorBinary.run(
      ["run", "--engine", "interp", "--flat-address", "0x100000", "--timeout", "1", "--stats", image.path],
      stdout: .stalledNonBlockingPipe)
    #expect(run.status == ExitStatus.timeout, "\(run.stderr)")
    // Whether output was dropped depends on how much the guest wrote in that second (under load
    // it can be less than the pipe and the queue hold); HostOutputWriterTests covers dropping.
  }

  @Test(arguments: [SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM])
  func stoppingSignalsEndTheRunWithStatus12(_ signal: Int32) throws {
    let image = try SpamGuest()
    let run = try TrivisorBinary.run(
      ["run", "--engine", "interp", "--flat-address", "0x100000", "--timeout", "600", image.path],
      stdout: .readPipe, signalAfterOutput: signal)
    #expect(run.status == ExitStatus.hostSignal, "\(run.stderr)")
    #expect(!run.stderr.contains("crashed"))
  }
}

/// A raw 64-bit guest that writes 'x' to COM1 forever: `mov dx, 0x3f8; l: mov al, 'x'; out dx, al;
/// jmp l`.
struct SpamGuest {
  let path: String
  init() throws {
    path = NSTemporaryDirectory() + "trivisor-spam-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).bin"
    try Data([0x66, 0xBA, 0xF8, 0x03, 0xB0, 0x78, 0xEE, 0xEB, 0xFB]).write(to: URL(fileURLWithPath: path))
  }
}

/// A FIFO in the temporary directory, removed when the test ends.
final class TemporaryFIFO {
  let path: String
  init() throws {
    path = NSTemporaryDirectory() + "trivisor-fifo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    guard mkfifo(path, 0o600) == 0 else { throw POSIXError(.EEXIST) }
  }
  deinit { unlink(path) }
}

/// The `trivisor` executable built beside the test bundle, run as a child process.
enum TrivisorBinary {
  static let path: String? = {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for directory in [bundle, bundle.deletingLastPathComponent()] {
      let candidate = directory.appendingPathComponent("trivisor").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }()

  enum Stdout {
    /// Read and thrown away.
    case readPipe
    /// A pipe whose read end is closed before the child starts.
    case closedPipe
    /// A non-blocking pipe nobody reads.
    case stalledNonBlockingPipe
  }

  struct Result {
    var status: Int32
    var stderr: String
    var stderrLines: [Substring] { stderr.split(separator: "\n") }
    /// What the child wrote to stdout (with `.readPipe`; empty otherwise).
    var stdout = ""
  }

  /// Runs trivisor with `arguments`; with `signalAfterOutput`, sends that signal once the guest's
  /// first output byte has arrived (proof the guest runs). A run that takes longer than the
  /// watchdog is killed and reported as a failure.
  static func run(
    _ arguments: [String], stdout: Stdout = .readPipe, signalAfterOutput: Int32? = nil, watchdogSeconds: Double = 120
  ) throws -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path!)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    let errPipe = Pipe()
    process.standardError = errPipe
    let outPipe = Pipe()
    process.standardOutput = outPipe
    switch stdout {
    case .readPipe: break
    case .closedPipe: try outPipe.fileHandleForReading.close()
    case .stalledNonBlockingPipe:
      let fd = outPipe.fileHandleForWriting.fileDescriptor
      _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }
    try process.run()
    try? outPipe.fileHandleForWriting.close()
    let errorText = Collector(errPipe.fileHandleForReading)
    let outputText = OutputText()
    let outputReader: Thread? =
      stdout == .readPipe
      ? Thread {
        let handle = outPipe.fileHandleForReading
        var sent = false
        while true {
          let data = handle.availableData
          if data.isEmpty {
            outputText.finish()
            return
          }
          outputText.append(data)
          if !sent, let s = signalAfterOutput {
            sent = true
            kill(process.processIdentifier, s)
          }
        }
      } : nil
    outputReader?.start()
    let deadline = Date().addingTimeInterval(watchdogSeconds)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
      kill(process.processIdentifier, SIGKILL)
      Issue.record("trivisor \(arguments) did not end within the \(watchdogSeconds) s watchdog")
    }
    process.waitUntilExit()
    // Death by a signal shows as 128 + the signal, as a shell reports it.
    let status =
      process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    return Result(status: status, stderr: errorText.text(), stdout: stdout == .readPipe ? outputText.text() : "")
  }
}

/// Stdout read by `TrivisorBinary.run`'s reader thread, complete once the pipe ends.
final class OutputText: @unchecked Sendable {
  private let lock = NSLock()
  private var data = Data()
  private let done = DispatchSemaphore(value: 0)
  /// More bytes read.
  func append(_ more: Data) {
    lock.lock()
    data.append(more)
    lock.unlock()
  }
  /// The pipe ended.
  func finish() { done.signal() }
  /// Everything read, after the pipe ended (or 10 s: a child's child may hold it open).
  func text() -> String {
    _ = done.wait(timeout: .now() + 10)
    lock.lock()
    defer { lock.unlock() }
    return String(decoding: data, as: UTF8.self)
  }
}

/// Reads a pipe to its end on a thread of its own.
final class Collector: @unchecked Sendable {
  private var data = Data()
  private let done = DispatchSemaphore(value: 0)
  init(_ handle: FileHandle) {
    Thread { [self] in
      data = handle.readDataToEndOfFile()
      done.signal()
    }.start()
  }
  func text() -> String {
    done.wait()
    return String(decoding: data, as: UTF8.self)
  }
}

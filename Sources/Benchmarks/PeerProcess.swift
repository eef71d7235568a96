import Foundation

/// Runs a peer emulator (Bochs, QEMU) as a child process with a deadline: its standard output and
/// error go to files (a chatty child can never block on a full pipe), its standard input is the
/// given text (then end of file), and its wall time is measured from start to exit.
public enum PeerProcess {
  /// How a child ended.
  public struct Finished: Sendable {
    /// The exit status, or the signal number when `signaled`.
    public var status: Int32
    public var signaled: Bool
    public var standardOutput: String
    public var standardError: String
    /// From `Process.run` to the child's exit.
    public var wallSeconds: Double
  }

  /// The program called `name` on PATH (else /usr/bin, /usr/local/bin), or nil.
  public static func find(_ name: String) -> String? {
    var directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
    directories += ["/usr/bin", "/usr/local/bin"]
    for directory in directories where !directory.isEmpty {
      let path = directory + "/" + name
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
  }

  /// Runs `executable` with `arguments` in `directory`; throws when it cannot start or does not
  /// exit within `timeoutSeconds` (it is then terminated, and killed if it ignores that).
  public static func run(
    _ executable: String, _ arguments: [String], standardInput: String = "", environment: [String: String] = [:],
    directory: URL, timeoutSeconds: Double, what: String
  ) throws(ModeLoopError) -> Finished {
    let outURL = directory.appendingPathComponent("stdout.txt")
    let errURL = directory.appendingPathComponent("stderr.txt")
    guard FileManager.default.createFile(atPath: outURL.path, contents: nil),
      FileManager.default.createFile(atPath: errURL.path, contents: nil),
      let out = try? FileHandle(forWritingTo: outURL), let err = try? FileHandle(forWritingTo: errURL)
    else { throw ModeLoopError("\(what): cannot create output files in \(directory.path)") }
    defer {
      try? out.close()
      try? err.close()
    }
    let input = Pipe()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = directory
    // The program's own directory first on PATH: Debian's `bochs` is a script that runs `bochs-bin`.
    var childEnvironment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let programDirectory = URL(fileURLWithPath: executable).deletingLastPathComponent().path
    childEnvironment["PATH"] = [programDirectory, childEnvironment["PATH"]].compactMap { $0 }.joined(separator: ":")
    process.environment = childEnvironment
    process.standardInput = input
    process.standardOutput = out
    process.standardError = err
    // The input goes into the pipe before the child starts (it is far smaller than a pipe's
    // buffer): writing to a child that already exited would raise SIGPIPE here.
    input.fileHandleForWriting.write(Data(standardInput.utf8))
    try? input.fileHandleForWriting.close()
    let exited = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in exited.signal() }
    let start = DispatchTime.now().uptimeNanoseconds
    do { try process.run() } catch {
      throw ModeLoopError("\(what): cannot start \(executable): \(error.localizedDescription)")
    }
    if exited.wait(timeout: .now() + timeoutSeconds) == .timedOut {
      process.terminate()
      if exited.wait(timeout: .now() + 2) == .timedOut {
        kill(process.processIdentifier, SIGKILL)
        exited.wait()
      }
      throw ModeLoopError("\(what) did not finish within \(shortNumber(timeoutSeconds)) s (terminated)")
    }
    let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let read = { (url: URL) in (try? String(contentsOf: url, encoding: .utf8)) ?? "" }
    return Finished(
      status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
      standardOutput: read(outURL), standardError: read(errURL), wallSeconds: wall)
  }

  /// A fresh temporary directory for one peer run; the caller removes it.
  public static func temporaryDirectory(_ prefix: String) throws(ModeLoopError) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
      throw ModeLoopError("cannot create a temporary directory: \(error.localizedDescription)")
    }
    return url
  }

  static func shortNumber(_ s: Double) -> String {
    String(format: "%g", s)
  }
}

/// A failure to measure one cell of the per-mode table, in one line.
public struct ModeLoopError: Error, CustomStringConvertible, Sendable {
  public let description: String
  public init(_ description: String) { self.description = description }
}

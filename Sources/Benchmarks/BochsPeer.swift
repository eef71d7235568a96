import Foundation

/// Debian's Bochs (`bochs`, `bochs-term`, `bochsbios`, `vgabios`) as a peer: boots the per-mode
/// loop from a 1.44 MB floppy through its own BIOS, started with its internal debugger's `c`
/// (continue) command, the `term` display library (it runs headless) and `clock: sync=none` (as
/// fast as it can, no pacing to real time). The guest ends Bochs by writing "Shutdown" to port
/// 0x8900, which Bochs reports as a panic and then exits: that message is how a run is known to
/// have reached the end of the loop.
public struct BochsPeer: Sendable {
  /// The `bochs` program.
  public let executable: String
  /// The system BIOS image (`romimage`).
  public let biosImage: String
  /// The VGA BIOS image (`vgaromimage`).
  public let vgaBiosImage: String

  /// What Bochs prints when the guest wrote "Shutdown" to port 0x8900.
  public static let shutdownMessage = "Shutdown port: shutdown requested"
  public static let biosCandidates = ["/usr/share/bochs/BIOS-bochs-latest"]
  public static let vgaBiosCandidates = ["/usr/share/vgabios/vgabios.bin", "/usr/share/bochs/VGABIOS-lgpl-latest"]

  public init(executable: String, biosImage: String, vgaBiosImage: String) {
    self.executable = executable
    self.biosImage = biosImage
    self.vgaBiosImage = vgaBiosImage
  }

  /// Bochs and its ROM images as installed, or why not (a reason for the report, not an error).
  public static func locate() -> Result<BochsPeer, ModeLoopError> {
    guard let bochs = PeerProcess.find("bochs") else {
      return .failure(ModeLoopError("not installed (Debian: apt-get install bochs bochs-term bochsbios vgabios)"))
    }
    let exists = { (path: String) in FileManager.default.fileExists(atPath: path) }
    guard let bios = biosCandidates.first(where: exists) else {
      return .failure(ModeLoopError("BIOS image not installed (Debian: apt-get install bochsbios)"))
    }
    guard let vga = vgaBiosCandidates.first(where: exists) else {
      return .failure(ModeLoopError("VGA BIOS image not installed (Debian: apt-get install vgabios)"))
    }
    return .success(BochsPeer(executable: bochs, biosImage: bios, vgaBiosImage: vga))
  }

  /// The bochsrc that boots `floppy`.
  public func configuration(floppy: String) -> String {
    """
    # Written by trivisor bench cpu --peers: boot the loop from the floppy as fast as possible.
    megs: 32
    romimage: file=\(biosImage)
    vgaromimage: file=\(vgaBiosImage)
    floppya: 1_44=\(floppy), status=inserted
    boot: floppy
    clock: sync=none, time0=local
    display_library: term
    speaker: enabled=0
    sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy
    log: -
    panic: action=fatal
    error: action=report
    info: action=ignore
    debug: action=ignore

    """
  }

  /// Boots `floppyImage` and returns the wall time from process start to exit; throws when Bochs
  /// did not end through the guest's shutdown request within `timeoutSeconds`.
  public func run(floppyImage: [UInt8], timeoutSeconds: Double) throws(ModeLoopError) -> Double {
    let directory = try PeerProcess.temporaryDirectory("trivisor-bochs")
    defer { try? FileManager.default.removeItem(at: directory) }
    let floppy = directory.appendingPathComponent("loop.img")
    let rc = directory.appendingPathComponent("bochsrc")
    do {
      try Data(floppyImage).write(to: floppy)
      try configuration(floppy: floppy.path).write(to: rc, atomically: true, encoding: .utf8)
    } catch { throw ModeLoopError("bochs: cannot write its files: \(error.localizedDescription)") }
    let environment = ProcessInfo.processInfo.environment["TERM"].map { _ in [:] } ?? ["TERM": "xterm"]
    let finished = try PeerProcess.run(
      executable, ["-q", "-f", rc.path], standardInput: "c\n", environment: environment, directory: directory,
      timeoutSeconds: timeoutSeconds, what: "bochs")
    let output = finished.standardError + finished.standardOutput
    guard output.contains(Self.shutdownMessage) else {
      throw ModeLoopError(
        "bochs exited (status \(finished.status)) before the guest's shutdown: " + Self.reason(output))
    }
    return finished.wallSeconds
  }

  /// The first panic or error line Bochs printed, else its last line.
  static func reason(_ output: String) -> String {
    let lines = output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
    let line =
      lines.first(where: { $0.contains(">>PANIC<<") || $0.contains("e[") && $0.contains("]") })
      ?? lines.last(where: { !$0.isEmpty }) ?? "no output"
    return String(line.prefix(200))
  }

  /// `bochs --help`'s version line, e.g. "Bochs x86 Emulator 2.7".
  public func version() -> String? {
    guard let directory = try? PeerProcess.temporaryDirectory("trivisor-bochs-version") else { return nil }
    defer { try? FileManager.default.removeItem(at: directory) }
    guard
      let finished = try? PeerProcess.run(
        executable, ["--help"], directory: directory, timeoutSeconds: 10, what: "bochs --help")
    else { return nil }
    let text = finished.standardOutput + finished.standardError
    return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
      .first { $0.hasPrefix("Bochs x86 Emulator") }
  }
}

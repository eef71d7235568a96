import Foundation

/// QEMU's TCG (`qemu-system-x86_64 -accel tcg`) as a peer of the per-mode loop: boots the same
/// floppy image as Bochs through its own firmware (SeaBIOS), with an isa-debug-exit device at port
/// 0xF4, where the guest's final write ends QEMU with status 1.
public struct QEMUFloppyPeer: Sendable {
  public let executable: String

  public init(executable: String) { self.executable = executable }

  /// QEMU as installed, or why not.
  public static func locate() -> Result<QEMUFloppyPeer, ModeLoopError> {
    guard let qemu = PeerProcess.find("qemu-system-x86_64") else {
      return .failure(ModeLoopError("not installed (Debian: apt-get install qemu-system-x86)"))
    }
    return .success(QEMUFloppyPeer(executable: qemu))
  }

  /// The arguments that boot `floppy`.
  public static func arguments(floppy: String) -> [String] {
    [
      "-accel", "tcg", "-m", "32", "-drive", "file=\(floppy),if=floppy,format=raw", "-boot", "a", "-display", "none",
      "-serial", "none", "-monitor", "none", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
  }

  /// Boots `floppyImage` and returns the wall time from process start to exit.
  public func run(floppyImage: [UInt8], timeoutSeconds: Double) throws(ModeLoopError) -> Double {
    let directory = try PeerProcess.temporaryDirectory("trivisor-qemu")
    defer { try? FileManager.default.removeItem(at: directory) }
    let floppy = directory.appendingPathComponent("loop.img")
    do { try Data(floppyImage).write(to: floppy) } catch {
      throw ModeLoopError("qemu-tcg: cannot write the floppy image: \(error.localizedDescription)")
    }
    let finished = try PeerProcess.run(
      executable, Self.arguments(floppy: floppy.path), directory: directory, timeoutSeconds: timeoutSeconds,
      what: "qemu-tcg")
    guard finished.status == 1 && !finished.signaled else {
      let first = finished.standardError.split(whereSeparator: \.isNewline).first.map(String.init) ?? "no message"
      throw ModeLoopError("qemu-tcg exited with status \(finished.status), not isa-debug-exit's 1: \(first)")
    }
    return finished.wallSeconds
  }

  /// `qemu-system-x86_64 --version`'s first line.
  public func version() -> String? {
    guard let directory = try? PeerProcess.temporaryDirectory("trivisor-qemu-version") else { return nil }
    defer { try? FileManager.default.removeItem(at: directory) }
    let finished = try? PeerProcess.run(
      executable, ["--version"], directory: directory, timeoutSeconds: 10, what: "qemu --version")
    return finished?.standardOutput.split(whereSeparator: \.isNewline).first.map(String.init)
  }
}

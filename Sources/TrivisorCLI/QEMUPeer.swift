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

  /// Runs the kernel and returns its console output and wall time (through `PeerProcess`, which
  /// enforces the deadline); `onLine` gets each line of the console once QEMU has exited. Throws a
  /// one-line reason when QEMU cannot be started, fails or times out.
  func run(
    qemu: String, commandLine: String, timeoutSeconds: Double, onLine: @escaping @Sendable (String) -> Void
  ) throws(UsageError) -> (output: String, wallSeconds: Double, status: Int32) {
    guard let kernel = GuestImages.referenceKernelURL else {
      throw UsageError("the reference kernel resource is missing")
    }
    let arguments = [
      "-accel", accelerator, "-m", "64", "-kernel", kernel.path, "-append", commandLine, "-serial", "stdio",
      "-display", "none", "-monitor", "none", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    let finished: PeerProcess.Finished
    do throws(ModeLoopError) {
      let directory = try PeerProcess.temporaryDirectory("trivisor-qemu")
      defer { try? FileManager.default.removeItem(at: directory) }
      finished = try PeerProcess.run(
        qemu, arguments, directory: directory, timeoutSeconds: timeoutSeconds, what: name)
    } catch {
      throw UsageError(error.description)
    }
    let output = finished.standardOutput
    output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().forEach { onLine(String($0)) }
    if !output.contains("BENCH"), let first = finished.standardError.split(separator: "\n").first {
      throw UsageError("\(name) failed (status \(finished.status)): \(first)")
    }
    return (output, finished.wallSeconds, finished.status)
  }
}

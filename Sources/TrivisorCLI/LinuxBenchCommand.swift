import ArgumentParser
import Benchmarks
import Foundation
import Launcher

/// `trivisor bench linux`: how long Debian's kernel takes from power-on to a program's exit (boot,
/// trivisor-init, the program, power-off) on each software engine, next to QEMU's binary
/// translator booting the same kernel and the same initramfs in the same run (docs/linux.md).
/// Every engine runs as its own `trivisor run --app` process, so the figure is the whole wall time a
/// user waits.
struct LinuxBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "linux",
    abstract: "Time Linux from power-on to a program's exit, on the software engines and on QEMU TCG.",
    discussion: """
      Boots the kernel (--kernel, or the newest /boot/vmlinuz-*) with the initramfs `trivisor run \
      --app` builds for PROGRAM (default /bin/true) and reports the wall time of each run, the \
      median of --rounds runs, and each engine's ratio to QEMU TCG. QEMU is skipped when \
      qemu-system-x86_64 is not installed.
      """)

  @Option(parsing: .unconditional, help: "Linux bzImage (default: the newest /boot/vmlinuz-*).")
  var kernel: String?

  @Option(parsing: .unconditional, help: "The program the guest runs (--app).")
  var program = "/bin/true"

  @Option(parsing: .unconditional, help: "Engines to time, comma-separated.")
  var engines = "interp,dbt"

  @Option(parsing: .unconditional, help: "Runs per engine (the median is reported).")
  var rounds = 1

  @Option(parsing: .unconditional, help: "Seconds before a run counts as hung.")
  var timeout: Double = 900

  @Flag(name: .customLong("allow-debug"), help: "Run even in a debug build (numbers are meaningless).")
  var allowDebug = false

  func run() throws {
    if isDebugBuild && !allowDebug {
      throw usageFailure("benchmarks need a release build (swift build -c release), or pass --allow-debug")
    }
    guard (1...100).contains(rounds) else { throw usageFailure("--rounds must be between 1 and 100") }
    guard let kernelPath = kernel ?? HostKernel.newest() else {
      throw usageFailure("no Linux kernel: give --kernel or install linux-image-amd64")
    }
    let names = engines.split(separator: ",").map(String.init)
    for name in names where !["interp", "dbt", "kvm", "auto"].contains(name) {
      throw usageFailure("unknown engine '\(name)' (use interp, dbt or kvm)")
    }
    let image: [UInt8]
    do throws(GuestImageError) {
      image = try LinuxGuestImage(maximumSize: 128 << 20).application(program: program, arguments: [])
    } catch {
      throw usageFailure(error.description)
    }
    let directory: URL
    do throws(ModeLoopError) { directory = try PeerProcess.temporaryDirectory("trivisor-bench-linux") } catch {
      throw usageFailure(error.description)
    }
    defer { try? FileManager.default.removeItem(at: directory) }
    let initrd = directory.appendingPathComponent("initrd.cpio")
    FileManager.default.createFile(atPath: initrd.path, contents: Data(image))
    let commandLine = LinuxGuestImage.commandLine(application: true, extra: nil)
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
    print("Linux from power-on to the exit of \(program): \(kernelPath), initramfs \(image.count >> 10) KiB")
    var rows: [(String, Double)] = []
    for name in names {
      let seconds = try median(name) {
        try time(
          me, ["run", "--engine", name, "--kernel", kernelPath, "--app", program, "--timeout", "\(timeout)"],
          in: directory, what: name)
      }
      rows.append((name, seconds))
    }
    if let qemu = PeerProcess.find("qemu-system-x86_64") {
      let arguments = [
        "-accel", "tcg", "-m", "256", "-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot",
        "-kernel", kernelPath, "-initrd", initrd.path, "-append", commandLine,
        "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
      ]
      rows.append(
        ("qemu-tcg", try median("qemu-tcg") { try time(qemu, arguments, in: directory, what: "qemu-tcg", expect: 1) }))
    } else {
      print("qemu-tcg: skipped (qemu-system-x86_64 is not installed)")
    }
    let reference = rows.first { $0.0 == "qemu-tcg" }?.1
    for (name, seconds) in rows {
      let ratio = reference.map { String(format: "  %.2fx QEMU TCG's time", seconds / $0) } ?? ""
      print(name.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%8.2f s", seconds) + ratio)
    }
  }

  private func median(_ what: String, _ body: () throws -> Double) throws -> Double {
    var samples: [Double] = []
    for _ in 0..<rounds { samples.append(try body()) }
    return samples.sorted()[samples.count / 2]
  }

  /// One run's wall time; a run that fails or ends with another status is an error.
  private func time(_ executable: String, _ arguments: [String], in directory: URL, what: String, expect: Int32 = 0)
    throws -> Double
  {
    let finished: PeerProcess.Finished
    do throws(ModeLoopError) {
      finished = try PeerProcess.run(executable, arguments, directory: directory, timeoutSeconds: timeout, what: what)
    } catch {
      throw usageFailure(error.description)
    }
    guard !finished.signaled, finished.status == expect else {
      let detail = (finished.standardError + finished.standardOutput).split(separator: "\n").last ?? ""
      throw usageFailure("\(what) ended with status \(finished.status) instead of \(expect): \(detail)")
    }
    return finished.wallSeconds
  }
}

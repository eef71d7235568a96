import ArgumentParser
import Foundation
import Launcher
import VMM

/// `trivisor bench alu32`: the speed of 32-bit protected-mode code. A Multiboot v1 image
/// (guests/testguests/alu32.S) runs an ALU loop of five instructions per iteration (add, xor,
/// rol, dec, jnz) in the flat 32-bit protected mode the Multiboot entry leaves, then ends the VM
/// through the isa-debug-exit port. Each engine (and with --peers QEMU) boots it twice, with N
/// and 3N iterations; the difference of the two wall times is the time of 10N instructions with
/// boot, firmware and teardown cancelled out.
struct ALU32BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "alu32",
    abstract: "MIPS of 32-bit protected-mode code: a Multiboot guest's ALU loop on every engine.",
    discussion: """
      The guest (guests/testguests/alu32.S, a Multiboot v1 image with header address fields) loops \
      over add, xor, rol, dec, jnz in flat 32-bit protected mode without paging. Every engine boots it \
      with N and 3N iterations per round (N per engine: \
      \(defaultIterations.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", "))); \
      MIPS = 10N * 5 instructions / (the difference of the two wall times), the median over the \
      rounds. --peers adds qemu-system-x86_64 -accel tcg (and kvm) booting the same image with \
      -kernel. --write-image writes the image with --count iterations instead, for running it \
      elsewhere (trivisor run IMAGE, another build, another emulator).
      """
  )

  /// Iterations N per column, so that the 3N run takes a few seconds. kvm and qemu-kvm get few:
  /// under nested virtualization (this guest runs unpaged, which the outer hypervisor may have to
  /// emulate) they have been measured at 2 MIPS, where on bare metal they run near native speed.
  static let defaultIterations = [
    "interp": 20_000_000, "dbt": 20_000_000, "kvm": 2_000_000, "qemu-tcg": 200_000_000, "qemu-kvm": 2_000_000,
  ]
  /// Offset of the iteration count in the image (the word at the label `iterations`).
  static let iterationsOffset = 32
  static let instructionsPerIteration = 5

  @Flag(help: "Add qemu-system-x86_64 -accel tcg and -accel kvm (when installed) as peers.")
  var peers = false

  @Option(name: .customLong("engine"), help: "Run only these engines (repeatable; default: every available one).")
  var engines: [String] = []

  @Option(help: "Iterations N for a column, NAME=N (repeatable), e.g. interp=50000000.")
  var iterations: [String] = []

  @Option(help: "Rounds per column (the median is reported).")
  var rounds = 3

  @Option(help: "Seconds each run may take.")
  var timeout: Double = 120

  @Option(help: "Also write the results as JSON to this file.")
  var json: String?

  @Option(help: "Write the guest image with --count iterations to this file and exit.")
  var writeImage: String?

  @Option(help: "Iterations in the image --write-image writes.")
  var count: UInt32 = 100_000_000

  @Flag(name: .customLong("allow-debug"), help: "Run even in a debug build (numbers are meaningless).")
  var allowDebug = false

  /// The guest image looping `n` times.
  static func image(iterations n: UInt32) -> [UInt8] {
    var image = BenchGuestImages.alu32Multiboot
    for k in 0..<4 { image[iterationsOffset + k] = UInt8(truncatingIfNeeded: n >> (8 * k)) }
    return image
  }

  func run() throws {
    if let path = writeImage {
      do { try Data(Self.image(iterations: count)).write(to: URL(fileURLWithPath: path)) } catch {
        throw usageFailure("cannot write '\(path)': \(error.localizedDescription)")
      }
      return
    }
    try BenchmarkOptions.requireReleaseBuild(allowDebug: allowDebug, command: "bench alu32")
    guard (1...1000).contains(rounds) else { throw usageFailure("--rounds must be between 1 and 1000") }
    guard timeout > 0 && timeout.isFinite else { throw usageFailure("--timeout must be a positive number") }
    let counts = try BenchmarkOptions.scales(
      iterations, defaults: Self.defaultIterations, maximum: Int(UInt32.max / 3), example: "interp=50000000")
    for name in engines where !EngineRegistry.entries.contains(where: { $0.name == name }) {
      throw usageFailure(
        "unknown engine '\(name)' (choose from \(EngineRegistry.entries.map(\.name).joined(separator: ", ")))")
    }
    let host = HostCPUInfo.read()
    var report = BenchReport(
      suite: "alu32", buildConfiguration: isDebugBuild ? "debug" : "release",
      host: [host.vendor, host.model].compactMap { $0 }.joined(separator: " ")
        + (host.flags.contains("hypervisor") ? " (nested)" : ""),
      date: ISO8601DateFormatter().string(from: Date()))
    var failed = false
    for entry in EngineRegistry.entries where engines.isEmpty || engines.contains(entry.name) {
      if let why = entry.unavailableReason() {
        progress("\(entry.name): unavailable on this host, skipped: \(why)")
        continue
      }
      let n = UInt32(counts[entry.name] ?? 20_000_000)
      do {
        let result = try measure(entry.name, iterations: n) { image throws in try runEngine(entry, image: image) }
        report.results.append(result)
      } catch {
        progress("\(entry.name): FAILED: \(error)")
        failed = true
      }
    }
    if peers {
      if let qemu = QEMUPeer.executable() {
        for accelerator in ["tcg", "kvm"] {
          let name = "qemu-\(accelerator)"
          let n = UInt32(counts[name] ?? 200_000_000)
          do {
            let result = try measure(name, iterations: n, isPeer: true) { image throws in
              try runQEMU(qemu, accelerator: accelerator, image: image)
            }
            report.results.append(result)
          } catch {
            progress("\(name): FAILED: \(error)")
          }
        }
      } else {
        progress("--peers: qemu-system-x86_64 is not installed (Debian: apt-get install qemu-system-x86); no peers")
      }
    }
    print(report.table)
    if let path = json {
      do { try report.writeJSON(to: path) } catch { throw usageFailure("cannot write '\(path)': \(error)") }
    }
    if failed { throw ExitCode(ExitStatus.engineError) }
  }

  /// `rounds` pairs of runs (N and 3N iterations) of one column; the result in MIPS.
  private func measure(
    _ name: String, iterations n: UInt32, isPeer: Bool = false, run: ([UInt8]) throws -> Double
  ) throws -> BenchReport.Result {
    var mips: [Double] = []
    let short = Self.image(iterations: n)
    let long = Self.image(iterations: 3 * n)
    for round in 1...rounds {
      let t1 = try run(short)
      let t3 = try run(long)
      let instructions = Double(2 * UInt64(n) * UInt64(Self.instructionsPerIteration))
      guard t3 > t1 else { throw UsageError("the 3N run was not slower than the N run (\(t3) s vs \(t1) s)") }
      let m = instructions / (t3 - t1) / 1e6
      mips.append(m)
      progress(
        String(format: "%@: round %d/%d: %.3f s (N = %u), %.3f s (3N): %.1f MIPS", name, round, rounds, t1, n, t3, m))
    }
    return BenchReport.Result(
      name: "alu32-\(name)",
      description: (isPeer ? "peer: " : "")
        + "\(name): add/xor/rol/dec/jnz loop in flat 32-bit protected mode (Multiboot entry), "
        + "10N instructions over the wall-time difference of N and 3N iterations, N = \(n)",
      value: median(mips), unit: "MIPS", baseline: nil, baselineDescription: nil, ratio: nil, ratioTarget: nil,
      targetMet: nil, rounds: mips, baselineRounds: nil)
  }

  /// Boots `image` on a fresh machine of the engine; returns the wall time, creation included.
  private func runEngine(_ entry: EngineRegistry.Entry, image: [UInt8]) throws -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    let engine = try entry.make(false)
    let memory = try GuestMemory(ramSize: 64 << 20)
    let boot = try ImageLoader.load(image: image, into: memory)
    let vm = try Machine(
      memory: memory, boot: boot, engine: engine, configuration: MachineConfiguration(timeoutSeconds: timeout))
    let outcome = vm.run()
    let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    // isa-debug-exit with 0: status (0 << 1) | 1.
    guard outcome.exitStatus == 1 else {
      throw UsageError("the guest did not end through isa-debug-exit: \(outcome.reason.description)")
    }
    return wall
  }

  /// Boots `image` under QEMU (`-kernel`, Multiboot); returns the wall time, process start included.
  private func runQEMU(_ qemu: String, accelerator: String, image: [UInt8]) throws -> Double {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-alu32-\(getpid()).bin")
    try Data(image).write(to: path)
    defer { try? FileManager.default.removeItem(at: path) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: qemu)
    process.arguments = [
      "-accel", accelerator, "-m", "64", "-kernel", path.path, "-serial", "none", "-display", "none", "-monitor",
      "none", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    process.standardInput = FileHandle.nullDevice
    let start = DispatchTime.now().uptimeNanoseconds
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(1_000) }
    if process.isRunning {
      process.terminate()
      process.waitUntilExit()
      throw UsageError("qemu-\(accelerator) did not finish within \(Int(timeout)) s")
    }
    let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    guard process.terminationStatus == 1 else {
      throw UsageError("qemu-\(accelerator) exited with status \(process.terminationStatus), not isa-debug-exit's 1")
    }
    return wall
  }

  private func progress(_ line: String) { printError("bench alu32: \(line)") }
}

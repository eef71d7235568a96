import ArgumentParser
import Foundation
import GuestImages
import Launcher
import VMM

/// `trivisor bench` (the default suite): the reference guest kernel's micro-benchmarks
/// (`bench scale=N`) on every available engine, optionally next to QEMU, in one table.
struct GuestBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "guest",
    abstract: "The reference guest's micro-benchmarks on every engine (the default suite).",
    discussion: """
      Boots the reference kernel with 'bench scale=N' once per engine (N per engine so that every \
      run is short: \(defaultScales.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")), \
      \(fallbackScale) otherwise) and prints per benchmark and engine the guest time per operation, \
      the VM exits per operation (exits between the kernel's begin/end markers for that benchmark, \
      over its iterations) and the ratio to the fastest engine. --peers adds QEMU (TCG and KVM) \
      booting the same kernel through its Multiboot entry with the same command line.
      """
  )

  /// Benchmark iteration multiplier per engine, so that every run takes seconds: the interpreter
  /// is ~100x slower than native on ring-3 work (a whole release run at scale 10 takes ~1 s), and
  /// 10-20x slower again in a debug build. The translators (dbt, QEMU TCG) run 100x more
  /// operations (a whole dbt run at scale 1000 takes ~2.5 s, QEMU's ~4 s): they compare at steady
  /// state. At smaller scales translating the code the first time round is part of the short
  /// benchmarks (a system call on dbt: 800 ns/op at scale 10, 180-220 at 100, 150 at 1000), so
  /// the comparison would measure warm-up (reported apart: docs/dbt.md) more than speed.
  /// trap and hybrid run at kvm's scale: their ring-3 code is native, only trap's privileged
  /// operations and hybrid's ring switches cost tens of microseconds each
  /// (docs/trap-and-emulate.md). Fewer iterations would let one timer tick (about 0.1 ms of
  /// handling on either) weigh on a whole figure.
  static let defaultScales = [
    "kvm": 10, "interp": isDebugBuild ? 1 : 10, "dbt": isDebugBuild ? 1 : 1000, "sbt": isDebugBuild ? 1 : 1000,
    "qemu-tcg": 1000, "qemu-kvm": 10, "trap": isDebugBuild ? 1 : 10,
    "hybrid": isDebugBuild ? 1 : 10,
  ]
  static let fallbackScale = 1

  @Option(help: "Also write the table as JSON to this file.")
  var json: String?

  @Option(help: "Also draw the table as an SVG bar chart (log scale) to this file.")
  var svg: String?

  @Flag(help: "Add qemu-system-x86_64 -accel tcg and -accel kvm (when installed) as peers.")
  var peers = false

  @Flag(
    help:
      "Also boot the kernel deprivileged (run --pv) a +pv column per engine (interp+pv, dbt+pv, kvm+pv, ...; docs/paravirtualization.md)."
  )
  var pv = false

  @OptionGroup var options: KernelBenchOptions

  func run() throws {
    let scales = try options.validated(command: "bench", defaults: Self.defaultScales, maximum: 1_000_000)

    var columns: [BenchTable.Column] = []
    var notes: [String] = []
    var trivisorFailed = false
    for entry in EngineRegistry.entries where options.includes(entry.name) {
      if let why = entry.unavailableReason() {
        progress("\(entry.name): unavailable on this host, skipped: \(why)")
        notes.append("engine \(entry.name) not measured: \(why)")
        continue
      }
      let commandLine = ReferenceKernelOutput.benchCommandLine(scale: scales[entry.name] ?? Self.fallbackScale)
      let column = runEngine(entry, commandLine: commandLine)
      if column.failure != nil { trivisorFailed = true }
      columns.append(column)
    }
    for entry in EngineRegistry.entries where pv && options.includes(entry.name) {
      guard entry.unavailableReason() == nil, entry.bootsParavirtual else { continue }
      let commandLine = ReferenceKernelOutput.benchCommandLine(scale: scales[entry.name] ?? Self.fallbackScale)
      let column = runEngine(entry, commandLine: commandLine, paravirtual: true)
      if column.failure != nil { trivisorFailed = true }
      columns.append(column)
    }
    if pv {
      notes.append(
        "+pv: the kernel deprivileged at ring 3 (run --pv, one vCPU); its in, out and cr8wr touch no hardware "
          + "(the paravirtual platform has no port I/O or CR8), timerirq is the event upcall; its markers are a hypercall"
      )
    }
    if peers {
      if let qemu = QEMUPeer.executable() {
        for accelerator in ["tcg", "kvm"] {
          let peer = QEMUPeer(accelerator: accelerator)
          let commandLine = ReferenceKernelOutput.benchCommandLine(scale: scales[peer.name] ?? Self.fallbackScale)
          columns.append(runPeer(peer, qemu: qemu, commandLine: commandLine))
        }
        notes.append(
          "peers: \(qemu) \(QEMUPeer.version(qemu) ?? ""), booting the same kernel through its Multiboot entry "
            + "(-kernel, -m 64); its wall time includes the firmware")
      } else {
        progress("--peers: qemu-system-x86_64 is not installed (Debian: apt-get install qemu-system-x86); no peers")
        notes.append("peers requested but qemu-system-x86_64 is not installed: no QEMU columns")
      }
    }
    guard !columns.isEmpty else { throw usageFailure("no engine could run: \(notes.joined(separator: "; "))") }

    let table = BenchTable(
      host: HostDescription.current, date: ISO8601DateFormatter().string(from: Date()),
      buildConfiguration: isDebugBuild ? "debug" : "release", columns: columns,
      notes: notes + [HostDescription.load])
    print(table.text)
    if let path = json {
      do { try table.json().write(to: URL(fileURLWithPath: path)) } catch {
        throw usageFailure("cannot write '\(path)': \(error.localizedDescription)")
      }
    }
    if let path = svg {
      do { try SVGChart(table: table).svg.write(toFile: path, atomically: true, encoding: .utf8) } catch {
        throw usageFailure("cannot write '\(path)': \(error.localizedDescription)")
      }
    }
    if trivisorFailed { throw ExitCode(ExitStatus.engineError) }
  }

  private func runEngine(_ entry: EngineRegistry.Entry, commandLine: String, paravirtual: Bool = false)
    -> BenchTable.Column
  {
    let name = paravirtual ? entry.name + "+pv" : entry.name
    progress("\(name): booting the reference kernel with '\(commandLine)'")
    let engine: any Engine
    do { engine = try entry.make(false) } catch {
      return failedColumn(name, isPeer: false, commandLine: commandLine, "\(error)")
    }
    do {
      let run = try ReferenceGuest.run(
        engine: engine, commandLine: commandLine, timeoutSeconds: options.timeout, paravirtual: paravirtual,
        onLine: { line in Self.reportProgress(name, line) })
      let failure: String? =
        run.outcome.exitStatus == 0 ? nil : "\(run.outcome.reason.description.split(separator: "\n").first ?? "")"
      progress(String(format: "%@: done in %.2f s", name, run.wallSeconds))
      return BenchTable.column(
        name: name, isPeer: false, commandLine: commandLine, output: run.output, exits: run.exitsByBenchmark,
        wallSeconds: run.wallSeconds, failure: failure)
    } catch {
      return failedColumn(name, isPeer: false, commandLine: commandLine, error.description)
    }
  }

  private func runPeer(_ peer: QEMUPeer, qemu: String, commandLine: String) -> BenchTable.Column {
    progress("\(peer.name): booting the reference kernel with '\(commandLine)' (firmware first: may take seconds)")
    do {
      let name = peer.name
      let run = try peer.run(
        qemu: qemu, commandLine: commandLine, timeoutSeconds: options.timeout,
        onLine: { line in Self.reportProgress(name, line) })
      progress(String(format: "%@: done in %.2f s", peer.name, run.wallSeconds))
      return BenchTable.column(
        name: peer.name, isPeer: true, commandLine: commandLine, output: run.output, exits: nil,
        wallSeconds: run.wallSeconds, failure: nil)
    } catch {
      return failedColumn(peer.name, isPeer: true, commandLine: commandLine, error.description)
    }
  }

  private func failedColumn(_ name: String, isPeer: Bool, commandLine: String, _ why: String) -> BenchTable.Column {
    progress("\(name): FAILED: \(why)")
    return BenchTable.Column(
      name: name, isPeer: isPeer, commandLine: commandLine, wallSeconds: nil, failure: why, results: [:])
  }

  /// Progress on stderr: one line per finished benchmark (and any error line of the guest).
  private static func reportProgress(_ column: String, _ line: String) {
    if let r = BenchmarkResult(line: Substring(line)) {
      printError(
        "bench: \(column): \(r.name) \(BenchTable.formatNanoseconds(r.nanosecondsPerOperation)) ns/op "
          + "(\(r.iterations) iterations)")
    } else if line.hasPrefix("BENCH-ERROR") || line.hasPrefix("PANIC") || line.hasPrefix("KILLED") {
      printError("bench: \(column): guest: \(line)")
    }
  }

  private func progress(_ line: String) { printError("bench: \(line)") }
}

/// The machine a benchmark ran on, for the table and docs.
enum HostDescription {
  /// CPU model, core count and whether this is itself a virtual machine (nested virtualization).
  static var current: String {
    let cpu = HostCPUInfo.read()
    var text = [cpu.vendor, cpu.model].compactMap { $0 }.joined(separator: " ")
    text += ", \(ProcessInfo.processInfo.activeProcessorCount) CPUs"
    if cpu.flags.contains("hypervisor") { text += " (a virtual machine: kvm is nested)" }
    return text
  }

  /// The host's load average when the table was made.
  static var load: String {
    let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "unknown"
    return "host load average (1/5/15 min) at the end: "
      + text.split(separator: " ").prefix(3).joined(separator: " ")
  }
}

extension QEMUPeer {
  /// `qemu-system-x86_64 --version`'s first line, e.g. "QEMU emulator version 7.2.15".
  static func version(_ qemu: String) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: qemu)
    process.arguments = ["--version"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).split(separator: "\n").first.map { "(\($0))" }
  }
}

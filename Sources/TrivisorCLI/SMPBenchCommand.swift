import ArgumentParser
import Foundation
import GuestImages
import Launcher
import VMM

/// `trivisor bench smp`: the reference kernel's multiprocessor benchmarks (`bench smp scale=N`)
/// on every available engine with 1, 2 and 4 vCPUs, one table.
struct SMPBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "smp",
    abstract: "The reference guest's multiprocessor benchmarks (IPI, TLB shootdown, spinlock, parallel speedup).",
    discussion: """
      Boots the reference kernel with 'bench smp scale=N' once per engine and vCPU count (default \
      1, 2 and 4) and prints ns per operation for each, and the parallel job's speedup over the \
      same engine's 1-vCPU run. The IPI and shootdown benchmarks need two vCPUs.
      """
  )

  /// Per engine: the interpreter runs ring-3 work ~100x slower than kvm, which emulates ring 0.
  static let defaultScales = ["kvm": 10, "interp": isDebugBuild ? 1 : 10, "dbt": isDebugBuild ? 1 : 10]

  @Option(name: .customLong("cpus"), help: "vCPU counts to measure (repeatable; default 1, 2, 4).")
  var cpuCounts: [Int] = []

  @OptionGroup var options: KernelBenchOptions

  func run() throws {
    let scales = try options.validated(command: "bench smp", defaults: Self.defaultScales, maximum: 100_000)
    let counts = cpuCounts.isEmpty ? [1, 2, 4] : cpuCounts
    for n in counts where !(1...KernelLimits.maximumCPUs).contains(n) {
      throw usageFailure("--cpus must be 1 to \(KernelLimits.maximumCPUs) (the reference kernel's limit), not \(n)")
    }
    var columns: [SMPBenchTable.Column] = []
    var notes: [String] = []
    var failed = false
    for entry in EngineRegistry.entries where options.includes(entry.name) {
      if entry.name == "trap" && options.engines.isEmpty {
        notes.append("engine trap not measured: it runs one vCPU (ask with --engine trap for its 1-CPU column)")
        continue
      }
      if let why = entry.unavailableReason() {
        printError("bench smp: \(entry.name): unavailable on this host, skipped: \(why)")
        notes.append("engine \(entry.name) not measured: \(why)")
        continue
      }
      let commandLine = ReferenceKernelOutput.multiprocessorBenchCommandLine(scale: scales[entry.name] ?? 1)
      for cpus in counts {
        let column = runOne(entry, cpus: cpus, commandLine: commandLine)
        if column.failure != nil { failed = true }
        columns.append(column)
      }
    }
    guard !columns.isEmpty else { throw usageFailure("no engine could run: \(notes.joined(separator: "; "))") }
    let table = SMPBenchTable(
      host: HostDescription.current, buildConfiguration: isDebugBuild ? "debug" : "release", columns: columns,
      notes: notes + [HostDescription.load])
    print(table.text)
    if failed { throw ExitCode(ExitStatus.engineError) }
  }

  private func runOne(_ entry: EngineRegistry.Entry, cpus: Int, commandLine: String) -> SMPBenchTable.Column {
    printError("bench smp: \(entry.name) with \(cpus) vCPUs: '\(commandLine)'")
    do {
      let engine = try entry.make(false)
      let run = try ReferenceGuest.run(
        engine: engine, commandLine: commandLine, timeoutSeconds: options.timeout, cpuCount: cpus,
        onLine: { line in
          if line.hasPrefix("BENCH") || line.hasPrefix("PANIC") {
            printError("bench smp: \(entry.name) x\(cpus): \(line)")
          }
        })
      let failure: String? =
        run.outcome.exitStatus == 0 ? nil : "\(run.outcome.reason.description.split(separator: "\n").first ?? "")"
      return .parse(engine: entry.name, cpus: cpus, commandLine: commandLine, output: run.output, failure: failure)
    } catch {
      return SMPBenchTable.Column(
        engine: entry.name, cpus: cpus, commandLine: commandLine, nanosecondsPerOperation: [:], failure: "\(error)")
    }
  }
}

/// What the reference kernel supports (guests/kernel/Kernel/Layout.swift).
enum KernelLimits {
  static let maximumCPUs = 8
}

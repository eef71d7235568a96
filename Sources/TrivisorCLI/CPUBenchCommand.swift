import ArgumentParser
import Benchmarks
import Foundation
import Oracles
import VMM

/// `trivisor bench cpu`: the X86 model's speed on user-level, CPU-bound code against the host CPU
/// running the same machine code (see `CPUThroughput`): guest MIPS and the slowdown ratio. With
/// `--peers` also the per-mode ALU loop (16-, 32- and 64-bit code) on interp (with and without its
/// fast path), dbt, Bochs and QEMU TCG (`ModeLoopBenchmark`), and the reference kernel's CPU-bound
/// benchmarks on interp and QEMU TCG (`KernelCPUComparison`), all in one run.
struct CPUBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cpu",
    abstract: "Benchmark the X86 model: MIPS on a CPU-bound loop vs the host CPU; --peers: per mode vs Bochs and QEMU.",
    discussion: """
      Without --peers: an integer hash loop in flat 64-bit user mode on the X86 model (fast path on \
      and off) against the host CPU running the same code. --peers adds, in the same run: a boot \
      sector (guests/testguests/modeloop.S) looping over add, xor, rol, dec, jnz in 16-bit real mode \
      (32-bit operands), flat 32-bit protected mode and 64-bit long mode, on interp, interp with the \
      fast path off (interp-general), dbt, Bochs (floppy boot) and QEMU TCG (the same floppy); each \
      tool runs it with 1 and with N iterations, MIPS = 5 (N - 1) / (the difference of the wall \
      times), so each tool's startup cancels out; the ratio to Bochs per mode. Then the reference \
      kernel's hash, sort and matmul on interp, interp-general, dbt and QEMU TCG. A missing peer is \
      reported as not installed. --write-image PATH writes the floppy image of one --mode with \
      --count iterations instead (trivisor run --flat-address 0x7c00 --flat-mode real PATH runs it).
      """
  )

  @OptionGroup var options: BenchOptions

  @Option(help: "Instructions per round (rounded to whole passes of the loop).")
  var instructions: UInt64 = 200_000_000

  @Flag(help: "Also the per-mode loop on interp, dbt, Bochs and QEMU TCG, and the reference kernel's hash/sort/matmul.")
  var peers = false

  @Option(help: "With --peers: only these modes (16, 32, 64; repeatable).")
  var mode: [String] = []

  @Option(help: "With --peers: only these columns (repeatable; default: all).")
  var column: [String] = []

  @Option(
    help: ArgumentHelp(
      "With --peers: iterations N of the long run for a column, NAME=N (repeatable), e.g. bochs=50000000.",
      discussion: "Columns: \(ModeLoopColumn.allCases.map(\.rawValue).joined(separator: ", "))."))
  var iterations: [String] = []

  @Option(help: "With --peers: pairs of runs per mode and column (the median is reported).")
  var peerRounds = 1

  @Option(help: "With --peers: seconds any single run may take.")
  var timeout: Double = 120

  @Option(
    help: "Write the per-mode loop's 1.44 MB floppy image (one --mode, --count iterations) to this file and exit.")
  var writeImage: String?

  @Option(help: "Iterations in the image --write-image writes.")
  var count: UInt32 = 100_000_000

  func run() throws {
    let modes = try parseModes()
    if let path = writeImage {
      guard modes.count == 1, let m = modes.first, !mode.isEmpty else {
        throw usageFailure("--write-image needs exactly one --mode (16, 32 or 64)")
      }
      guard count >= 1 else { throw usageFailure("--count must be at least 1") }
      do { try Data(ModeLoop.floppyImage(mode: m, iterations: count)).write(to: URL(fileURLWithPath: path)) } catch {
        throw usageFailure("cannot write '\(path)': \(error.localizedDescription)")
      }
      return
    }
    let loopIterations = try Self.parseIterations(iterations)
    try options.checkBuild()
    try options.validateRounds()
    guard (10_000...100_000_000_000).contains(instructions) else {
      throw usageFailure("--instructions must be between 10000 and 100000000000")
    }
    guard (1...100).contains(peerRounds) else { throw usageFailure("--peer-rounds must be between 1 and 100") }
    guard timeout > 0 && timeout.isFinite else { throw usageFailure("--timeout must be a positive number") }
    let columns = try Self.parseColumns(column)
    if !peers && (!mode.isEmpty || !iterations.isEmpty || !column.isEmpty) {
      throw usageFailure("--mode, --column and --iterations apply to --peers (or --mode to --write-image)")
    }

    var report = try measureModel()
    var trivisorFailed = false
    print(report.table)
    print("first target: 100 MIPS on one core: \(median(report.results[0].rounds) >= 100 ? "met" : "not met")")
    if peers {
      printError("bench cpu: per-mode loop (16-, 32-, 64-bit) on every column, then the reference kernel")
      let loop = ModeLoopBenchmark(
        modes: modes, columns: columns, iterations: loopIterations, rounds: peerRounds, timeoutSeconds: timeout,
        debugBuild: isDebugBuild
      ).run { printError("bench cpu: \($0)") }
      print("")
      print(loop.text)
      report.results += Self.results(of: loop)
      trivisorFailed = loop.cells.contains { !$0.column.isPeer && $0.failure != nil }
      if columns.contains(where: { [.interp, .interpGeneral, .dbt, .qemuTCG].contains($0) }) {
        let kernel = KernelCPUComparison(timeoutSeconds: timeout, columns: columns).run {
          printError("bench cpu: \($0)")
        }
        print("")
        print(kernel.text)
      }
      print(HostDescription.load)
    }
    if let path = options.json {
      do { try report.writeJSON(to: path) } catch { throw usageFailure("cannot write '\(path)': \(error)") }
    }
    // A failing peer is only reported; a failing Trivisor engine is the command's failure.
    if trivisorFailed { throw ExitCode(ExitStatus.engineError) }
  }

  /// `--mode` values (default: every mode).
  func parseModes() throws -> [ModeLoop.Mode] {
    var modes: [ModeLoop.Mode] = []
    for text in mode {
      guard let m = ModeLoop.Mode(argument: text) else {
        throw usageFailure("invalid --mode '\(text)' (choose from 16, 32, 64)")
      }
      if !modes.contains(m) { modes.append(m) }
    }
    return modes.isEmpty ? ModeLoop.Mode.allCases : modes.sorted { $0.rawValue < $1.rawValue }
  }

  /// `--column NAME` values (default: every column), in the table's order.
  static func parseColumns(_ names: [String]) throws -> [ModeLoopColumn] {
    for name in names where ModeLoopColumn(rawValue: name) == nil {
      throw usageFailure(
        "unknown --column '\(name)' (choose from \(ModeLoopColumn.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    return names.isEmpty ? ModeLoopColumn.allCases : ModeLoopColumn.allCases.filter { names.contains($0.rawValue) }
  }

  /// `--iterations NAME=N` values, N in 2...UInt32.max.
  static func parseIterations(_ items: [String]) throws -> [ModeLoopColumn: UInt32] {
    var result: [ModeLoopColumn: UInt32] = [:]
    for item in items {
      let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2, let column = ModeLoopColumn(rawValue: parts[0]), let n = UInt32(parts[1]), n >= 2 else {
        throw usageFailure(
          "invalid --iterations '\(item)' (use NAME=N with N in 2...\(UInt32.max) and NAME one of "
            + ModeLoopColumn.allCases.map(\.rawValue).joined(separator: ", ") + ")")
      }
      result[column] = n
    }
    return result
  }

  /// The X86 model on the 64-bit user loop against the host CPU (what `bench cpu` always reports).
  private func measureModel() throws -> BenchReport {
    var report = BenchReport(
      suite: "cpu", buildConfiguration: isDebugBuild ? "debug" : "release",
      host: HostDescription.current, date: ISO8601DateFormatter().string(from: Date()))
    var mips: [Double] = []
    var generalMIPS: [Double] = []
    var nativeMIPS: [Double] = []
    var slowdowns: [Double] = []
    let rounds = options.rounds
    for round in 1...rounds {
      let m: CPUThroughput
      do { m = try CPUThroughput.measure(instructions: instructions) } catch {
        printError("trivisor: error: benchmark failed: \(error)")
        throw ExitCode(ExitStatus.engineError)
      }
      mips.append(m.modelMIPS)
      generalMIPS.append(m.generalPathMIPS)
      nativeMIPS.append(m.nativeMIPS)
      slowdowns.append(m.slowdown)
      printError(
        "round \(round)/\(rounds): \(m.instructions) instructions, model \(String(format: "%.1f", m.modelMIPS)) MIPS "
          + "(general path \(String(format: "%.1f", m.generalPathMIPS))), host \(String(format: "%.0f", m.nativeMIPS)) MIPS"
      )
    }
    report.results.append(
      BenchReport.Result(
        name: "model-mips",
        description: "integer hash loop over a 4 KiB buffer in flat 64-bit user mode on the X86 model "
          + "(results checked against the host run)",
        value: median(mips), unit: "MIPS", baseline: median(nativeMIPS),
        baselineDescription: "the same machine code run natively on the host CPU",
        ratio: nil, ratioTarget: nil, targetMet: nil,
        rounds: mips, baselineRounds: nativeMIPS))
    report.results.append(
      BenchReport.Result(
        name: "general-path-mips",
        description: "the same loop with CPU.fastPathEnabled off: every instruction through the general "
          + "execute path",
        value: median(generalMIPS), unit: "MIPS", baseline: nil, baselineDescription: nil, ratio: nil,
        ratioTarget: nil, targetMet: nil, rounds: generalMIPS, baselineRounds: nil))
    let speedups = zip(mips, generalMIPS).map { $0 / $1 }
    report.results.append(
      BenchReport.Result(
        name: "fast-path-speedup",
        description: "model-mips / general-path-mips, measured in the same round", value: median(speedups),
        unit: "x", baseline: nil, baselineDescription: nil, ratio: nil, ratioTarget: nil, targetMet: nil,
        rounds: speedups, baselineRounds: nil))
    report.results.append(
      BenchReport.Result(
        name: "model-slowdown", description: "model time / host time for the same loop",
        value: median(slowdowns), unit: "x", baseline: nil, baselineDescription: nil, ratio: nil,
        ratioTarget: nil, targetMet: nil, rounds: slowdowns, baselineRounds: nil))
    return report
  }

  /// The per-mode cells as JSON results (`loop16-interp`, ...), with the ratio to Bochs and the
  /// target for the interpreter's columns.
  static func results(of loop: ModeLoopReport) -> [BenchReport.Result] {
    var results: [BenchReport.Result] = []
    for cell in loop.cells {
      guard let mips = cell.mips else { continue }
      let target = ModeLoopReport.targets.first { $0.column == cell.column }?.ratio
      let ratio = cell.column.isPeer ? nil : loop.ratio(cell.column, cell.mode)
      results.append(
        BenchReport.Result(
          name: "loop\(cell.mode.rawValue)-\(cell.column.rawValue)",
          description: (cell.column.isPeer ? "peer: " : "") + "\(cell.column.summary); \(cell.mode.explanation); "
            + "5 (N - 1) instructions over the wall-time difference of 1 and N iterations, N = \(cell.iterations)",
          value: mips, unit: "MIPS", baseline: loop.mips(.bochs, cell.mode),
          baselineDescription: "Bochs on the same loop in the same run", ratio: ratio,
          ratioTarget: ratio == nil ? nil : target, targetMet: ratio.flatMap { r in target.map { r >= $0 } },
          rounds: cell.rounds, baselineRounds: loop.cell(.bochs, cell.mode)?.rounds))
    }
    return results
  }
}

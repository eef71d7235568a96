import ArgumentParser
import Foundation
import Oracles
import VMM

/// `trivisor bench cpu`: the X86 model's speed on user-level, CPU-bound code against the host CPU
/// running the same machine code (see `CPUThroughput`): guest MIPS and the slowdown ratio.
struct CPUBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cpu",
    abstract: "Benchmark the X86 model: MIPS on a CPU-bound integer loop, and the ratio to the host CPU.")

  @OptionGroup var options: BenchOptions

  @Option(help: "Instructions per round (rounded to whole passes of the loop).")
  var instructions: UInt64 = 200_000_000

  func run() throws {
    try options.checkBuild()
    try options.validateRounds()
    guard (10_000...100_000_000_000).contains(instructions) else {
      throw usageFailure("--instructions must be between 10000 and 100000000000")
    }
    let cpu = HostCPUInfo.read()
    var report = BenchReport(
      suite: "cpu", buildConfiguration: isDebugBuild ? "debug" : "release",
      host: [cpu.vendor, cpu.model].compactMap { $0 }.joined(separator: " ")
        + (cpu.flags.contains("hypervisor") ? " (nested)" : ""),
      date: ISO8601DateFormatter().string(from: Date()))
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
    let goal = median(mips) >= 100
    print(report.table)
    print("first target: 100 MIPS on one core: \(goal ? "met" : "not met")")
    if let path = options.json {
      do { try report.writeJSON(to: path) } catch { throw usageFailure("cannot write '\(path)': \(error)") }
    }
  }
}

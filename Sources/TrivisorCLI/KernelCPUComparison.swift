import Benchmarks
import Foundation
import GuestImages
import Launcher
import VMM

/// `bench cpu --peers`' second part: the reference kernel's CPU-bound ring-3 benchmarks (hash,
/// sort, matmul), each alone (`bench only=NAME scale=100`: 200 or more operations, so that the
/// translators' warm-up, translating the code the first time round, weighs little) on interp, on
/// interp with its fast path off, on dbt, and on QEMU TCG booting the same kernel through its
/// Multiboot entry. Bochs has no column: it boots from disks through its BIOS and has no Multiboot
/// or ELF loader for the kernel.
struct KernelCPUComparison {
  static let benchmarks = ["hash", "sort", "matmul"]
  static let scale = isDebugBuild ? 1 : 100
  /// The kernel command line that runs `benchmark` alone.
  static func commandLine(_ benchmark: String) -> String { "bench only=\(benchmark) scale=\(scale)" }
  let timeoutSeconds: Double
  /// The columns to boot the kernel on (of interp, interp-general, dbt, qemu-tcg; others are
  /// ignored).
  let columns: [ModeLoopColumn]

  /// ns/op per benchmark and column, or why a column has none.
  struct Report {
    var columns: [String] = []
    var nanoseconds: [String: [String: Double]] = [:]
    var failures: [String: String] = [:]

    var text: String {
      var lines = [
        "Reference kernel 'bench only=NAME scale=\(KernelCPUComparison.scale)', CPU-bound ring-3 benchmarks, "
          + "ns/op (lower is faster); same run"
      ]
      let ratios = ["interp", "dbt"].filter { columns.contains($0) && columns.contains("qemu-tcg") }
      let headers = ["benchmark"] + columns + ratios.map { "\($0)/qemu-tcg" }
      var rows: [[String]] = []
      for name in KernelCPUComparison.benchmarks {
        var row = [name]
        for column in columns {
          row.append(
            failures[column] != nil ? "failed" : nanoseconds[column]?[name].map(BenchTable.formatNanoseconds) ?? "-")
        }
        for engine in ratios {
          if let a = nanoseconds[engine]?[name], let b = nanoseconds["qemu-tcg"]?[name] {
            row.append(a >= b ? String(format: "%.2fx slower", a / b) : String(format: "%.2fx faster", b / a))
          } else {
            row.append("-")
          }
        }
        rows.append(row)
      }
      let widths = headers.indices.map { i in max(headers[i].count, rows.map { $0[i].count }.max() ?? 0) }
      let render = { (row: [String]) in
        row.indices.map { i in
          let fill = String(repeating: " ", count: max(0, widths[i] - row[i].count))
          return i == 0 ? row[i] + fill : fill + row[i]
        }.joined(separator: " | ")
      }
      lines.append(render(headers))
      lines += rows.map(render)
      for (column, why) in failures.sorted(by: { $0.key < $1.key }) { lines.append("\(column): \(why)") }
      lines.append("bochs: not measured (no Multiboot or ELF loader: it boots disks through its BIOS)")
      return lines.joined(separator: "\n")
    }
  }

  func run(progress: (String) -> Void) -> Report {
    var report = Report()
    // Each column boots the kernel with a command line and returns its console output.
    var boots: [(name: String, boot: (String) throws -> String)] = []
    let engines: [(String, () throws -> any Engine)] = [
      ("interp", { try EngineRegistry.make("interp") }), ("interp-general", { GeneralPathEngine() }),
      ("dbt", { try EngineRegistry.make("dbt") }),
    ]
    for (name, make) in engines where columns.contains(where: { $0.rawValue == name }) {
      boots.append(
        (
          name,
          { commandLine in
            let run = try ReferenceGuest.run(
              engine: try make(), commandLine: commandLine, timeoutSeconds: timeoutSeconds)
            guard run.outcome.exitStatus == 0 else { throw UsageError(run.outcome.reason.description) }
            return run.output
          }
        ))
    }
    if columns.contains(.qemuTCG) {
      let qemu = QEMUPeer.executable()
      boots.append(
        (
          "qemu-tcg",
          { commandLine in
            guard let qemu else { throw UsageError("not installed (Debian: apt-get install qemu-system-x86)") }
            return try QEMUPeer(accelerator: "tcg").run(
              qemu: qemu, commandLine: commandLine, timeoutSeconds: timeoutSeconds, onLine: { _ in }
            ).output
          }
        ))
    }
    for (name, boot) in boots {
      report.columns.append(name)
      do {
        for benchmark in Self.benchmarks {
          progress("\(name): booting the reference kernel with '\(Self.commandLine(benchmark))'")
          report.nanoseconds[name, default: [:]].merge(Self.parse(try boot(Self.commandLine(benchmark)))) { $1 }
        }
      } catch {
        report.failures[name] = "\(error)".split(separator: "\n").first.map(String.init) ?? "failed"
      }
    }
    return report
  }

  /// ns/op of `benchmarks` from the kernel's BENCH lines.
  static func parse(_ output: String) -> [String: Double] {
    var result: [String: Double] = [:]
    for line in output.split(whereSeparator: \.isNewline) {
      if let r = BenchmarkResult(line: line), benchmarks.contains(r.name) { result[r.name] = r.nanosecondsPerOperation }
    }
    return result
  }
}

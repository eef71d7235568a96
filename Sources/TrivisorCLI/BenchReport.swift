import Foundation

/// The result table of one `trivisor bench` suite, printed and written as JSON (`--json PATH`).
/// Every suite (kvm today; the interpreter and the guest-kernel suite later) reports in this form.
struct BenchReport: Codable {
  struct Result: Codable {
    /// Stable identifier, e.g. `pio-round-trip-ring0`.
    var name: String
    var description: String
    /// The measured value of Trivisor (median over the rounds).
    var value: Double
    var unit: String
    /// The comparison point (the C loop, the host CPU), when there is one.
    var baseline: Double?
    var baselineDescription: String?
    /// Trivisor / baseline: the median of the per-round ratios (rounds run back to back in pairs).
    var ratio: Double?
    /// The goal for `ratio`, e.g. 1.10, and whether it was met.
    var ratioTarget: Double?
    var targetMet: Bool?
    /// All rounds (value, baseline) for the record.
    var rounds: [Double]
    var baselineRounds: [Double]?
  }
  var suite: String
  var buildConfiguration: String
  var host: String
  var date: String
  var results: [Result] = []

  var table: String {
    func fmt(_ v: Double) -> String {
      if v >= 100 { return String(format: "%.0f", v) }
      if v >= 10 { return String(format: "%.1f", v) }
      return String(format: "%.3f", v)
    }
    var lines = ["trivisor bench \(suite) (\(buildConfiguration) build) on \(host)"]
    lines.append(
      "benchmark".padding(toLength: 30, withPad: " ", startingAt: 0) + "     trivisor      baseline   ratio  target")
    for r in results {
      var line = r.name.padding(toLength: 30, withPad: " ", startingAt: 0)
      line += (fmt(r.value) + " " + r.unit).leftPadded(13)
      line += (r.baseline.map { fmt($0) + " " + r.unit } ?? "-").leftPadded(14)
      line += (r.ratio.map { String(format: "%.3f", $0) } ?? "-").leftPadded(8)
      if let t = r.ratioTarget {
        line += "  <= \(String(format: "%.2f", t)) \((r.targetMet ?? false) ? "met" : "MISSED")"
      }
      lines.append(line)
    }
    for r in results {
      lines.append("  \(r.name): \(r.description)" + (r.baselineDescription.map { "; baseline: \($0)" } ?? ""))
    }
    return lines.joined(separator: "\n")
  }

  func writeJSON(to path: String) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    try e.encode(self).write(to: URL(fileURLWithPath: path))
  }
}

extension String {
  func leftPadded(_ width: Int) -> String {
    count >= width ? self : String(repeating: " ", count: width - count) + self
  }
}

/// The median of a non-empty list.
func median(_ values: [Double]) -> Double {
  let s = values.sorted()
  guard !s.isEmpty else { return 0 }
  return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// True when this binary was built in debug configuration (benchmarks mean nothing there).
var isDebugBuild: Bool {
  #if DEBUG
    return true
  #else
    return false
  #endif
}

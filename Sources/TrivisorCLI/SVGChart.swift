import Foundation

/// A self-contained SVG grouped bar chart of a `BenchTable`: one group per benchmark, one bar per
/// column (engine or peer), time per operation on a logarithmic axis, with a legend.
struct SVGChart {
  let table: BenchTable
  /// The chart's heading.
  var title = "Reference guest micro-benchmarks"

  /// Bar colours, one per column in order (repeats after eight).
  static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

  var svg: String {
    let columns = table.columns
    let values = table.benchmarks.flatMap { b in columns.compactMap { $0.results[b]?.nanosecondsPerOperation } }
      .filter { $0 > 0 && $0.isFinite }
    // The axis starts a decade below the smallest value when it sits close to a decade line, so
    // that every bar keeps a visible height.
    let smallest = log10(values.min() ?? 1)
    let lowDecade = Int(floor(smallest)) - (smallest - floor(smallest) < 0.15 ? 1 : 0)
    let highDecade = max(lowDecade + 1, Int(ceil(log10(values.max() ?? 10))))

    let barWidth = 14.0
    let groupGap = 18.0
    let groupWidth = Double(max(columns.count, 1)) * barWidth + groupGap
    let left = 80.0
    let top = 60.0
    let plotHeight = 320.0
    let bottom = 70.0
    let legendHeight = Double(columns.count) * 18 + 10
    let width = max(left + Double(table.benchmarks.count) * groupWidth + 20, 420)
    let height = top + plotHeight + bottom + legendHeight

    func y(_ value: Double) -> Double {
      let t = (log10(value) - Double(lowDecade)) / Double(highDecade - lowDecade)
      return top + plotHeight * (1 - min(max(t, 0), 1))
    }

    var out: [String] = []
    out.append(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(width))\" height=\"\(f(height))\" "
        + "viewBox=\"0 0 \(f(width)) \(f(height))\" font-family=\"sans-serif\" font-size=\"11\">")
    out.append("<rect x=\"0\" y=\"0\" width=\"\(f(width))\" height=\"\(f(height))\" fill=\"white\"/>")
    out.append(
      "<text x=\"\(f(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">"
        + "\(escape(title)): time per operation (log scale, lower is better)</text>")
    out.append(
      "<text x=\"\(f(width / 2))\" y=\"40\" text-anchor=\"middle\" fill=\"#555\">"
        + escape("\(table.host), \(table.buildConfiguration) build, \(table.date)") + "</text>")

    // Decade grid lines and labels.
    for decade in lowDecade...highDecade {
      let gy = y(pow(10, Double(decade)))
      out.append(
        "<line x1=\"\(f(left))\" y1=\"\(f(gy))\" x2=\"\(f(width - 10))\" y2=\"\(f(gy))\" stroke=\"#ddd\"/>")
      out.append(
        "<text x=\"\(f(left - 6))\" y=\"\(f(gy + 4))\" text-anchor=\"end\">\(escape(Self.decadeLabel(decade)))</text>")
    }
    out.append(
      "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotHeight))\" stroke=\"#333\"/>")
    out.append(
      "<text transform=\"translate(16 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">"
        + "time per operation</text>")

    // Bars.
    for (g, benchmark) in table.benchmarks.enumerated() {
      let gx = left + groupGap / 2 + Double(g) * groupWidth
      for (i, column) in columns.enumerated() {
        guard let m = column.results[benchmark], m.nanosecondsPerOperation > 0 else { continue }
        let bx = gx + Double(i) * barWidth
        let by = y(m.nanosecondsPerOperation)
        let colour = Self.palette[i % Self.palette.count]
        var tip = "\(column.name) \(benchmark): \(BenchTable.formatNanoseconds(m.nanosecondsPerOperation)) ns/op"
        if let e = m.exitsPerOperation { tip += ", \(BenchTable.formatExits(e)) exits/op" }
        out.append(
          "<rect x=\"\(f(bx))\" y=\"\(f(by))\" width=\"\(f(barWidth - 2))\" height=\"\(f(top + plotHeight - by))\" "
            + "fill=\"\(colour)\"><title>\(escape(tip))</title></rect>")
      }
      let lx = gx + Double(columns.count) * barWidth / 2
      out.append(
        "<text x=\"\(f(lx))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\">\(escape(benchmark))</text>")
    }
    out.append(
      "<line x1=\"\(f(left))\" y1=\"\(f(top + plotHeight))\" x2=\"\(f(width - 10))\" y2=\"\(f(top + plotHeight))\" "
        + "stroke=\"#333\"/>")

    // Legend.
    let legendTop = top + plotHeight + bottom - 20
    for (i, column) in columns.enumerated() {
      let ly = legendTop + Double(i) * 18
      out.append(
        "<rect x=\"\(f(left))\" y=\"\(f(ly))\" width=\"12\" height=\"12\" "
          + "fill=\"\(Self.palette[i % Self.palette.count])\"/>")
      var label = "\(column.name) (\(column.isPeer ? "peer" : "Trivisor engine"), '\(column.commandLine)')"
      if column.failure != nil { label += " - incomplete" }
      out.append("<text x=\"\(f(left + 18))\" y=\"\(f(ly + 10))\">\(escape(label))</text>")
    }
    out.append("</svg>")
    return out.joined(separator: "\n") + "\n"
  }

  /// `1 ns`, `10 ns`, `100 ns`, `1 us`, ... `1 s`.
  static func decadeLabel(_ decade: Int) -> String {
    let units = [(9, "s"), (6, "ms"), (3, "us"), (0, "ns")]
    for (exponent, unit) in units where decade >= exponent {
      let mantissa = Int(pow(10, Double(decade - exponent)))
      return "\(mantissa) \(unit)"
    }
    return String(format: "%g ns", pow(10, Double(decade)))
  }

  private func f(_ v: Double) -> String { String(format: "%.1f", v) }

  private func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }
}

/// A scheduling run as a picture: one lane per pCPU, time left to right, a box for every interval
/// a vCPU ran, coloured by VM (a hue per VM, lighter for higher vCPU numbers), with a legend.
public struct SchedulerTimelineSVG {
  /// The run.
  public let trace: SchedulerTrace
  /// How many lanes.
  public let pcpus: Int
  /// Only intervals within [start, end) are drawn (the whole run by default).
  public var window: Range<UInt64>
  /// A title line above the lanes.
  public var title: String

  /// A timeline of `trace` on `pcpus` pCPUs.
  public init(trace: SchedulerTrace, pcpus: Int, title: String = "vCPUs on pCPUs") {
    self.trace = trace
    self.pcpus = max(pcpus, 1)
    window = 0..<max(trace.duration, 1)
    self.title = title
  }

  /// Hues for VMs, in order (repeats after eight).
  static let hues = [210, 25, 120, 0, 270, 45, 180, 320]

  /// The fill colour of `vcpu`.
  static func colour(_ vcpu: VCPUID) -> String {
    let hue = hues[vcpu.vm % hues.count]
    let lightness = 35 + (vcpu.vcpu % 4) * 12
    return "hsl(\(hue),65%,\(lightness)%)"
  }

  /// The SVG document.
  public var svg: String {
    let left = 70.0
    let top = 50.0
    let laneHeight = 28.0
    let plotWidth = 900.0
    let vcpus = Set(trace.intervals.map(\.vcpu)).sorted()
    let legendRows = (vcpus.count + 5) / 6
    let height = top + Double(pcpus) * laneHeight + 40 + Double(legendRows) * 18 + 10
    let width = left + plotWidth + 20
    let span = Double(max(window.upperBound - window.lowerBound, 1))
    func x(_ t: UInt64) -> Double {
      left + plotWidth * Double(min(max(t, window.lowerBound), window.upperBound) - window.lowerBound) / span
    }
    var out = [
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.n(width))\" height=\"\(Self.n(height))\" "
        + "font-family=\"sans-serif\" font-size=\"11\">",
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
      "<text x=\"\(Self.n(width / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">"
        + Self.escape(title) + "</text>",
    ]
    for p in 0..<pcpus {
      let y = top + Double(p) * laneHeight
      out.append("<text x=\"\(Self.n(left - 8))\" y=\"\(Self.n(y + 18))\" text-anchor=\"end\">pCPU \(p)</text>")
      out.append(
        "<rect x=\"\(Self.n(left))\" y=\"\(Self.n(y + 2))\" width=\"\(Self.n(plotWidth))\" "
          + "height=\"\(Self.n(laneHeight - 4))\" fill=\"#f2f2f2\"/>")
    }
    // Merge boxes narrower than a pixel with their neighbours of the same vCPU, to keep it small.
    var lastEnd: [Int: (VCPUID, Double, Double)] = [:]
    func emit(_ p: Int, _ v: VCPUID, _ x0: Double, _ x1: Double) {
      let y = top + Double(p) * laneHeight + 2
      out.append(
        "<rect x=\"\(Self.n(x0))\" y=\"\(Self.n(y))\" width=\"\(Self.n(max(x1 - x0, 0.3)))\" "
          + "height=\"\(Self.n(laneHeight - 4))\" fill=\"\(Self.colour(v))\"><title>\(v)</title></rect>")
    }
    for i in trace.intervals.sorted(by: { ($0.pcpu, $0.start) < ($1.pcpu, $1.start) })
    where i.end > window.lowerBound && i.start < window.upperBound && i.pcpu < pcpus {
      let x0 = x(i.start)
      let x1 = x(i.end)
      if let (v, a, b) = lastEnd[i.pcpu], v == i.vcpu, x0 - b < 0.5 {
        lastEnd[i.pcpu] = (v, a, x1)
        continue
      }
      if let (v, a, b) = lastEnd[i.pcpu] { emit(i.pcpu, v, a, b) }
      lastEnd[i.pcpu] = (i.vcpu, x0, x1)
    }
    for (p, (v, a, b)) in lastEnd.sorted(by: { $0.key < $1.key }) { emit(p, v, a, b) }
    // Time axis.
    let axisY = top + Double(pcpus) * laneHeight + 14
    for k in 0...4 {
      let t = window.lowerBound + UInt64(Double(k) / 4 * span)
      out.append(
        "<text x=\"\(Self.n(x(t)))\" y=\"\(Self.n(axisY))\" text-anchor=\"middle\">"
          + SchedulerReport.fixed(Double(t) / 1e6, 1) + " ms</text>")
    }
    for (k, v) in vcpus.enumerated() {
      let lx = left + Double(k % 6) * 150
      let ly = axisY + 22 + Double(k / 6) * 18
      out.append(
        "<rect x=\"\(Self.n(lx))\" y=\"\(Self.n(ly - 10))\" width=\"12\" height=\"12\" fill=\"\(Self.colour(v))\"/>")
      out.append("<text x=\"\(Self.n(lx + 18))\" y=\"\(Self.n(ly))\">\(v)</text>")
    }
    out.append("</svg>")
    return out.joined(separator: "\n") + "\n"
  }

  private static func n(_ v: Double) -> String { SchedulerReport.fixed(v, 1) }

  private static func escape(_ s: String) -> String {
    var out = ""
    for c in s {
      switch c {
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "&": out += "&amp;"
      case "\"": out += "&quot;"
      default: out.append(c)
      }
    }
    return out
  }
}

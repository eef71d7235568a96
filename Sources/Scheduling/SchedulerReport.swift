/// The numbers a scheduling run is judged by, per VM: CPU time against the share its weight
/// entitles it to, cap adherence, wake-up latency percentiles, migrations and steal time.
public struct SchedulerReport: Sendable {
  /// One VM's figures.
  public struct VMRow: Sendable, Equatable {
    /// The VM's index.
    public var vm: Int
    /// Its weight and cap.
    public var share: VMShare
    /// How many vCPUs it has.
    public var vcpus: Int
    /// CPU time received, in percent of one pCPU over the run (200 = two pCPUs all the time).
    public var percentOfOnePCPU: Double
    /// Its part of all the CPU time given out, in percent.
    public var percentOfUsedTime: Double
    /// Its weight's part of all the weights, in percent (what it is entitled to when every VM
    /// wants more than it gets).
    public var percentOfWeights: Double
    /// Whether `percentOfOnePCPU` stayed within the cap (with 1% slack for the last slice); nil
    /// without a cap.
    public var withinCap: Bool?
    /// Median and 99th-percentile wake-up latency of its vCPUs, nanoseconds (0 without wake-ups).
    public var wakeLatencyP50: UInt64
    /// See `wakeLatencyP50`.
    public var wakeLatencyP99: UInt64
    /// Times its vCPUs moved between pCPUs.
    public var migrations: Int
    /// Steal time of its vCPUs together, in percent of the run (runnable, not running).
    public var stealPercent: Double
  }

  /// Rows in VM order.
  public let rows: [VMRow]
  /// pCPUs and run length.
  public let pcpus: Int
  /// See `pcpus`.
  public let duration: UInt64
  /// Busy time of all pCPUs together, in percent of their capacity.
  public let utilizationPercent: Double

  /// The report of `trace` for VMs with `shares`, whose vCPUs are `vcpus`, on `pcpus` pCPUs.
  public init(trace: SchedulerTrace, shares: [VMShare], vcpus: [VCPUID], pcpus: Int) {
    let duration = max(trace.duration, 1)
    self.duration = trace.duration
    self.pcpus = pcpus
    let used = trace.intervals.reduce(UInt64(0)) { $0 + ($1.end - $1.start) }
    utilizationPercent = 100 * Double(used) / Double(duration) / Double(max(pcpus, 1))
    let totalWeight = shares.reduce(0) { $0 + $1.weight }
    rows = shares.indices.map { vm in
      let mine = vcpus.filter { $0.vm == vm }
      let time = trace.cpuTime(ofVM: vm)
      let percent = 100 * Double(time) / Double(duration)
      let latencies = mine.flatMap { trace.wakeLatencies[$0] ?? [] }
      return VMRow(
        vm: vm, share: shares[vm], vcpus: mine.count, percentOfOnePCPU: percent,
        percentOfUsedTime: used == 0 ? 0 : 100 * Double(time) / Double(used),
        percentOfWeights: totalWeight == 0 ? 0 : 100 * Double(shares[vm].weight) / Double(totalWeight),
        withinCap: shares[vm].cap.map { percent <= Double($0) + 1 },
        wakeLatencyP50: SchedulerTrace.percentile(0.5, of: latencies),
        wakeLatencyP99: SchedulerTrace.percentile(0.99, of: latencies),
        migrations: mine.reduce(0) { $0 + (trace.migrationsByVCPU[$1] ?? 0) },
        stealPercent: 100 * Double(mine.reduce(UInt64(0)) { $0 + (trace.stealTime[$1] ?? 0) }) / Double(duration))
    }
  }

  /// The report as a fixed-width table.
  public var text: String {
    var lines = [
      "\(pcpus) pCPU\(pcpus == 1 ? "" : "s"), \(Self.milliseconds(duration)) ms, pCPUs busy \(Self.fixed(utilizationPercent, 1))%",
      "vm  weight  cap   vcpus  cpu%   used%  weight%  cap-ok  wake-p50  wake-p99  migr  steal%",
    ]
    for r in rows {
      let cap = r.share.cap.map { "\($0)%" } ?? "-"
      let ok = r.withinCap.map { $0 ? "yes" : "NO" } ?? "-"
      lines.append(
        [
          Self.pad("\(r.vm)", 3), Self.pad("\(r.share.weight)", 7), Self.pad(cap, 5), Self.pad("\(r.vcpus)", 6),
          Self.pad(Self.fixed(r.percentOfOnePCPU, 1), 6), Self.pad(Self.fixed(r.percentOfUsedTime, 1), 6),
          Self.pad(Self.fixed(r.percentOfWeights, 1), 8), Self.pad(ok, 7),
          Self.pad(Self.microseconds(r.wakeLatencyP50), 9), Self.pad(Self.microseconds(r.wakeLatencyP99), 9),
          Self.pad("\(r.migrations)", 5), Self.fixed(r.stealPercent, 1),
        ].joined(separator: " "))
    }
    return lines.joined(separator: "\n") + "\n"
  }

  private static func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
  }

  /// `value` with `digits` decimals, without Foundation.
  static func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int64((abs(value) * scale).rounded())
    let whole = scaled / Int64(scale)
    let fraction = scaled % Int64(scale)
    var text = "\(value < 0 && scaled != 0 ? "-" : "")\(whole)"
    if digits > 0 {
      let f = String(fraction)
      text += "." + String(repeating: "0", count: digits - f.count) + f
    }
    return text
  }

  private static func milliseconds(_ ns: UInt64) -> String { fixed(Double(ns) / 1e6, 1) }
  private static func microseconds(_ ns: UInt64) -> String { fixed(Double(ns) / 1e3, 1) + "us" }
}

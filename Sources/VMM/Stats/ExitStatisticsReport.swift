import Foundation

/// A snapshot of `ExitStatistics`: printed as a table by `--stats`, written as JSON by
/// `--stats-json PATH`. JSON keys are the property names (stable; tests and tools rely on them).
public struct ExitStatisticsReport: Codable, Sendable, Equatable {
  /// One exit reason's figures.
  public struct Row: Codable, Sendable, Equatable {
    /// `VMExit.reasonName`.
    public var reason: String
    /// How many exits.
    public var count: UInt64
    /// Total handling time.
    public var totalNanoseconds: UInt64
    /// Mean handling time.
    public var meanNanoseconds: Double
    /// Shortest handling time.
    public var minNanoseconds: UInt64
    /// Longest handling time.
    public var maxNanoseconds: UInt64
    /// Median handling time (from the log histogram: within 1/8 of the true value).
    public var p50Nanoseconds: UInt64
    /// 90th percentile handling time.
    public var p90Nanoseconds: UInt64
    /// 99th percentile handling time.
    public var p99Nanoseconds: UInt64
  }
  /// All exits of the run.
  public var totalExits: UInt64
  /// Wall-clock time of the whole run (first entry to stop).
  public var wallNanoseconds: UInt64
  /// Time spent inside the engine's `run()`.
  public var guestNanoseconds: UInt64
  /// Exits per second of wall time.
  public var exitsPerSecond: Double
  /// Guest instructions retired, when the engine counts them (nil for kvm).
  public var instructionsRetired: UInt64?
  /// One row per exit reason seen, most frequent first.
  public var reasons: [Row]
  /// Exits answered inside the engine (`LightweightExitHandler`) by reason name, not counted in
  /// `totalExits` or `reasons`; nil when there were none.
  public var lightweightExits: [String: UInt64]?
  /// The engine's own counters at the end of the run (`VirtualCPU.engineCounters`).
  public var engineCounters: [EngineCounter] = []
  /// Guest console bytes dropped because a host output did not keep up (its bounded queue was
  /// full) or was closed; nil or 0 when nothing was lost.
  public var consoleBytesDropped: UInt64?
  /// Machine resets carried out (the guest rebooted); nil or 0 when none.
  public var resets: Int?
  /// A deprivileged (`--pv`) guest kernel's privileged-instruction faults: #GP(0) in guest kernel
  /// mode, reflected by the monitor; nil outside the deprivileged mode.
  public var privilegedInstructionFaults: UInt64?
  /// A deprivileged guest's SYSCALLs the monitor served from the exception they raised (a host
  /// whose SYSCALL from ring 3 does not reach ring 0); nil outside the deprivileged mode or when
  /// SYSCALL is native.
  public var emulatedSyscalls: UInt64?
  /// Sectors the IDE disks read and wrote for the guest (nil without disks).
  public var diskSectors: DiskSectors?

  /// The IDE controller's transfer counts.
  public struct DiskSectors: Codable, Sendable, Equatable {
    /// Sectors read from the images.
    public var read: UInt64
    /// Sectors written to them.
    public var written: UInt64
  }

  /// The virtio network card's traffic (nil without a network).
  public var network: NetworkTraffic?

  /// Frames and bytes through the network card, as the guest sees them (no virtio headers).
  public struct NetworkTraffic: Codable, Sendable, Equatable {
    /// Frames the guest transmitted.
    public var framesSent: UInt64
    /// Their bytes.
    public var bytesSent: UInt64
    /// Frames delivered to the guest.
    public var framesReceived: UInt64
    /// Their bytes.
    public var bytesReceived: UInt64
    /// Frames for the guest dropped (no receive buffer posted in time, or too long for it).
    public var framesDropped: UInt64
    /// Of `framesSent`, those the network dropped because its thread was behind.
    public var framesDroppedSending: UInt64
  }

  /// One line per vCPU when the machine has more than one (nil otherwise).
  public var vcpus: [VCPUSummary]?

  /// One vCPU's share of the run.
  public struct VCPUSummary: Codable, Sendable, Equatable {
    /// The vCPU's index (0: the bootstrap processor).
    public var index: Int
    /// Its exits.
    public var exits: UInt64
    /// Exits by reason name, only reasons that occurred.
    public var byReason: [String: UInt64]
    /// Instructions it retired, when the engine counts them.
    public var instructionsRetired: UInt64?
    /// A summary of vCPU `index`.
    public init(index: Int, exits: UInt64, byReason: [String: UInt64], instructionsRetired: UInt64?) {
      self.index = index
      self.exits = exits
      self.byReason = byReason
      self.instructionsRetired = instructionsRetired
    }
  }

  /// The report as pretty-printed JSON.
  public func json() throws -> Data {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try e.encode(self)
  }

  /// A fixed-width table for the terminal.
  public var table: String {
    func time(_ ns: Double) -> String {
      if ns >= 1e9 { return String(format: "%.2fs", ns / 1e9) }
      if ns >= 1e6 { return String(format: "%.2fms", ns / 1e6) }
      if ns >= 1e3 { return String(format: "%.2fus", ns / 1e3) }
      return String(format: "%.0fns", ns)
    }
    func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
      let p = String(repeating: " ", count: max(0, w - s.count))
      return left ? s + p : p + s
    }
    var lines: [String] = []
    let header = [
      pad("exit reason", 18, left: true), pad("count", 10), pad("total", 10), pad("mean", 9), pad("p50", 9),
      pad("p90", 9), pad("p99", 9), pad("max", 9),
    ]
    lines.append(header.joined(separator: " "))
    for r in reasons {
      lines.append(
        [
          pad(r.reason, 18, left: true), pad(String(r.count), 10), pad(time(Double(r.totalNanoseconds)), 10),
          pad(time(r.meanNanoseconds), 9), pad(time(Double(r.p50Nanoseconds)), 9),
          pad(time(Double(r.p90Nanoseconds)), 9), pad(time(Double(r.p99Nanoseconds)), 9),
          pad(time(Double(r.maxNanoseconds)), 9),
        ].joined(separator: " "))
    }
    var summary =
      "total: \(totalExits) exits in \(time(Double(wallNanoseconds))) (\(String(format: "%.0f", exitsPerSecond)) exits/s), "
      + "in guest/engine \(time(Double(guestNanoseconds)))"
    if let i = instructionsRetired { summary += ", \(i) instructions retired" }
    lines.append(summary)
    if let lightweight = lightweightExits {
      let list = lightweight.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
      lines.append("lightweight exits (answered inside the engine, not counted above): \(list)")
    }
    for counter in engineCounters {
      var line = "engine: \(counter.description): \(counter.value)"
      if let i = instructionsRetired, i > 0, counter.name.hasSuffix("-instructions") {
        line += String(format: " (%.1f%% of instructions)", Double(counter.value) / Double(i) * 100)
      }
      lines.append(line)
    }
    for v in vcpus ?? [] {
      let reasons = v.byReason.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
      lines.append(
        "vCPU \(v.index): \(v.exits) exits" + (v.instructionsRetired.map { ", \($0) instructions" } ?? "")
          + (reasons.isEmpty ? "" : " (\(reasons))"))
    }
    if let d = diskSectors {
      lines.append("disks: \(d.read) sectors read, \(d.written) written (512 bytes each)")
    }
    if let n = network {
      lines.append(
        "network: the guest sent \(n.framesSent) frames (\(n.bytesSent) bytes, \(n.framesDroppedSending) of them "
          + "dropped) and received \(n.framesReceived) (\(n.bytesReceived) bytes); \(n.framesDropped) dropped on the way in"
      )
    }
    if let faults = privilegedInstructionFaults {
      lines.append("monitor: \(faults) privileged-instruction faults of the guest kernel (#GP(0) in kernel mode)")
    }
    if let syscalls = emulatedSyscalls {
      lines.append("monitor: \(syscalls) SYSCALLs served from the exception they raised (this host's SYSCALL quirk)")
    }
    if let resets, resets > 0 { lines.append("machine: \(resets) reset\(resets == 1 ? "" : "s") (the guest rebooted)") }
    if let dropped = consoleBytesDropped, dropped > 0 {
      lines.append("console: \(dropped) bytes of guest output dropped (host output full or closed)")
    }
    return lines.joined(separator: "\n")
  }
}

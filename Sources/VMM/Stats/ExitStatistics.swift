/// Per-reason VM-exit statistics: count, total and extreme handling times and a log-bucket
/// histogram for percentiles, all in flat preallocated arrays indexed by `ExitKind`.
///
/// The time recorded for an exit is the VMM's share of the round trip: from `run()` returning the
/// exit to the next entry into the guest (handling the exit, delivering interrupts, arming timers).
/// Time inside the engine (`guestNanoseconds`) is kept as one total.
public final class ExitStatistics {
  private static let kinds = ExitKind.allCases.count
  private var counts = [UInt64](repeating: 0, count: kinds)
  private var totals = [UInt64](repeating: 0, count: kinds)
  private var minimums = [UInt64](repeating: .max, count: kinds)
  private var maximums = [UInt64](repeating: 0, count: kinds)
  private var histogram = [UInt64](repeating: 0, count: kinds * LogHistogram.bucketCount)
  /// Lightweight exits (`LightweightExitHandler`) by kind: answered inside the engine's `run()`,
  /// so not in the counts and times above. A raw allocation, not an array like the others: it is
  /// counted on the lightweight path itself, where an array's uniqueness and exclusivity checks
  /// cost more than the count.
  private let lightweightCounts: UnsafeMutablePointer<UInt64> = {
    let p = UnsafeMutablePointer<UInt64>.allocate(capacity: kinds)
    p.initialize(repeating: 0, count: kinds)
    return p
  }()
  /// Nanoseconds spent inside the engine's `run()` (guest execution plus the engine's exit path).
  public var guestNanoseconds: UInt64 = 0

  /// Empty statistics.
  public init() {}

  deinit { lightweightCounts.deallocate() }

  /// Records one exit of `kind` whose handling took `nanoseconds`.
  @inline(__always)
  public func record(_ kind: ExitKind, nanoseconds: UInt64) {
    let k = kind.rawValue
    counts[k] &+= 1
    totals[k] &+= nanoseconds
    if nanoseconds < minimums[k] { minimums[k] = nanoseconds }
    if nanoseconds > maximums[k] { maximums[k] = nanoseconds }
    histogram[k * LogHistogram.bucketCount + LogHistogram.bucket(of: nanoseconds)] &+= 1
  }

  /// Counts one lightweight exit of `kind`.
  @inline(__always)
  public func recordLightweight(_ kind: ExitKind) {
    lightweightCounts[kind.rawValue] &+= 1
  }

  /// How many lightweight exits of `kind` were recorded.
  public func lightweightCount(of kind: ExitKind) -> UInt64 { lightweightCounts[kind.rawValue] }

  /// Adds `other`'s exits and times to these (per-vCPU statistics merged for the machine).
  public func merge(_ other: ExitStatistics) {
    for k in 0..<Self.kinds {
      counts[k] &+= other.counts[k]
      totals[k] &+= other.totals[k]
      minimums[k] = min(minimums[k], other.minimums[k])
      maximums[k] = max(maximums[k], other.maximums[k])
      lightweightCounts[k] &+= other.lightweightCounts[k]
    }
    for i in histogram.indices { histogram[i] &+= other.histogram[i] }
    guestNanoseconds &+= other.guestNanoseconds
  }

  /// How many exits of `kind` were recorded.
  public func count(of kind: ExitKind) -> UInt64 { counts[kind.rawValue] }
  /// All exits recorded.
  public var totalExits: UInt64 { counts.reduce(0, &+) }

  /// The duration below which `fraction` (0...1) of the recorded exits of `kind` fell, to the
  /// histogram's resolution (nil when none were recorded).
  public func percentile(_ fraction: Double, of kind: ExitKind) -> UInt64? {
    let k = kind.rawValue
    let n = counts[k]
    guard n > 0 else { return nil }
    let target = max(1, UInt64((Double(n) * fraction).rounded(.up)))
    var seen: UInt64 = 0
    let base = k * LogHistogram.bucketCount
    for b in 0..<LogHistogram.bucketCount {
      seen += histogram[base + b]
      if seen >= target {
        return min(max(LogHistogram.midpoint(of: b), minimums[k]), maximums[k])
      }
    }
    return maximums[k]
  }

  /// A snapshot for printing and JSON.
  public func report(
    wallNanoseconds: UInt64, instructionsRetired: UInt64?, engineCounters: [EngineCounter] = []
  ) -> ExitStatisticsReport {
    var rows: [ExitStatisticsReport.Row] = []
    for kind in ExitKind.allCases where counts[kind.rawValue] > 0 {
      let k = kind.rawValue
      rows.append(
        ExitStatisticsReport.Row(
          reason: kind.name, count: counts[k], totalNanoseconds: totals[k],
          meanNanoseconds: Double(totals[k]) / Double(counts[k]), minNanoseconds: minimums[k],
          maxNanoseconds: maximums[k], p50Nanoseconds: percentile(0.50, of: kind) ?? 0,
          p90Nanoseconds: percentile(0.90, of: kind) ?? 0, p99Nanoseconds: percentile(0.99, of: kind) ?? 0))
    }
    rows.sort { $0.count > $1.count }
    let total = totalExits
    let seconds = Double(wallNanoseconds) / 1e9
    var lightweight: [String: UInt64] = [:]
    for kind in ExitKind.allCases where lightweightCounts[kind.rawValue] > 0 {
      lightweight[kind.name] = lightweightCounts[kind.rawValue]
    }
    return ExitStatisticsReport(
      totalExits: total, wallNanoseconds: wallNanoseconds, guestNanoseconds: guestNanoseconds,
      exitsPerSecond: seconds > 0 ? Double(total) / seconds : 0, instructionsRetired: instructionsRetired,
      reasons: rows, lightweightExits: lightweight.isEmpty ? nil : lightweight, engineCounters: engineCounters)
  }
}

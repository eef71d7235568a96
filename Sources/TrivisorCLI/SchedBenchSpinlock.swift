import Foundation
import GuestImages
import Launcher
import Scheduling
import VMM

/// `bench sched`'s spinlock row: the reference kernel's contended ticket lock (`bench smp
/// only=spinlock`, every vCPU through a start barrier first) with 4 vCPUs on a pool of 2 pCPUs, in
/// each mode (no spin detection; pause-loop exiting with directed yield; relaxed co-scheduling;
/// both), several runs of each taken in turn so that the host's load falls on all modes alike.
enum SchedBenchSpinlock {
  /// One way to run the pool.
  struct Mode: Sendable {
    /// The name in the table.
    var name: String
    /// Pause-loop exiting's threshold (0: off).
    var pauseLoopPauses: UInt64
    /// Relaxed co-scheduling's skew (nil: off).
    var coScheduleSkew: UInt64?
  }

  /// The modes measured, the first the baseline.
  static let modes = [
    Mode(name: "none", pauseLoopPauses: 0, coScheduleSkew: nil),
    Mode(name: "spin-detect", pauseLoopPauses: VCPUScheduling.defaultPauseLoopPauses, coScheduleSkew: nil),
    Mode(name: "co-schedule", pauseLoopPauses: 0, coScheduleSkew: SchedulerParameters.relaxedCoScheduleSkew),
    Mode(
      name: "detect+co", pauseLoopPauses: VCPUScheduling.defaultPauseLoopPauses,
      coScheduleSkew: SchedulerParameters.relaxedCoScheduleSkew),
  ]

  /// vCPUs and pCPUs of the scenario.
  static let vcpus = 4
  static let pcpus = 2

  /// One run's result: nanoseconds per acquisition, or nil when it timed out.
  struct Sample {
    /// The guest's ns per acquisition (its TSC), nil: no result in time.
    var nanosecondsPerAcquisition: Double?
    /// Pause-loop yields the runners asked for.
    var spinYields: Int
    /// Wall time of the whole run, boot included.
    var wallSeconds: Double
  }

  /// Boots the kernel once in `mode` on `entry`'s engine and returns what the benchmark reported.
  static func runOnce(_ entry: EngineRegistry.Entry, mode: Mode, scale: Int, timeout: Double) throws -> Sample {
    var parameters = SchedulerParameters()
    parameters.coScheduleSkew = mode.coScheduleSkew
    let session = SchedulingSession(pcpus: pcpus, parameters: parameters)
    let scheduling = session.addMachine(vcpuCount: vcpus, pauseLoopPauses: mode.pauseLoopPauses)
    session.start()
    defer { session.finish() }
    let run = try ReferenceGuest.run(
      engine: try entry.make(false), commandLine: "bench smp scale=\(scale) only=spinlock", timeoutSeconds: timeout,
      cpuCount: vcpus, scheduling: scheduling)
    let ns = run.output.split(separator: "\n").lazy.compactMap { line -> Double? in
      guard line.hasPrefix("BENCH name=spinlock ") else { return nil }
      return line.split(separator: " ").lazy.compactMap { field -> Double? in
        field.hasPrefix("ns_per_op=") ? Double(field.dropFirst("ns_per_op=".count)) : nil
      }.first
    }.first
    if ns == nil, case .timeout = run.outcome.reason {
      return Sample(
        nanosecondsPerAcquisition: nil, spinYields: scheduling.spinYields.value, wallSeconds: run.wallSeconds)
    }
    guard let ns else {
      throw EngineError("no spinlock result: \(run.outcome.reason.description.split(separator: "\n").first ?? "")")
    }
    return Sample(nanosecondsPerAcquisition: ns, spinYields: scheduling.spinYields.value, wallSeconds: run.wallSeconds)
  }

  /// The median of `values`, nil (timed out) counted as larger than all.
  static func median(_ values: [Double?]) -> Double? {
    let sorted = values.sorted { ($0 ?? .infinity) < ($1 ?? .infinity) }
    guard !sorted.isEmpty else { return nil }
    return sorted[sorted.count / 2]
  }

  /// The largest of `values`, nil when one timed out.
  static func worst(_ values: [Double?]) -> Double? {
    values.contains { $0 == nil } ? nil : values.compactMap { $0 }.max()
  }

  /// Nanoseconds as a short figure ("812 ns", "35.2 us", "4.10 ms").
  static func duration(_ ns: Double) -> String {
    if ns >= 1e6 { return String(format: "%.2f ms", ns / 1e6) }
    if ns >= 1e3 { return String(format: "%.1f us", ns / 1e3) }
    return String(format: "%.0f ns", ns)
  }

  /// The table rows for one engine: per mode run, the runs' median, spread, and the factor of
  /// `none`'s median over the mode's and of `none`'s worst run over the mode's worst.
  /// A timed-out run took more than `timeout` less the shortest whole run (boot included) of any
  /// mode; over `acquisitions` that is the least ns per acquisition it would have shown.
  static func rows(engine: String, samples: [[Sample]], timeout: Double, acquisitions: Int) -> [[String]] {
    let shortest = samples.joined().filter { $0.nanosecondsPerAcquisition != nil }.map(\.wallSeconds).min() ?? 0
    let bound = max(timeout - shortest, 0) * 1e9 / Double(max(acquisitions, 1))
    let baseline = median(samples.first?.map(\.nanosecondsPerAcquisition) ?? [])
    let baselineWorst = worst(samples.first?.map(\.nanosecondsPerAcquisition) ?? [])
    return zip(modes, samples).filter { !$0.1.isEmpty }.map { mode, runs in
      let values = runs.map(\.nanosecondsPerAcquisition)
      let m = median(values)
      let finite = values.compactMap { $0 }
      let spread: String
      if let lo = finite.min(), let hi = finite.max() {
        spread = duration(lo) + " - " + (finite.count < values.count ? "timeout" : duration(hi))
      } else {
        spread = "all timed out"
      }
      func factor(_ base: Double?, _ value: Double?) -> String {
        switch (base, value) {
        case (let b?, let v?): return String(format: "%.1fx", b / v)
        case (nil, let v?): return String(format: "> %.0fx", bound / v)
        case (_, nil): return "-"
        }
      }
      let yields = runs.map(\.spinYields).sorted()[runs.count / 2]
      return [
        engine, mode.name, "\(runs.count)", m.map(duration) ?? "> \(duration(bound)) (timed out)", spread,
        factor(baseline, m), factor(baselineWorst, worst(values)), "\(yields)",
      ]
    }
  }
}

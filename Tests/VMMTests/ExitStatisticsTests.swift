import Foundation
import Testing
import VMM

/// The exit statistics arithmetic: histogram buckets, percentiles, engine counters, reason names.
@Suite struct ExitStatisticsTests {
  @Test func histogramBucketsAreMonotonicAndTight() {
    var previous = -1
    for v: UInt64 in [0, 1, 2, 3, 4, 5, 7, 8, 100, 1000, 1 << 20, 1 << 40, .max] {
      let b = LogHistogram.bucket(of: v)
      #expect(b >= previous)
      #expect(b < LogHistogram.bucketCount)
      #expect(LogHistogram.lowerBound(of: b) <= v)
      if b + 1 < LogHistogram.bucketCount { #expect(LogHistogram.lowerBound(of: b + 1) > v) }
      previous = b
    }
  }

  @Test func percentilesFollowTheRecordedDistribution() throws {
    let s = ExitStatistics()
    for i in 1...1000 { s.record(.ioOut, nanoseconds: UInt64(i) * 1000) }  // 1 us ... 1 ms
    s.record(.halt, nanoseconds: 5)
    let p50 = try #require(s.percentile(0.5, of: .ioOut))
    let p99 = try #require(s.percentile(0.99, of: .ioOut))
    #expect(p50 > 400_000 && p50 < 600_000)
    #expect(p99 > 850_000 && p99 <= 1_000_000)
    #expect(s.percentile(0.5, of: .mmioRead) == nil)
    let report = s.report(wallNanoseconds: 2_000_000_000, instructionsRetired: nil)
    #expect(report.totalExits == 1001)
    #expect(report.reasons.first?.reason == "io-out")
    #expect(report.reasons.first?.meanNanoseconds == 500_500)
    #expect(report.exitsPerSecond == 500.5)
    let json = String(decoding: try report.json(), as: UTF8.self)
    #expect(json.contains("\"p99Nanoseconds\""))
    #expect(report.table.contains("io-out"))
  }

  /// Lightweight exits are counted apart: not in the total or the rows, merged across vCPUs, in
  /// the JSON and on a line of their own.
  @Test func lightweightExitsAreCountedApart() throws {
    let a = ExitStatistics()
    let b = ExitStatistics()
    a.record(.ioOut, nanoseconds: 1000)
    for _ in 0..<3 { a.recordLightweight(.ioOut) }
    b.recordLightweight(.ioIn)
    b.recordLightweight(.ioOut)
    a.merge(b)
    #expect(a.lightweightCount(of: .ioOut) == 4 && a.lightweightCount(of: .ioIn) == 1)
    let report = a.report(wallNanoseconds: 1_000_000, instructionsRetired: nil)
    #expect(report.totalExits == 1)
    #expect(report.reasons.map(\.reason) == ["io-out"])
    #expect(report.lightweightExits == ["io-out": 4, "io-in": 1])
    let json = String(decoding: try report.json(), as: UTF8.self)
    #expect(json.contains("\"lightweightExits\""))
    #expect(
      report.table.contains("lightweight exits (answered inside the engine, not counted above): io-out 4, io-in 1"))
    #expect(ExitStatistics().report(wallNanoseconds: 1, instructionsRetired: nil).lightweightExits == nil)
  }

  @Test func engineCountersFollowTheSummary() throws {
    let s = ExitStatistics()
    let counters = [
      EngineCounter(name: "fast-path-instructions", value: 900, description: "fast handlers"),
      EngineCounter(name: "blocks", value: 7, description: "blocks compiled"),
    ]
    let report = s.report(wallNanoseconds: 1_000, instructionsRetired: 1_000, engineCounters: counters)
    let lines = report.table.split(separator: "\n").map(String.init)
    #expect(lines.suffix(2) == ["engine: fast handlers: 900 (90.0% of instructions)", "engine: blocks compiled: 7"])
    let decoded = try JSONDecoder().decode(ExitStatisticsReport.self, from: report.json())
    #expect(decoded.engineCounters == counters)
  }

  @Test func exitKindsMatchReasonNames() {
    let exits: [VMExit] = [
      .io(PortAccess(port: 1, size: 1, isWrite: true)), .io(PortAccess(port: 1, size: 1, isWrite: false)),
      .mmio(MMIOAccess(address: 0, size: 4, isWrite: false)), .halt, .kicked, .interruptWindow,
      .shutdown(.tripleFault), .internalError(InternalErrorReport(reason: "")),
    ]
    for e in exits { #expect(ExitKind(e).name == e.reasonName) }
  }
}

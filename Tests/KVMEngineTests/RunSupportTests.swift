import Foundation
import Testing
import VMM

/// The engine-independent parts of running a guest: sizes, serial backends, exit statuses and the
/// statistics arithmetic.
@Suite struct RunSupportTests {
  @Test func memorySizesParseWithBinarySuffixes() throws {
    #expect(try MemorySize(parsing: "256M").bytes == 256 << 20)
    #expect(try MemorySize(parsing: "1G").bytes == 1 << 30)
    #expect(try MemorySize(parsing: "1gib").bytes == 1 << 30)
    #expect(try MemorySize(parsing: "65536K").bytes == 64 << 20)
    #expect(try MemorySize(parsing: "16777216").bytes == 16 << 20)
    #expect(try MemorySize(parsing: "1T").bytes == 1 << 40)
  }

  @Test func garbageAndAbsurdSizesAreRefused() {
    for bad in [
      "", "M", "12Q", "-1M", "1.5G", "2T", "99999999999999999999", "18446744073709551615K", "0", "4K",
      "1048577", "１M",
    ] {
      #expect(throws: MemorySize.Invalid.self, "\(bad)") { try MemorySize(parsing: bad) }
    }
  }

  @Test func serialBackendsParse() {
    #expect(SerialBackend(argument: "stdio") == .stdio)
    #expect(SerialBackend(argument: "null") == .null)
    #expect(SerialBackend(argument: "stderr") == .stderr)
    #expect(SerialBackend(argument: "file:/tmp/x") == .file("/tmp/x"))
    #expect(SerialBackend(argument: "file:") == nil)
    #expect(SerialBackend(argument: "tcp:1234") == nil)
  }

  @Test func exitStatusesNeverCollideWithTheGuests() {
    let report = InternalErrorReport(reason: "x")
    let vmm: [StopReason] = [
      .internalError(report), .shutdown(.tripleFault, report), .haltedForever(report), .timeout(seconds: 1),
      .hostSignal(2), .reset,
    ]
    let codes = vmm.map(\.exitStatus)
    #expect(codes == [4, 6, 8, 10, 12, 14])
    #expect(codes.allSatisfy { $0 % 2 == 0 && $0 != 0 })
    #expect(StopReason.powerOff.exitStatus == 0)
    #expect(StopReason.outputMatched("x").exitStatus == 0)
    #expect(StopReason.debugExit(value: 0x10).exitStatus == 0x21)
    #expect(StopReason.debugExit(value: 0).exitStatus == 1)
  }

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

#if canImport(Glibc)
  import Glibc
#endif

/// The host side of `--serial stdio`: the reader thread moves bytes into the queue and wakes the
/// vCPU thread.
@Suite struct HostConsoleInputTests {
  @Test func readerThreadQueuesInputAndWakesTheVCPUThread() throws {
    var fds: [Int32] = [-1, -1]
    try #require(pipe(&fds) == 0)
    let queue = HostInputQueue()
    let wakeup = WakeupEvent()
    let input = HostConsoleInput(descriptor: fds[0], queue: queue, wake: { wakeup.signal() })
    _ = Array("ls\n".utf8).withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
    var received: [UInt8] = []
    for _ in 0..<100 where received.count < 3 {
      wakeup.wait(timeout: 50_000_000)
      received += queue.drain()
    }
    #expect(received == Array("ls\n".utf8))
    input.restore()
    close(fds[1])
    close(fds[0])
  }
}

import Testing

@testable import VMM

@Suite struct PIT8254Tests {
  let clock = ManualClock(1_000_000_000)  // start away from zero
  let sink = RecordingSink()
  let pit: PIT8254
  let port61: SystemControlPort

  init() {
    pit = PIT8254(clock: clock, irq: InterruptLine(sink: sink, line: 0))
    port61 = SystemControlPort(pit: pit)
  }

  func out(_ port: UInt16, _ v: UInt8) { pit.write(port: port, size: 1, value: UInt32(v)) }
  func inb(_ port: UInt16) -> UInt8 { UInt8(pit.read(port: port, size: 1)) }
  func program(channel: UInt16, mode: UInt8, count: UInt16) {
    out(0x43, UInt8(channel) << 6 | 0x30 | mode << 1)
    out(0x40 + channel, UInt8(count & 0xFF))
    out(0x40 + channel, UInt8(count >> 8))
  }
  func latchedCount(_ channel: UInt16) -> UInt16 {
    out(0x43, UInt8(channel) << 6)
    return UInt16(inb(0x40 + channel)) | UInt16(inb(0x40 + channel)) << 8
  }
  /// Nanoseconds of `ticks` PIT clocks (rounded up).
  func ns(_ ticks: UInt64) -> UInt64 { (ticks * 1_000_000_000 + PIT8254.frequency - 1) / PIT8254.frequency }

  @Test func tickConversionRoundTrips() {
    for t: UInt64 in [0, 1, 2, 1193, 1_193_182, 123_456_789, 1 << 40] {
      let n = PIT8254.nanoseconds(atTick: t)
      #expect(PIT8254.ticks(atNanoseconds: n) == t)
      if n > 0 { #expect(PIT8254.ticks(atNanoseconds: n - 1) == t - 1) }
    }
    #expect(PIT8254.ticks(atNanoseconds: 1_000_000_000) == 1_193_182)
    #expect(PIT8254.ticks(atNanoseconds: .max) > 0)  // no overflow trap
  }

  @Test func idleUntilProgrammed() {
    #expect(pit.nextDeadline == nil)
    pit.advance(to: clock.nanoseconds + 1_000_000_000)
    #expect(sink.risingEdges[0] == 0)
  }

  @Test func mode2RaisesIRQ0AtTheProgrammedRate() {
    program(channel: 0, mode: 2, count: 1193)  // ~1 kHz
    let start = clock.nanoseconds
    let first = try! #require(pit.nextDeadline)
    #expect(first >= start + 999_000 && first <= start + 1_000_200)
    pit.advance(to: first - 1)
    #expect(sink.risingEdges[0] == 0)
    pit.advance(to: first)
    #expect(sink.risingEdges[0] == 1)
    #expect(!sink.levels[0])  // a pulse
    let second = try! #require(pit.nextDeadline)
    #expect(second - first >= 999_000 && second - first <= 1_000_200)
    // 100 ms of guest time, advanced every period: 100 interrupts.
    var now = second
    for _ in 0..<99 {
      pit.advance(to: now)
      now = pit.nextDeadline!
    }
    #expect(sink.risingEdges[0] == 100)
    #expect(pit.coalescedInterrupts == 0)
  }

  @Test func longPauseCoalescesIntoOneInterrupt() {
    program(channel: 0, mode: 3, count: 11932)  // ~100 Hz
    pit.advance(to: clock.nanoseconds + 10_000_000_000)  // 10 s late
    #expect(sink.risingEdges[0] == 1)
    #expect(pit.coalescedInterrupts > 990 && pit.coalescedInterrupts < 1010)
    let next = try! #require(pit.nextDeadline)
    #expect(next > clock.nanoseconds + 10_000_000_000)
  }

  @Test func mode0FiresOnce() {
    program(channel: 0, mode: 0, count: 100)
    let due = try! #require(pit.nextDeadline)
    #expect(due == clock.nanoseconds + ns(100))
    pit.advance(to: due + 1_000_000)
    #expect(sink.risingEdges[0] == 1)
    #expect(pit.nextDeadline == nil)
    pit.advance(to: due + 1_000_000_000)
    #expect(sink.risingEdges[0] == 1)
  }

  @Test func countDecreasesWithGuestTime() {
    program(channel: 0, mode: 2, count: 0)  // 65536
    #expect(latchedCount(0) == 0)  // just loaded: 65536 reads as 0
    clock.advance(by: ns(1000))
    #expect(latchedCount(0) == UInt16(65536 - 1000))
    clock.advance(by: ns(65536))
    #expect(latchedCount(0) == UInt16(65536 - 1000))  // periodic
  }

  @Test func latchHoldsTheValueWhileTimePasses() {
    program(channel: 0, mode: 2, count: 50000)
    clock.advance(by: ns(100))
    out(0x43, 0x00)
    clock.advance(by: ns(5000))
    let v = UInt16(inb(0x40)) | UInt16(inb(0x40)) << 8
    #expect(v == 49900)
    let live = UInt16(inb(0x40)) | UInt16(inb(0x40)) << 8
    #expect(live == 44900)
  }

  @Test func lsbAndMsbOnlyAccess() {
    out(0x43, 0x90 | 0x00)  // channel 2, LSB only, mode 0
    out(0x42, 0x20)
    #expect(pit.channels[2].reload == 0x20)
    out(0x43, 0xA0)  // channel 2, MSB only
    out(0x42, 0x02)
    #expect(pit.channels[2].reload == 0x200)
    #expect(inb(0x42) == 0x02)
  }

  @Test func readBackStatusAndCount() {
    program(channel: 1, mode: 3, count: 1000)
    out(0x43, 0xC0 | 0x04)  // read back count and status of channel 1
    let status = inb(0x41)
    #expect(status & 0x3F == 0x36)  // LSB/MSB, mode 3, binary
    #expect(status & 0x40 == 0)  // count loaded
    let count = UInt16(inb(0x41)) | UInt16(inb(0x41)) << 8
    #expect(count == 1000)
    out(0x43, 0x76)  // channel 1 control word again, no count yet
    out(0x43, 0xE0 | 0x04)  // status only
    #expect(inb(0x41) & 0x40 == 0x40)  // null count
  }

  @Test func bcdCounting() {
    out(0x43, 0x30 | 0x01)  // channel 0, lo/hi, mode 0, BCD
    out(0x40, 0x00)
    out(0x40, 0x10)  // 1000 decimal
    #expect(pit.channels[0].reload == 1000)
    clock.advance(by: ns(1))
    out(0x43, 0x00)
    #expect(inb(0x40) == 0x99 && inb(0x40) == 0x09)  // 0999
  }

  @Test func channel2GateAndOutputThroughPort61() {
    // Linux/SeaBIOS calibration: gate on, speaker off, mode 0, wait for OUT2.
    port61.write(port: 0x61, size: 1, value: 0x01)
    program(channel: 2, mode: 0, count: 1000)
    #expect(port61.read(port: 0x61, size: 1) & 0x20 == 0)
    clock.advance(by: ns(999))
    #expect(port61.read(port: 0x61, size: 1) & 0x20 == 0)
    clock.advance(by: ns(1))
    #expect(port61.read(port: 0x61, size: 1) & 0x21 == 0x21)
    #expect(sink.risingEdges[0] == 0)  // channel 2 drives no IRQ
  }

  @Test func gateLowPausesMode0() {
    port61.write(port: 0x61, size: 1, value: 0x01)
    program(channel: 2, mode: 0, count: 1000)
    clock.advance(by: ns(100))
    port61.write(port: 0x61, size: 1, value: 0x00)
    clock.advance(by: ns(5000))
    #expect(latchedCount(2) == 900)
    #expect(port61.read(port: 0x61, size: 1) & 0x20 == 0)
    port61.write(port: 0x61, size: 1, value: 0x01)
    clock.advance(by: ns(100))
    #expect(latchedCount(2) == 800)
  }

  @Test func mode3IsASquareWave() {
    port61.write(port: 0x61, size: 1, value: 0x03)
    #expect(port61.speakerEnabled)
    program(channel: 2, mode: 3, count: 100)
    var highs = 0
    for _ in 0..<100 {
      if pit.output(channel: 2) { highs += 1 }
      clock.advance(by: ns(1))
    }
    #expect(highs == 50)
  }

  @Test func mode2OutputDipsForOneTick() {
    port61.write(port: 0x61, size: 1, value: 0x01)
    program(channel: 2, mode: 2, count: 10)
    var lows = 0
    for _ in 0..<30 {
      if !pit.output(channel: 2) { lows += 1 }
      clock.advance(by: ns(1))
    }
    #expect(lows == 3)
  }

  @Test func mode1WaitsForGateTrigger() {
    program(channel: 2, mode: 1, count: 10)
    clock.advance(by: ns(100))
    #expect(pit.output(channel: 2))  // high, not triggered
    port61.write(port: 0x61, size: 1, value: 0x01)  // rising gate edge
    #expect(!pit.output(channel: 2))
    clock.advance(by: ns(10))
    #expect(pit.output(channel: 2))
  }

  @Test func refreshBitToggles() {
    let a = port61.read(port: 0x61, size: 1) & 0x10
    clock.advance(by: 15_085)
    let b = port61.read(port: 0x61, size: 1) & 0x10
    #expect(a != b)
  }

  @Test func controlPortReadsAsFF() {
    #expect(inb(0x43) == 0xFF)
  }
}

import Testing

@testable import VMM

@Suite struct CMOSTests {
  func reg(_ c: CMOS, _ r: UInt8) -> UInt8 {
    c.write(port: 0x70, size: 1, value: UInt32(r))
    return UInt8(c.read(port: 0x71, size: 1))
  }
  func set(_ c: CMOS, _ r: UInt8, _ v: UInt8) {
    c.write(port: 0x70, size: 1, value: UInt32(r))
    c.write(port: 0x71, size: 1, value: UInt32(v))
  }

  // 2024-02-29 13:45:30 UTC, a Thursday.
  let leapDay: Int64 = 1_709_214_330

  @Test func readsTimeInBCD24Hour() {
    let clock = ManualClock()
    let c = CMOS(clock: clock, ramSize: 64 << 20, startTime: leapDay)
    #expect(reg(c, 0x00) == 0x30)
    #expect(reg(c, 0x02) == 0x45)
    #expect(reg(c, 0x04) == 0x13)
    #expect(reg(c, 0x06) == 0x05)  // weekday 1 = Sunday
    #expect(reg(c, 0x07) == 0x29)
    #expect(reg(c, 0x08) == 0x02)
    #expect(reg(c, 0x09) == 0x24)
    #expect(reg(c, 0x32) == 0x20)
    clock.advance(by: 31_000_000_000)
    #expect(reg(c, 0x00) == 0x01)
    #expect(reg(c, 0x02) == 0x46)
  }

  @Test func statusRegisters() {
    let c = CMOS(clock: ManualClock(), ramSize: 64 << 20, startTime: 0)
    #expect(reg(c, 0x0A) & 0x80 == 0)  // UIP clear
    #expect(reg(c, 0x0B) == 0x02)
    #expect(reg(c, 0x0C) == 0)
    #expect(reg(c, 0x0D) == 0x80)
  }

  @Test func binaryAnd12HourModes() {
    let c = CMOS(clock: ManualClock(), ramSize: 64 << 20, startTime: leapDay)
    set(c, 0x0B, 0x04)  // binary, 12-hour
    #expect(reg(c, 0x00) == 30)
    #expect(reg(c, 0x04) == 0x81)  // 1 PM
    #expect(reg(c, 0x09) == 24)
  }

  @Test func guestCanSetTheClock() {
    let c = CMOS(clock: ManualClock(), ramSize: 64 << 20, startTime: leapDay)
    set(c, 0x09, 0x25)  // year 2025: 2025-02-29 does not exist -> refused silently
    #expect(reg(c, 0x09) == 0x24)
    set(c, 0x07, 0x01)  // March 1st... the 1st of February
    set(c, 0x09, 0x25)
    #expect(reg(c, 0x09) == 0x25 && reg(c, 0x07) == 0x01 && reg(c, 0x08) == 0x02)
    #expect(reg(c, 0x04) == 0x13)
    #expect(c.currentTime == 1_738_417_530)  // 2025-02-01 13:45:30
  }

  @Test func setBitCollectsWritesLikeLinux() {
    let c = CMOS(clock: ManualClock(), ramSize: 64 << 20, startTime: leapDay)
    set(c, 0x0B, 0x82)  // SET
    set(c, 0x08, 0x04)  // April 29th (valid), then
    set(c, 0x07, 0x31)  // April 31st: invalid in between, fine while SET
    set(c, 0x08, 0x05)  // May 31st
    set(c, 0x09, 0x23)
    #expect(reg(c, 0x07) == 0x31)
    set(c, 0x0B, 0x02)
    #expect(reg(c, 0x07) == 0x31 && reg(c, 0x08) == 0x05 && reg(c, 0x09) == 0x23)
    #expect(reg(c, 0x02) == 0x45)
  }

  @Test func memorySizeFieldsFor64MiB() {
    let c = CMOS(clock: nil, ramSize: 64 << 20, startTime: 0)
    #expect(UInt16(c[0x15]) | UInt16(c[0x16]) << 8 == 640)
    #expect(UInt16(c[0x17]) | UInt16(c[0x18]) << 8 == 63 * 1024)
    #expect(UInt16(c[0x30]) | UInt16(c[0x31]) << 8 == 63 * 1024)
    #expect(UInt16(c[0x34]) | UInt16(c[0x35]) << 8 == UInt16((48 << 20) >> 16))
    #expect(c[0x5B] == 0 && c[0x5C] == 0 && c[0x5D] == 0)
  }

  @Test func memorySizeFieldsForSmallAndLargeRAM() {
    let small = CMOS(ramSize: 8 << 20, startTime: 0)
    #expect(UInt16(small[0x17]) | UInt16(small[0x18]) << 8 == 7 * 1024)
    #expect(small[0x34] == 0 && small[0x35] == 0)
    let big = CMOS(ramSize: 6 << 30, startTime: 0)  // 3 GiB low + 3 GiB above 4 GiB
    #expect(UInt16(big[0x34]) | UInt16(big[0x35]) << 8 == UInt16(((3 << 30) - (16 << 20)) >> 16))
    let above = UInt32(big[0x5B]) | UInt32(big[0x5C]) << 8 | UInt32(big[0x5D]) << 16
    #expect(above == (3 << 30) >> 16)
  }

  @Test func nvramAndNMIMask() {
    let c = CMOS(ramSize: 1 << 20, startTime: 0)
    c.write(port: 0x70, size: 1, value: 0x80 | 0x40)
    #expect(c.nmiMasked)
    c.write(port: 0x71, size: 1, value: 0xAB)
    #expect(reg(c, 0x40) == 0xAB)
    #expect(!c.nmiMasked)
    #expect(c.read(port: 0x70, size: 1) == 0xFF)
  }

  @Test func checksumCoversBytes10To2D() {
    let c = CMOS(ramSize: 32 << 20, startTime: 0)
    set(c, 0x20, 0x11)
    var sum: UInt16 = 0
    for r in 0x10...0x2D { sum &+= UInt16(reg(c, UInt8(r))) }
    #expect(UInt16(reg(c, 0x2E)) << 8 | UInt16(reg(c, 0x2F)) == sum)
  }

  @Test func civilTimeRoundTrips() {
    for t: Int64 in [0, 951_782_400, 1_709_214_330, 4_102_444_800, 253_402_300_799] {
      #expect(CivilTime(unixSeconds: t).unixSeconds == t)
    }
    let epoch = CivilTime(unixSeconds: 0)
    #expect(epoch.year == 1970 && epoch.month == 1 && epoch.day == 1 && epoch.weekday == 4)
  }
}

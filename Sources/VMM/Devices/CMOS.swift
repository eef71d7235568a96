#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The MC146818 real-time clock and its 128 bytes of battery-backed CMOS RAM.
///
/// Port 0x70 selects a register (bits 6:0; bit 7 is the NMI mask, kept in `nmiMasked`), port 0x71
/// reads or writes it. Register 0x70 reads back as all ones (it is write-only on PCs).
///
/// The time registers (0x00-0x09, 0x32 century) read the wall clock: the host's UTC time at
/// creation plus the guest time elapsed since (or the host's time now, without a guest clock),
/// plus whatever offset the guest set by writing the time registers. They are BCD or binary and
/// 24- or 12-hour as status register B asks (BCD, 24-hour by default). The update-in-progress flag
/// is never set: a read always sees a consistent time. Alarms and periodic interrupts are not
/// modelled (status C reads zero, IRQ 8 is never raised).
///
/// The memory-size bytes are filled the way SeaBIOS and QEMU read them:
/// 0x15/0x16 base memory in KiB (640); 0x17/0x18 and 0x30/0x31 extended memory above 1 MiB in
/// KiB, at most 63 MiB; 0x34/0x35 memory above 16 MiB up to the 3 GiB hole in 64 KiB blocks;
/// 0x5B-0x5D memory above 4 GiB in 64 KiB blocks; 0x5F the number of CPUs minus one.
public final class CMOS: PortIODevice {
  private var ram = [UInt8](repeating: 0, count: 128)
  private var index: UInt8 = 0
  /// NMI disabled by the last index write (bit 7 of port 0x70).
  public private(set) var nmiMasked = false
  private let clock: (any GuestClock)?
  private let startNanoseconds: UInt64
  private let startSeconds: Int64
  /// Seconds the guest moved its clock by writing the time registers.
  private var guestOffset: Int64 = 0
  /// The time registers as the guest writes them while status B's SET bit is on.
  private var pendingTime: CivilTime?

  // Register numbers.
  static let seconds = 0x00, minutes = 0x02, hours = 0x04, weekday = 0x06, day = 0x07
  static let month = 0x08, year = 0x09, statusA = 0x0A, statusB = 0x0B, statusC = 0x0C
  static let statusD = 0x0D, century = 0x32

  /// - Parameters:
  ///   - clock: guest time; the RTC advances with it from `startTime`. Without one it reads the
  ///     host's clock directly.
  ///   - ramSize: guest RAM in bytes, for the memory-size fields.
  ///   - startTime: the wall time (seconds since 1970, UTC) at creation; defaults to the host's.
  public init(clock: (any GuestClock)? = nil, ramSize: UInt64, startTime: Int64? = nil, cpuCount: Int = 1) {
    self.clock = clock
    startNanoseconds = clock?.nanoseconds ?? 0
    startSeconds = startTime ?? Int64(time(nil))
    ram[Self.statusA] = 0x26  // 32.768 kHz time base, 1024 Hz periodic rate
    ram[Self.statusB] = 0x02  // 24-hour, BCD, no interrupts
    ram[Self.statusD] = 0x80  // valid RAM and time
    ram[0x10] = 0x00  // no floppy drives
    ram[0x14] = 0x02  // equipment: FPU present, display EGA/VGA (bits 5:4 = 00), no floppies
    setMemorySize(ramSize)
    ram[0x5F] = UInt8(clamping: max(1, cpuCount) - 1)
    updateChecksum()
  }

  private func setMemorySize(_ ramSize: UInt64) {
    let mib: UInt64 = 1 << 20
    let below4G = min(ramSize, GuestMemory.mmioHoleStart)
    put16(0x15, 640)
    let extendedKiB = below4G > mib ? min((below4G - mib) / 1024, 0xFC00) : 0
    put16(0x17, UInt16(extendedKiB))
    put16(0x30, UInt16(extendedKiB))
    let above16M = below4G > 16 * mib ? min((below4G - 16 * mib) >> 16, 0xFFFF) : 0
    put16(0x34, UInt16(above16M))
    let above4G = ramSize > below4G ? min((ramSize - below4G) >> 16, 0xFF_FFFF) : 0
    ram[0x5B] = UInt8(truncatingIfNeeded: above4G)
    ram[0x5C] = UInt8(truncatingIfNeeded: above4G >> 8)
    ram[0x5D] = UInt8(truncatingIfNeeded: above4G >> 16)
  }

  private func put16(_ at: Int, _ value: UInt16) {
    ram[at] = UInt8(truncatingIfNeeded: value)
    ram[at + 1] = UInt8(truncatingIfNeeded: value >> 8)
  }

  /// The standard checksum over 0x10-0x2D, stored big-endian at 0x2E/0x2F.
  private func updateChecksum() {
    let sum = ram[0x10...0x2D].reduce(UInt16(0)) { $0 &+ UInt16($1) }
    ram[0x2E] = UInt8(sum >> 8)
    ram[0x2F] = UInt8(truncatingIfNeeded: sum)
  }

  // MARK: Time

  /// The RTC's current time in seconds since 1970 (UTC).
  public var currentTime: Int64 {
    let base: Int64
    if let clock {
      let elapsed = clock.nanoseconds >= startNanoseconds ? (clock.nanoseconds - startNanoseconds) / 1_000_000_000 : 0
      base = startSeconds &+ Int64(clamping: elapsed)
    } else {
      base = Int64(time(nil))
    }
    return base &+ guestOffset
  }

  private var isBinary: Bool { ram[Self.statusB] & 0x04 != 0 }
  private var is24Hour: Bool { ram[Self.statusB] & 0x02 != 0 }

  private func encode(_ v: Int) -> UInt8 {
    isBinary ? UInt8(clamping: v) : UInt8(clamping: (v / 10) << 4 | v % 10)
  }

  private func decode(_ v: UInt8) -> Int {
    isBinary ? Int(v) : Int(v >> 4) * 10 + Int(v & 0xF)
  }

  private func encodeHour(_ h: Int) -> UInt8 {
    if is24Hour { return encode(h) }
    let h12 = h % 12 == 0 ? 12 : h % 12
    return encode(h12) | (h >= 12 ? 0x80 : 0)
  }

  private func decodeHour(_ v: UInt8) -> Int {
    if is24Hour { return decode(v) }
    let h12 = decode(v & 0x7F) % 12
    return v & 0x80 != 0 ? h12 + 12 : h12
  }

  private func timeRegister(_ reg: Int) -> UInt8 {
    let t = pendingTime ?? CivilTime(unixSeconds: currentTime)
    switch reg {
    case Self.seconds: return encode(t.second)
    case Self.minutes: return encode(t.minute)
    case Self.hours: return encodeHour(t.hour)
    case Self.weekday: return encode(t.weekday + 1)
    case Self.day: return encode(t.day)
    case Self.month: return encode(t.month)
    case Self.year: return encode(t.year % 100)
    default: return encode(t.year / 100)  // century
    }
  }

  /// A guest write to a time register moves the clock: the offset becomes what makes the
  /// registers read the new value. While status B's SET bit is on, writes collect in
  /// `pendingTime` and take effect together when SET is cleared (how Linux sets the clock); a
  /// write outside SET that would make an impossible date (February 30th) is ignored.
  private func setTimeRegister(_ reg: Int, _ value: UInt8) {
    var t = pendingTime ?? CivilTime(unixSeconds: currentTime)
    switch reg {
    case Self.seconds: t.second = decode(value)
    case Self.minutes: t.minute = decode(value)
    case Self.hours: t.hour = decodeHour(value)
    case Self.day: t.day = decode(value)
    case Self.month: t.month = decode(value)
    case Self.year: t.year = t.year / 100 * 100 + decode(value)
    case Self.century: t.year = decode(value) * 100 + t.year % 100
    case Self.weekday: t.weekday = decode(value) - 1  // shown until SET clears; then derived
    default: return
    }
    if pendingTime != nil {
      pendingTime = t
    } else {
      apply(t)
    }
  }

  private func apply(_ t: CivilTime) {
    guard let target = t.unixSeconds else { return }
    guestOffset = guestOffset &+ (target &- currentTime)
  }

  private static let timeRegisters: Set<Int> = [0, 2, 4, 6, 7, 8, 9, 0x32]

  // MARK: PortIODevice

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    guard port & 1 == 1 else { return 0xFF }
    let reg = Int(index)
    switch reg {
    case _ where Self.timeRegisters.contains(reg): return UInt32(timeRegister(reg))
    case Self.statusA: return UInt32(ram[reg] & 0x7F)  // UIP clear
    case Self.statusC:
      let v = ram[reg]
      ram[reg] = 0
      return UInt32(v)
    default: return UInt32(ram[reg])
    }
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    let byte = UInt8(truncatingIfNeeded: value)
    guard port & 1 == 1 else {
      index = byte & 0x7F
      nmiMasked = byte & 0x80 != 0
      return
    }
    let reg = Int(index)
    switch reg {
    case _ where Self.timeRegisters.contains(reg): setTimeRegister(reg, byte)
    case Self.statusA: ram[reg] = byte & 0x7F
    case Self.statusB:
      ram[reg] = byte
      if byte & 0x80 != 0 {
        if pendingTime == nil { pendingTime = CivilTime(unixSeconds: currentTime) }
      } else if let t = pendingTime {
        pendingTime = nil
        apply(t)
      }
    case Self.statusC, Self.statusD: break  // read-only
    default:
      ram[reg] = byte
      if (0x10...0x2D).contains(reg) { updateChecksum() }
    }
  }

  /// A byte of CMOS RAM as the guest would read it (time registers included).
  public subscript(register: Int) -> UInt8 {
    guard (0..<128).contains(register) else { return 0xFF }
    let saved = index
    index = UInt8(register)
    defer { index = saved }
    return UInt8(truncatingIfNeeded: read(port: 0x71, size: 1))
  }
}

/// A UTC calendar date and time, converted from and to seconds since 1970 with the proleptic
/// Gregorian calendar (days-from-civil arithmetic).
struct CivilTime: Equatable {
  var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int
  /// 0 = Sunday.
  var weekday: Int

  init(unixSeconds: Int64) {
    let days = Int(unixSeconds >= 0 ? unixSeconds / 86400 : (unixSeconds - 86399) / 86400)
    let secs = Int(unixSeconds - Int64(days) * 86400)
    hour = secs / 3600
    minute = secs % 3600 / 60
    second = secs % 60
    weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    day = doy - (153 * mp + 2) / 5 + 1
    month = mp < 10 ? mp + 3 : mp - 9
    year = yoe + era * 400 + (month <= 2 ? 1 : 0)
  }

  static func daysIn(month: Int, year: Int) -> Int {
    switch month {
    case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
  }

  /// Seconds since 1970, or nil for fields out of range (including days the month lacks).
  var unixSeconds: Int64? {
    guard (1...12).contains(month), (1...CivilTime.daysIn(month: month, year: year)).contains(day),
      (0...23).contains(hour),
      (0...59).contains(minute), (0...59).contains(second), (0...9999).contains(year)
    else { return nil }
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = month > 2 ? month - 3 : month + 9
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    let days = era * 146_097 + doe - 719_468
    return Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second)
  }
}

/// The Intel 8254 programmable interval timer: three 16-bit counters clocked at 1.193182 MHz.
///
/// Ports 0x40-0x42 are the counters' data ports, 0x43 the control word register. Channel 0
/// drives IRQ 0, channel 2 the PC speaker; its gate and output are reached through port 0x61
/// (`SystemControlPort`). Channel 1 (DRAM refresh on old PCs) counts but drives nothing.
///
/// Counters are not stepped: each channel remembers the tick at which its count was loaded, and
/// every read computes the count and output from `GuestClock` nanoseconds. Calibration loops in
/// SeaBIOS and Linux therefore see time pass at the real rate between their port reads.
///
/// Implemented: modes 0-5, binary and BCD counting, access modes LSB/MSB/LSB-then-MSB, the counter
/// latch command, the read-back command (count and status), gates (channel 2 from port 0x61;
/// channels 0 and 1 are hard-wired high). Simplifications, all invisible to PC software in
/// practice: a new count written in modes 2 and 3 takes effect at once rather than at the end of
/// the current period; odd counts in mode 3 give a period of `count` ticks with the output high for
/// the longer half; the one-tick load delay after a count write is not modelled.
///
/// Interrupts: channel 0's output rising edges (terminal count in modes 0 and 4, the start of each
/// period in modes 2 and 3) pulse IRQ 0. `advance(to:)` delivers at most one interrupt per call: a
/// guest paused for a long time gets one tick, not thousands; `coalescedInterrupts` counts the
/// ones folded away.
public final class PIT8254: PortIODevice, ResettableDevice, TimedDevice {
  /// The counters' input clock in Hz.
  public static let frequency: UInt64 = 1_193_182

  struct Channel {
    var mode: UInt8 = 0
    /// 1 = LSB only, 2 = MSB only, 3 = LSB then MSB.
    var access: UInt8 = 3
    var bcd = false
    /// The count in ticks (1...65536, or 1...10000 in BCD).
    var reload: UInt64 = 0x10000
    /// A count has been written since the last control word.
    var countLoaded = false
    /// The counter is counting (modes 1 and 5 wait for a gate trigger after the count is written).
    var armed = false
    /// Tick at which counting (re)started.
    var loadTick: UInt64 = 0
    /// Tick at which a low gate froze the counter, while it is low (modes 0, 2, 3, 4).
    var pausedAt: UInt64?
    var gate = true
    var nullCount = true
    /// Mode 0 drives the output low from the control word on; every other mode drives it high.
    var outputBeforeArm = true
    /// LSB of an LSB-then-MSB count write, waiting for its MSB.
    var pendingLow: UInt8?
    /// Live LSB-then-MSB reads alternate; true when the MSB comes next.
    var readHighNext = false
    /// Latched count bytes still to be read, first first.
    var latchedCount: [UInt8] = []
    var latchedStatus: UInt8?
    /// Periods whose interrupt has been delivered (periodic modes), counted from `loadTick`.
    var deliveredPeriods: UInt64 = 0
    /// The one-shot interrupt of modes 0, 1, 4, 5 has been delivered.
    var oneShotDone = false

    var modulus: UInt64 { bcd ? 10000 : 0x10000 }
    var isPeriodic: Bool { mode == 2 || mode == 3 }

    /// Ticks counted at `now` (frozen while paused), or nil when not counting.
    func elapsed(at now: UInt64) -> UInt64? {
      guard armed else { return nil }
      let end = pausedAt ?? now
      return end >= loadTick ? end - loadTick : 0
    }

    /// The counting element's value at `now`.
    func count(at now: UInt64) -> UInt64 {
      guard let d = elapsed(at: now) else { return reload % modulus }
      switch mode {
      case 2: return (reload - d % reload) % modulus
      case 3: return (reload - (2 * (d % reload)) % reload) % modulus
      default: return (reload % modulus + modulus - d % modulus) % modulus
      }
    }

    /// The OUT pin at `now`.
    func output(at now: UInt64) -> Bool {
      guard let d = elapsed(at: now) else { return outputBeforeArm }
      switch mode {
      case 0, 1: return d >= reload
      case 2:
        if !gate || reload < 2 { return true }
        return d % reload != reload - 1
      case 3:
        if !gate { return true }
        return d % reload < (reload + 1) / 2
      default: return d != reload  // modes 4 and 5: one low tick at terminal count
      }
    }

    /// Tick of the next interrupt-raising output edge, if one is due.
    var nextEdgeTick: UInt64? {
      guard armed, pausedAt == nil else { return nil }
      if isPeriodic {
        let (p, o1) = (deliveredPeriods + 1).multipliedReportingOverflow(by: reload)
        let (t, o2) = loadTick.addingReportingOverflow(p)
        return o1 || o2 ? nil : t
      }
      if oneShotDone { return nil }
      let (t, o) = loadTick.addingReportingOverflow(mode >= 4 ? reload + 1 : reload)
      return o ? nil : t
    }

    mutating func load(_ value: UInt16, now: UInt64) {
      let decoded = bcd ? UInt64(PIT8254.fromBCD(value)) : UInt64(value)
      reload = decoded == 0 ? modulus : decoded
      countLoaded = true
      nullCount = false
      deliveredPeriods = 0
      oneShotDone = false
      switch mode {
      case 1, 5:
        armed = false  // waits for a rising gate edge
        outputBeforeArm = true
      default:
        armed = true
        loadTick = now
        pausedAt = gate ? nil : now
      }
    }

    mutating func setGate(_ level: Bool, now: UInt64) {
      defer { gate = level }
      guard level != gate else { return }
      switch mode {
      case 0, 4:
        if !level {
          if armed { pausedAt = now }
        } else if let p = pausedAt {
          loadTick &+= now - p
          pausedAt = nil
        }
      case 2, 3:
        if !level {
          if armed { pausedAt = now }
        } else if countLoaded {
          armed = true
          loadTick = now
          pausedAt = nil
          deliveredPeriods = 0
        }
      default:  // 1, 5: a rising edge (re)triggers
        if level && countLoaded {
          armed = true
          loadTick = now
          pausedAt = nil
          oneShotDone = false
        }
      }
    }

    func countBytes(_ value: UInt64) -> [UInt8] {
      let v = bcd ? PIT8254.toBCD(value) : UInt16(truncatingIfNeeded: value)
      switch access {
      case 1: return [UInt8(truncatingIfNeeded: v)]
      case 2: return [UInt8(truncatingIfNeeded: v >> 8)]
      default: return [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)]
      }
    }

    func status(at now: UInt64) -> UInt8 {
      (output(at: now) ? 0x80 : 0) | (nullCount ? 0x40 : 0) | access << 4 | mode << 1 | (bcd ? 1 : 0)
    }
  }

  let clock: any GuestClock
  private let irq: InterruptLine?
  private(set) var channels = [Channel](repeating: Channel(), count: 3)
  /// IRQ 0 interrupts delivered.
  public private(set) var deliveredInterrupts: UInt64 = 0
  /// Periodic interrupts folded into a later one because `advance` came late.
  public private(set) var coalescedInterrupts: UInt64 = 0

  /// - Parameters:
  ///   - clock: guest time; the counters run at 1.193182 MHz of it.
  ///   - irq: IRQ 0, or nil to leave channel 0 unconnected.
  public init(clock: any GuestClock, irq: InterruptLine?) {
    self.clock = clock
    self.irq = irq
    reset()
  }

  /// Every channel unprogrammed (`ResettableDevice`); channel 1's gate is tied high and channel
  /// 2's follows port 0x61, clear after reset.
  public func reset() {
    channels = [Channel](repeating: Channel(), count: 3)
    channels[1].gate = true
    channels[2].gate = false
    irq?.lower()
  }

  // MARK: Time

  /// Ticks of the 1.193182 MHz clock at guest time `ns`.
  static func ticks(atNanoseconds ns: UInt64) -> UInt64 {
    let product = ns.multipliedFullWidth(by: frequency)
    guard product.high < 1_000_000_000 else { return .max }
    return UInt64(1_000_000_000).dividingFullWidth(product).quotient
  }

  /// The earliest guest time (ns) at which `ticks(atNanoseconds:)` reaches `tick`.
  static func nanoseconds(atTick tick: UInt64) -> UInt64 {
    let product = tick.multipliedFullWidth(by: 1_000_000_000)
    guard product.high < frequency else { return .max }
    let (q, r) = frequency.dividingFullWidth(product)
    return r == 0 ? q : q &+ 1
  }

  private var now: UInt64 { Self.ticks(atNanoseconds: clock.nanoseconds) }

  // MARK: TimedDevice

  /// Guest time (ns) of the next IRQ 0 edge, if channel 0 will raise one (`TimedDevice`).
  public var nextDeadline: UInt64? {
    guard irq != nil, let tick = channels[0].nextEdgeTick else { return nil }
    return Self.nanoseconds(atTick: tick)
  }

  /// Brings the counters to guest time `nowNanoseconds`, raising IRQ 0 for every period that ended (`TimedDevice`).
  public func advance(to nowNanoseconds: UInt64) {
    let t = Self.ticks(atNanoseconds: nowNanoseconds)
    guard let due = channels[0].nextEdgeTick, due <= t else { return }
    if channels[0].isPeriodic {
      let periods = (t - channels[0].loadTick) / channels[0].reload
      coalescedInterrupts += periods - channels[0].deliveredPeriods - 1
      channels[0].deliveredPeriods = periods
    } else {
      channels[0].oneShotDone = true
    }
    deliveredInterrupts += 1
    irq?.pulse()
  }

  // MARK: Gates and outputs (port 0x61)

  /// Drives channel `channel`'s gate input (only channel 2's is wired to anything on a PC).
  public func setGate(channel: Int, level: Bool) {
    guard channels.indices.contains(channel) else { return }
    channels[channel].setGate(level, now: now)
  }

  /// The gate input of `channel` (false for a channel that does not exist).
  public func gate(channel: Int) -> Bool {
    channels.indices.contains(channel) ? channels[channel].gate : false
  }

  /// The OUT pin of `channel` now.
  public func output(channel: Int) -> Bool {
    output(channel: channel, atNanoseconds: clock.nanoseconds)
  }

  /// The OUT pin of `channel` at guest time `nanoseconds` (a caller that has just read the clock).
  public func output(channel: Int, atNanoseconds nanoseconds: UInt64) -> Bool {
    channels.indices.contains(channel) ? channels[channel].output(at: Self.ticks(atNanoseconds: nanoseconds)) : false
  }

  // MARK: PortIODevice

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    let index = Int(port & 3)
    guard index < 3 else { return 0xFF }  // the control register is write-only
    var ch = channels[index]
    defer { channels[index] = ch }
    if let status = ch.latchedStatus {
      ch.latchedStatus = nil
      return UInt32(status)
    }
    if !ch.latchedCount.isEmpty {
      return UInt32(ch.latchedCount.removeFirst())
    }
    let bytes = ch.countBytes(ch.count(at: now))
    if bytes.count == 1 { return UInt32(bytes[0]) }
    let byte = ch.readHighNext ? bytes[1] : bytes[0]
    ch.readHighNext.toggle()
    return UInt32(byte)
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    let byte = UInt8(truncatingIfNeeded: value)
    let index = Int(port & 3)
    let t = now
    if index == 3 {
      writeControl(byte, now: t)
      return
    }
    var ch = channels[index]
    switch ch.access {
    case 1: ch.load(UInt16(byte), now: t)
    case 2: ch.load(UInt16(byte) << 8, now: t)
    default:
      if let low = ch.pendingLow {
        ch.pendingLow = nil
        ch.load(UInt16(byte) << 8 | UInt16(low), now: t)
      } else {
        ch.pendingLow = byte
        // Mode 0 stops counting when the first byte of a new count arrives.
        if ch.mode == 0 && ch.armed {
          ch.armed = false
          ch.outputBeforeArm = false
        }
      }
    }
    channels[index] = ch
  }

  private func writeControl(_ value: UInt8, now t: UInt64) {
    let select = Int(value >> 6)
    if select == 3 {
      readBack(value, now: t)
      return
    }
    var ch = channels[select]
    let access = (value >> 4) & 3
    if access == 0 {
      // Counter latch: ignored while an earlier latch is still unread.
      if ch.latchedCount.isEmpty { ch.latchedCount = ch.countBytes(ch.count(at: t)) }
    } else {
      var mode = (value >> 1) & 7
      if mode >= 6 { mode -= 4 }
      ch.mode = mode
      ch.access = access
      ch.bcd = value & 1 != 0
      ch.countLoaded = false
      ch.armed = false
      ch.pausedAt = nil
      ch.nullCount = true
      ch.outputBeforeArm = mode != 0
      ch.pendingLow = nil
      ch.readHighNext = false
      ch.latchedCount = []
      ch.latchedStatus = nil
    }
    channels[select] = ch
  }

  /// Read-back command: bit 5 clear latches counts, bit 4 clear latches status, bits 3:1 select
  /// channels 2, 1, 0.
  private func readBack(_ value: UInt8, now t: UInt64) {
    for i in 0..<3 where value & (2 << i) != 0 {
      if value & 0x20 == 0 && channels[i].latchedCount.isEmpty {
        channels[i].latchedCount = channels[i].countBytes(channels[i].count(at: t))
      }
      if value & 0x10 == 0 && channels[i].latchedStatus == nil {
        channels[i].latchedStatus = channels[i].status(at: t)
      }
    }
  }

  // MARK: BCD

  static func fromBCD(_ v: UInt16) -> UInt16 {
    var result: UInt16 = 0
    for shift in stride(from: 12, through: 0, by: -4) {
      result = result * 10 + min(9, (v >> UInt16(shift)) & 0xF)
    }
    return result
  }

  static func toBCD(_ v: UInt64) -> UInt16 {
    var n = v % 10000
    var result: UInt16 = 0
    for shift in stride(from: 0, through: 12, by: 4) {
      result |= UInt16(n % 10) << UInt16(shift)
      n /= 10
    }
    return result
  }
}

/// Port 0x61, the PC/AT system control port B: channel 2's gate (bit 0), the speaker data enable
/// (bit 1), the DRAM refresh toggle (bit 4, flips every 15.085 µs of guest time) and channel 2's
/// output (bit 5). Bits 6 and 7 (NMI sources) read as zero. SeaBIOS and Linux time their PIT
/// calibration loops with bits 0 and 5.
public final class SystemControlPort: PortIODevice, ResettableDevice {
  private let pit: PIT8254
  private var control: UInt8 = 0

  /// - Parameter pit: the timer whose channel 2 this port controls (its clock also drives the
  ///   refresh toggle).
  public init(pit: PIT8254) {
    self.pit = pit
  }

  /// Speaker and gate bits clear (`ResettableDevice`; the PIT's own reset clears channel 2's gate).
  public func reset() { control = 0 }

  /// Whether the guest enabled the speaker (bit 1 and channel 2's gate both set).
  public var speakerEnabled: Bool { control & 3 == 3 }

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    var value = control & 0x0F
    let now = pit.clock.nanoseconds  // one clock read for both bits (a host clock read is slow)
    if (now / 15_085) & 1 != 0 { value |= 0x10 }
    if pit.output(channel: 2, atNanoseconds: now) { value |= 0x20 }
    return UInt32(value)
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    control = UInt8(truncatingIfNeeded: value) & 0x0F
    pit.setGate(channel: 2, level: control & 1 != 0)
  }

  /// A read only looks at channel 2 and the clock: lightweight; a write moves channel 2's gate
  /// (`PortIODevice`).
  public func isLightweight(port: UInt16, isWrite: Bool) -> Bool { !isWrite }
}

/// The I/O APIC at `IOAPIC.base`: 24 input pins, each with a redirection entry that turns a line
/// change into an interrupt message for the local APICs (through the machine's router).
///
/// Registers: IOREGSEL at 0x00 selects, IOWIN at 0x10 reads or writes the selected register: 0x00
/// ID (bits 24-27), 0x01 version (0x170011: version 0x11, 24 entries), 0x02 arbitration ID, and
/// 0x10 + 2n / 0x11 + 2n the low and high halves of entry n. An entry: vector (0-7), delivery mode
/// (8-10: fixed, lowest priority, SMI, NMI, INIT, ExtINT), destination mode (11: logical), delivery
/// status (12, read-only), polarity (13: active low), remote IRR (14, read-only), trigger mode (15:
/// level), mask (16), destination (56-63). All entries are masked at reset.
///
/// Edge-triggered pins send a message on each rising edge (of the line as the polarity presents
/// it). Level-triggered pins send one while the line is asserted and remote IRR is clear, set
/// remote IRR, and send again after the local APIC's EOI for that vector (`endOfInterrupt`) if the
/// line is still asserted. NMI, SMI, INIT and ExtINT entries are always edge-triggered, whatever
/// their trigger bit says (they have no EOI to clear remote IRR). Fixed, lowest-priority, NMI and
/// INIT messages are routed (SMI is dropped by the router). Pin 0 carries the 8259's INTR output:
/// an unmasked ExtINT entry there makes the 8259's interrupts reach the CPUs it addresses
/// (`picOutputMessage`; the runner of such a CPU acknowledges the 8259 itself).
///
/// Threading: devices raise lines with the machine lock held; local APICs call `endOfInterrupt`
/// with none. The I/O APIC's own lock comes before the local APICs' in the lock order; messages
/// are sent after it is released.
public final class IOAPIC: MMIODevice, InterruptSink, ResettableDevice, @unchecked Sendable {
  /// Where the register window is.
  public static let base: UInt64 = 0xFEC0_0000
  /// Input pins.
  public static let pinCount = 24
  private let lock = NSLockLike()
  private var select: UInt32 = 0
  private var id: UInt32 = 0
  private var entries = [UInt64](repeating: 1 << 16, count: IOAPIC.pinCount)
  /// Line levels as the devices drive them (before polarity).
  private var levels = [Bool](repeating: false, count: IOAPIC.pinCount)
  /// Sends a message (vector, delivery mode, logical, destination, level) to the local APICs.
  var send: ((InterProcessorInterrupt) -> Void)?

  /// The ID it reports at reset (what the MADT and MP table say: `PlatformDescription.ioapicID`).
  public let resetID: UInt8

  /// An I/O APIC with ID `id` and every entry masked.
  public init(id: UInt8 = 0) {
    resetID = id
    self.id = UInt32(id & 0x0F) << 24
  }

  /// Every entry masked, registers cleared (`ResettableDevice`).
  public func reset() {
    lock.locked {
      select = 0
      id = UInt32(resetID & 0x0F) << 24
      entries = [UInt64](repeating: 1 << 16, count: IOAPIC.pinCount)
    }
  }

  /// Reads IOREGSEL or IOWIN (`MMIODevice`).
  public func read(offset: UInt64, size: Int) -> UInt64 {
    lock.locked {
      switch offset & 0xFF {
      case 0x00: return UInt64(select)
      case 0x10: return UInt64(register(select))
      default: return 0
      }
    }
  }

  private func register(_ r: UInt32) -> UInt32 {
    switch r {
    case 0x00: return id
    case 0x01: return 0x0017_0011
    case 0x02: return id
    case 0x10..<0x40:
      let e = entries[Int(r - 0x10) / 2]
      return r & 1 == 0 ? UInt32(truncatingIfNeeded: e) : UInt32(e >> 32)
    default: return 0
    }
  }

  /// Writes IOREGSEL, IOWIN or the EOI register (`MMIODevice`).
  public func write(offset: UInt64, size: Int, value: UInt64) {
    let v = UInt32(truncatingIfNeeded: value)
    var messages: [InterProcessorInterrupt] = []
    lock.locked {
      switch offset & 0xFF {
      case 0x00: select = v & 0xFF
      case 0x10:
        switch select {
        case 0x00: id = v & 0x0F00_0000
        case 0x10..<0x40:
          let pin = Int(select - 0x10) / 2
          let old = entries[pin]
          if select & 1 == 0 {
            // Delivery status and remote IRR are read-only.
            entries[pin] = (old & 0xFFFF_FFFF_0000_5000) | UInt64(v & ~0x5000)
          } else {
            entries[pin] = (old & 0xFFFF_FFFF) | UInt64(v & 0xFF00_0000) << 32
          }
          if let m = evaluate(pin) { messages.append(m) }
        default: break
        }
      case 0x40: messages = clearRemoteIRR(vector: UInt8(v & 0xFF))
      default: break
      }
    }
    for m in messages { send?(m) }
  }

  /// Drives pin `line` to `level` (`InterruptSink`).
  public func setIRQ(_ line: Int, level: Bool) {
    guard (0..<Self.pinCount).contains(line) else { return }
    let outgoing: InterProcessorInterrupt? = lock.locked {
      let entry = entries[line]
      let activeLow = entry & (1 << 13) != 0
      let wasAsserted = levels[line] != activeLow
      levels[line] = level
      let asserted = level != activeLow
      if !Self.levelTriggered(entry) {
        return asserted && !wasAsserted ? message(for: line) : nil
      }
      return evaluate(line)
    }
    if let outgoing { send?(outgoing) }
  }

  /// A local APIC's EOI for a level-triggered `vector`: remote IRR clears on the entries with that
  /// vector, and a line still asserted sends again.
  public func endOfInterrupt(vector: UInt8) {
    let messages = lock.locked { clearRemoteIRR(vector: vector) }
    for m in messages { send?(m) }
  }

  private func clearRemoteIRR(vector: UInt8) -> [InterProcessorInterrupt] {
    var out: [InterProcessorInterrupt] = []
    for pin in 0..<Self.pinCount where entries[pin] & 0xFF == UInt64(vector) && entries[pin] & (1 << 14) != 0 {
      entries[pin] &= ~(1 << 14)
      if let m = evaluate(pin) { out.append(m) }
    }
    return out
  }

  /// A level-triggered pin that is asserted, unmasked and without remote IRR sends (and sets
  /// remote IRR); the lock is held.
  private func evaluate(_ pin: Int) -> InterProcessorInterrupt? {
    let entry = entries[pin]
    guard Self.levelTriggered(entry), entry & (1 << 14) == 0 else { return nil }
    let asserted = levels[pin] != (entry & (1 << 13) != 0)
    guard asserted, let m = message(for: pin) else { return nil }
    entries[pin] |= 1 << 14
    return m
  }

  /// Level-triggered: the trigger bit, for fixed and lowest-priority entries only.
  static func levelTriggered(_ entry: UInt64) -> Bool {
    entry & (1 << 15) != 0 && (entry >> 8) & 7 <= 1
  }

  /// The pin the 8259's INTR output is wired to.
  public static let picOutputPin = 0

  /// The message addressing the CPUs the 8259's output reaches through pin 0, when that entry is
  /// unmasked in ExtINT mode; nil otherwise.
  public var picOutputMessage: InterProcessorInterrupt? {
    lock.locked {
      let entry = entries[Self.picOutputPin]
      guard (entry >> 8) & 7 == 7 else { return nil }
      return message(for: Self.picOutputPin)
    }
  }

  /// The message of pin `pin`'s entry, or nil when it is masked; the lock is held.
  private func message(for pin: Int) -> InterProcessorInterrupt? {
    let entry = entries[pin]
    guard entry & (1 << 16) == 0 else { return nil }
    let low = UInt32(truncatingIfNeeded: entry) & 0xFFF | (UInt32(truncatingIfNeeded: entry) & 0x8000)
    return InterProcessorInterrupt(source: 0xFF, icrLow: low | 0x4000, icrHigh: UInt32(entry >> 32) & 0xFF00_0000)
  }
}

/// Legacy ISA interrupt wiring with an I/O APIC: IRQ n reaches the PIC's line n and the I/O
/// APIC's pin n, except IRQ 0 (the PIT), which reaches pin 2 (the interrupt source override every
/// PC's tables describe).
public final class LegacyInterruptWiring: InterruptSink {
  private let pic: any InterruptSink
  private let ioapic: IOAPIC
  /// Wiring of `pic` and `ioapic`.
  public init(pic: any InterruptSink, ioapic: IOAPIC) {
    self.pic = pic
    self.ioapic = ioapic
  }
  /// Drives ISA IRQ `line` on both controllers.
  public func setIRQ(_ line: Int, level: Bool) {
    pic.setIRQ(line, level: level)
    ioapic.setIRQ(line == 0 ? 2 : line, level: level)
  }
}

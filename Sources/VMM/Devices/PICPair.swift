/// The PC's two cascaded Intel 8259A programmable interrupt controllers.
///
/// Ports: master 0x20/0x21, slave 0xA0/0xA1, and the edge/level control registers (ELCR) at
/// 0x4D0 (master) and 0x4D1 (slave). Register the same instance for all three ranges; ports are
/// decoded absolutely.
///
/// Implemented: the ICW1-ICW4 initialisation sequence (vector base, single/cascade, auto-EOI),
/// OCW1 (mask), OCW2 (non-specific and specific EOI, rotate on EOI, rotate in auto-EOI mode, set
/// priority), OCW3 (read IRR/ISR, poll command, special mask mode), edge and level triggering
/// (per line from the ELCR, or all lines with ICW1.LTIM), cascading of the slave on master IRQ 2,
/// fully nested priority with rotation, and spurious IRQ 15 (the slave's request vanished
/// between the master's decision and the INTA). Not modelled: special fully nested mode (ICW4
/// bit 4), buffered mode and 8080/8085 call vectors, none of which PCs use.
///
/// INTA is atomic here: `hasPendingInterrupt` and `acknowledge()` evaluate the same state, so a
/// master spurious IRQ 7 cannot arise (a request withdrawn before the INTA simply makes
/// `acknowledge()` return nil, as the CPU never saw it).
public final class PICPair: PortIODevice, ResettableDevice, InterruptSink {
  /// One 8259A.
  struct Chip {
    var irr: UInt8 = 0
    var isr: UInt8 = 0
    var imr: UInt8 = 0
    /// Current input levels of IR0-7 (for edge detection and level-triggered requests).
    var lines: UInt8 = 0
    /// ELCR: lines that are level triggered.
    var elcr: UInt8 = 0
    /// The ELCR bits that may be set (the PC hard-wires the timer, keyboard, cascade, RTC and FPU
    /// lines to edge).
    let elcrWritable: UInt8
    var vectorBase: UInt8
    /// ICW1.LTIM: every line level triggered.
    var levelTriggeredAll = false
    var autoEOI = false
    var rotateOnAutoEOI = false
    var specialMask = false
    var readISR = false
    var pollPending = false
    /// The lowest-priority line; the highest is the one after it (7 after reset: IR0 highest).
    var lowestPriority: UInt8 = 7
    /// Which ICW the next data-port write is (0 = none: OCW1).
    var expectedICW = 0
    var needsICW4 = false
    var singleMode = false

    init(vectorBase: UInt8, elcrWritable: UInt8) {
      self.vectorBase = vectorBase
      self.elcrWritable = elcrWritable
    }

    var levelTriggered: UInt8 { levelTriggeredAll ? 0xFF : elcr }

    /// Priority rank of `line`: 0 is the highest, 7 the lowest.
    func rank(_ line: UInt8) -> UInt8 { (line &- lowestPriority &- 1) & 7 }

    /// The highest-priority line set in `mask`, if any.
    func highest(in mask: UInt8) -> UInt8? {
      guard mask != 0 else { return nil }
      for i in UInt8(1)...8 {
        let line = (lowestPriority &+ i) & 7
        if mask & (1 << line) != 0 { return line }
      }
      return nil
    }

    /// The request the chip would present on INT: the highest-priority unmasked request that is
    /// above every in-service line (in special mask mode, masked in-service lines do not block).
    var pendingRequest: UInt8? {
      guard let candidate = highest(in: irr & ~imr) else { return nil }
      // Fully nested: only strictly higher priority interrupts an in-service line.
      if let inService = highest(in: specialMask ? isr & ~imr : isr), rank(candidate) >= rank(inService) {
        return nil
      }
      return candidate
    }

    mutating func setLine(_ line: UInt8, level: Bool) {
      let bit: UInt8 = 1 << line
      if levelTriggered & bit != 0 {
        if level { irr |= bit } else { irr &= ~bit }
      } else if level && lines & bit == 0 {
        irr |= bit  // rising edge latches the request until INTA
      }
      if level { lines |= bit } else { lines &= ~bit }
    }

    /// The INTA cycle for `line`: moves the request to in-service (unless auto-EOI).
    mutating func acknowledge(_ line: UInt8) {
      let bit: UInt8 = 1 << line
      // Edge requests are consumed; level requests persist while the line is high.
      if levelTriggered & bit == 0 || lines & bit == 0 { irr &= ~bit }
      if autoEOI {
        if rotateOnAutoEOI { lowestPriority = line }
      } else {
        isr |= bit
      }
    }

    mutating func writeCommand(_ value: UInt8) {
      if value & 0x10 != 0 {
        // ICW1: restart initialisation.
        needsICW4 = value & 0x01 != 0
        singleMode = value & 0x02 != 0
        levelTriggeredAll = value & 0x08 != 0
        imr = 0
        isr = 0
        irr &= levelTriggered & lines  // edge latches are reset
        lowestPriority = 7
        specialMask = false
        readISR = false
        pollPending = false
        autoEOI = false
        rotateOnAutoEOI = false
        expectedICW = 2
      } else if value & 0x08 != 0 {
        // OCW3.
        if value & 0x04 != 0 { pollPending = true }
        if value & 0x02 != 0 { readISR = value & 0x01 != 0 }
        if value & 0x40 != 0 { specialMask = value & 0x20 != 0 }
      } else {
        // OCW2.
        let level = value & 7
        switch value >> 5 {
        case 0b001:  // non-specific EOI
          if let l = highest(in: isr) { isr &= ~(1 << l) }
        case 0b011:  // specific EOI
          isr &= ~(1 << level)
        case 0b101:  // rotate on non-specific EOI
          if let l = highest(in: isr) {
            isr &= ~(1 << l)
            lowestPriority = l
          }
        case 0b111:  // rotate on specific EOI
          isr &= ~(1 << level)
          lowestPriority = level
        case 0b110:  // set priority
          lowestPriority = level
        case 0b100: rotateOnAutoEOI = true
        case 0b000: rotateOnAutoEOI = false
        default: break  // 0b010: no operation
        }
      }
    }

    mutating func writeData(_ value: UInt8) {
      switch expectedICW {
      case 2:
        vectorBase = value & 0xF8
        expectedICW = singleMode ? (needsICW4 ? 4 : 0) : 3
      case 3:
        // Cascade wiring is fixed on a PC (slave on master IR2, slave ID 2); nothing to record.
        expectedICW = needsICW4 ? 4 : 0
      case 4:
        autoEOI = value & 0x02 != 0
        expectedICW = 0
      default:
        imr = value
      }
    }

    /// Poll command read: acknowledges the pending request, returning 0x80|line, or 0.
    mutating func poll() -> UInt8 {
      pollPending = false
      guard let line = pendingRequest else { return 0 }
      acknowledge(line)
      return 0x80 | line
    }
  }

  private(set) var master = Chip(vectorBase: 0x08, elcrWritable: 0xF8)
  private(set) var slave = Chip(vectorBase: 0x70, elcrWritable: 0xDE)
  /// Interrupts delivered through `acknowledge()`, by ISA line (statistics).
  public private(set) var deliveredCount = [UInt64](repeating: 0, count: 16)
  /// Spurious interrupts delivered (IRQ 15 with nothing in service).
  public private(set) var spuriousCount: UInt64 = 0

  /// A pair with the BIOS's vector bases (0x08 and 0x70), all lines edge triggered and masked
  /// until the guest initialises or unmasks them: a guest that never programs the PICs gets no
  /// interrupts on vectors that collide with CPU exceptions.
  public init() {
    reset()
  }

  /// Both chips back to their power-on state: uninitialised, every line masked, nothing pending
  /// or in service (`ResettableDevice`).
  public func reset() {
    master = Chip(vectorBase: 0x08, elcrWritable: 0xF8)
    slave = Chip(vectorBase: 0x70, elcrWritable: 0xDE)
    master.imr = 0xFF
    slave.imr = 0xFF
  }

  // MARK: InterruptSink

  /// Sets IRQ `line` (0-15) to `level` (`InterruptSink`; edge or level per ELCR).
  public func setIRQ(_ line: Int, level: Bool) {
    switch line {
    case 0...7 where line != 2: master.setLine(UInt8(line), level: level)
    case 8...15: slave.setLine(UInt8(line - 8), level: level)
    default: return  // IRQ 2 is the cascade input; anything else is not an ISA line
    }
    updateCascade()
  }

  /// The slave's INT output drives master IR2.
  private func updateCascade() {
    master.setLine(2, level: slave.pendingRequest != nil)
  }

  /// True when the master asserts INT (an unmasked request of sufficient priority is pending).
  public var hasPendingInterrupt: Bool { master.pendingRequest != nil }

  /// The INTA cycle: marks the highest-priority request in service and returns its vector, or
  /// nil when nothing is pending.
  public func acknowledge() -> UInt8? {
    guard let line = master.pendingRequest else { return nil }
    master.acknowledge(line)
    defer { updateCascade() }
    if line != 2 {
      deliveredCount[Int(line)] += 1
      return master.vectorBase | line
    }
    guard let slaveLine = slave.pendingRequest else {
      // The slave withdrew its request: it answers with its IR7 vector, nothing in service.
      spuriousCount += 1
      return slave.vectorBase | 7
    }
    slave.acknowledge(slaveLine)
    deliveredCount[8 + Int(slaveLine)] += 1
    return slave.vectorBase | slaveLine
  }

  // MARK: PortIODevice

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    switch port {
    case 0x20:
      let value = Self.readCommand(&master)
      updateCascade()
      return UInt32(value)
    case 0xA0:
      let value = Self.readCommand(&slave)
      updateCascade()
      return UInt32(value)
    case 0x21: return UInt32(master.imr)
    case 0xA1: return UInt32(slave.imr)
    case 0x4D0: return UInt32(master.elcr) | (size >= 2 ? UInt32(slave.elcr) << 8 : 0)
    case 0x4D1: return UInt32(slave.elcr)
    default: return 0xFF
    }
  }

  /// A command-port read: the poll result after a poll command, else IRR or ISR per OCW3.
  private static func readCommand(_ chip: inout Chip) -> UInt8 {
    if chip.pollPending { return chip.poll() }
    return chip.readISR ? chip.isr : chip.irr
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    let byte = UInt8(truncatingIfNeeded: value)
    switch port {
    case 0x20: master.writeCommand(byte)
    case 0x21: master.writeData(byte)
    case 0xA0: slave.writeCommand(byte)
    case 0xA1: slave.writeData(byte)
    case 0x4D0:
      Self.setELCR(&master, byte)
      if size >= 2 { Self.setELCR(&slave, UInt8(truncatingIfNeeded: value >> 8)) }
    case 0x4D1: Self.setELCR(&slave, byte)
    default: return
    }
    updateCascade()
  }

  private static func setELCR(_ chip: inout Chip, _ value: UInt8) {
    chip.elcr = value & chip.elcrWritable
    // A line that became level triggered requests while it is high; one that became edge
    // triggered keeps any latched request.
    chip.irr |= chip.levelTriggered & chip.lines
  }

  // MARK: Introspection (tests, diagnostics)

  /// Interrupt request registers (slave in the high byte).
  public var requestRegister: UInt16 { UInt16(slave.irr) << 8 | UInt16(master.irr) }
  /// In-service registers (slave in the high byte).
  public var inServiceRegister: UInt16 { UInt16(slave.isr) << 8 | UInt16(master.isr) }
  /// Mask registers (slave in the high byte).
  public var maskRegister: UInt16 { UInt16(slave.imr) << 8 | UInt16(master.imr) }
  /// Vector bases programmed by ICW2 (master, slave).
  public var vectorBases: (master: UInt8, slave: UInt8) { (master.vectorBase, slave.vectorBase) }
}

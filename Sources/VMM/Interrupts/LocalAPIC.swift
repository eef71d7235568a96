/// One vCPU's local APIC in xAPIC mode: the register page every vCPU sees at `LocalAPIC.base`
/// (each sees its own: the runner routes that page to its vCPU's APIC before the MMIO bus), fixed
/// interrupts with IRR/ISR and task priority, EOI, the LVT timer (one-shot and periodic), and
/// inter-processor interrupts through the ICR, which it hands to the machine's `InterruptRouter`.
///
/// Registers (offsets in the page): ID 0x20, version 0x30 (0x50014: version 0x14, six LVT
/// entries), TPR 0x80, PPR 0xA0, EOI 0xB0, LDR 0xD0, DFR 0xE0, SVR 0xF0, ISR 0x100-0x170, TMR
/// 0x180-0x1F0, IRR 0x200-0x270, ESR 0x280, ICR 0x300/0x310, LVT timer 0x320, thermal 0x330,
/// performance 0x340, LINT0 0x350, LINT1 0x360, error 0x370, initial count 0x380, current count
/// 0x390, divide configuration 0x3E0. Unknown offsets read 0 and ignore writes.
///
/// The timer counts guest nanoseconds (a 1 GHz bus clock, as the guest TSC) divided by the divide
/// configuration. Not modelled yet: x2APIC MSRs, TSC-deadline mode, NMI/SMI delivery, the error
/// register's causes, lowest-priority arbitration (delivered to the first target) and the APIC
/// base MSR's relocation (docs/design/machine.md lists what step 2 still owes).
///
/// Threading: every method takes the APIC's own lock; the runner of its vCPU calls `read`,
/// `write`, `acknowledge` and `advance`, other runners reach it through the router (`accept`).
public final class LocalAPIC: MMIODevice, TimedDevice, @unchecked Sendable {
  /// Where the register page is (IA32_APIC_BASE's reset value).
  public static let base: UInt64 = 0xFEE0_0000
  /// The APIC ID (the vCPU's index).
  public let id: UInt8
  private let lock = NSLockLike()
  private let clock: any GuestClock
  /// Sends an IPI written to the ICR (the router); called without the APIC's lock held.
  var send: ((InterProcessorInterrupt) -> Void)?
  /// Called when a new interrupt became pending here (kicks the vCPU's runner).
  var notify: (() -> Void)?
  /// Called after an EOI retires a level-triggered vector (the I/O APIC clears remote IRR).
  var levelEOI: ((UInt8) -> Void)?

  private var tpr: UInt32 = 0
  private var ldr: UInt32 = 0
  private var dfr: UInt32 = 0xFFFF_FFFF
  private var svr: UInt32 = 0xFF
  private var isr = [UInt32](repeating: 0, count: 8)
  private var tmr = [UInt32](repeating: 0, count: 8)
  private var irr = [UInt32](repeating: 0, count: 8)
  private var esr: UInt32 = 0
  private var icrLow: UInt32 = 0
  private var icrHigh: UInt32 = 0
  /// LVT timer, thermal, performance, LINT0, LINT1, error: masked at reset.
  private var lvt = [UInt32](repeating: 0x1_0000, count: 6)
  private var initialCount: UInt32 = 0
  private var divide: UInt32 = 0
  /// Guest time the current count was last loaded.
  private var timerStart: UInt64 = 0

  /// The APIC of vCPU `id`, timing with `clock`, in its reset state.
  public init(id: UInt8, clock: any GuestClock) {
    self.id = id
    self.clock = clock
  }

  // MARK: Register page

  /// A read of the register page (`MMIODevice`).
  public func read(offset: UInt64, size: Int) -> UInt64 {
    let value = lock.locked { register(at: Int(offset & 0xFF0)) }
    return UInt64(value >> (UInt32(offset & 3) * 8))
  }

  private func register(at offset: Int) -> UInt32 {
    switch offset {
    case 0x20: return UInt32(id) << 24
    case 0x30: return 0x5_0014
    case 0x80: return tpr
    case 0xA0: return processorPriority
    case 0xD0: return ldr
    case 0xE0: return dfr
    case 0xF0: return svr
    case 0x100...0x170: return isr[(offset - 0x100) >> 4]
    case 0x180...0x1F0: return tmr[(offset - 0x180) >> 4]
    case 0x200...0x270: return irr[(offset - 0x200) >> 4]
    case 0x280: return esr
    case 0x300: return icrLow & ~(1 << 12)  // delivery status: always idle (sent at once)
    case 0x310: return icrHigh
    case 0x320...0x370: return lvt[(offset - 0x320) >> 4]
    case 0x380: return initialCount
    case 0x390: return currentCount(now: clock.nanoseconds)
    case 0x3E0: return divide
    default: return 0
    }
  }

  /// A write to the register page (`MMIODevice`).
  public func write(offset: UInt64, size: Int, value: UInt64) {
    let v = UInt32(truncatingIfNeeded: value)
    var retiredLevel: UInt8?
    let ipi: InterProcessorInterrupt? = lock.locked {
      switch Int(offset & 0xFF0) {
      case 0x80: tpr = v & 0xFF
      case 0xB0: retiredLevel = endOfInterrupt()
      case 0xD0: ldr = v & 0xFF00_0000
      case 0xE0: dfr = v | 0x0FFF_FFFF
      case 0xF0: svr = v & 0x13FF
      case 0x280: esr = 0
      case 0x300:
        icrLow = v
        return InterProcessorInterrupt(source: id, icrLow: v, icrHigh: icrHigh)
      case 0x310: icrHigh = v & 0xFF00_0000
      case 0x320...0x370:
        let i = (Int(offset & 0xFF0) - 0x320) >> 4
        lvt[i] = softwareEnabled ? v : v | 0x1_0000
      case 0x380:
        initialCount = v
        timerStart = clock.nanoseconds
      case 0x3E0: divide = v & 0xB
      default: break
      }
      return nil
    }
    if let ipi { send?(ipi) }
    if let retiredLevel { levelEOI?(retiredLevel) }
  }

  // MARK: Interrupt acceptance

  /// Whether the 8259's INTR reaches this CPU: while the APIC is software-disabled (power-on,
  /// the PIC wired straight through), or when LINT0 is unmasked in ExtINT mode (virtual wire).
  public var passesExternalInterrupts: Bool {
    lock.locked { svr & 0x100 == 0 || (lvt[3] & 0x1_0000 == 0 && (lvt[3] >> 8) & 7 == 7) }
  }

  /// SVR bit 8: the APIC is software-enabled.
  public var softwareEnabled: Bool { svr & 0x100 != 0 }

  private var processorPriority: UInt32 {
    let isrv = highest(isr) ?? 0
    return (tpr & 0xF0) >= (UInt32(isrv) & 0xF0) ? tpr : UInt32(isrv) & 0xF0
  }

  private func highest(_ bits: [UInt32]) -> UInt8? {
    for i in stride(from: 7, through: 0, by: -1) where bits[i] != 0 {
      return UInt8(i * 32 + 31 - bits[i].leadingZeroBitCount)
    }
    return nil
  }

  /// A fixed interrupt `vector` arrives (from an IPI, the IOAPIC or the local timer). Vectors
  /// below 16 are illegal and set the error register instead.
  public func accept(vector: UInt8, level: Bool = false) {
    let accepted: Bool = lock.locked {
      guard vector >= 16 else {
        esr |= 0x40  // received illegal vector
        return false
      }
      irr[Int(vector >> 5)] |= 1 << UInt32(vector & 31)
      if level {
        tmr[Int(vector >> 5)] |= 1 << UInt32(vector & 31)
      } else {
        tmr[Int(vector >> 5)] &= ~(1 << UInt32(vector & 31))
      }
      return true
    }
    if accepted { notify?() }
  }

  /// True when an interrupt above the processor priority is waiting.
  public var hasDeliverableInterrupt: Bool {
    lock.locked {
      guard let v = highest(irr) else { return false }
      return UInt32(v) & 0xF0 > processorPriority & 0xF0
    }
  }

  /// The INTA cycle: the highest waiting vector above the processor priority moves to in-service
  /// and is returned; nil when none is deliverable.
  public func acknowledge() -> UInt8? {
    lock.locked {
      guard let v = highest(irr), UInt32(v) & 0xF0 > processorPriority & 0xF0 else { return nil }
      irr[Int(v >> 5)] &= ~(1 << UInt32(v & 31))
      isr[Int(v >> 5)] |= 1 << UInt32(v & 31)
      return v
    }
  }

  /// Retires the highest in-service vector; returns it when it was level-triggered.
  private func endOfInterrupt() -> UInt8? {
    guard let v = highest(isr) else { return nil }
    isr[Int(v >> 5)] &= ~(1 << UInt32(v & 31))
    return tmr[Int(v >> 5)] & (1 << UInt32(v & 31)) != 0 ? v : nil
  }

  /// Back to the reset state (INIT or a machine reset); the ID stays.
  public func reset() {
    lock.locked {
      tpr = 0
      ldr = 0
      dfr = 0xFFFF_FFFF
      svr = 0xFF
      isr = [UInt32](repeating: 0, count: 8)
      tmr = isr
      irr = isr
      esr = 0
      icrLow = 0
      icrHigh = 0
      lvt = [UInt32](repeating: 0x1_0000, count: 6)
      initialCount = 0
      divide = 0
    }
  }

  /// The logical destination register's APIC bits (flat model: one bit per APIC).
  var logicalID: UInt8 { lock.locked { UInt8(ldr >> 24) } }

  // MARK: Timer

  /// Guest nanoseconds per timer tick: the divide configuration (bits 0, 1, 3) of a 1 GHz clock.
  private var tickNanoseconds: UInt64 {
    let code = (divide & 3) | ((divide >> 1) & 4)
    return code == 7 ? 1 : 2 << UInt64(code)
  }

  private var periodic: Bool { lvt[0] & 0x2_0000 != 0 }

  private func currentCount(now: UInt64) -> UInt32 {
    guard initialCount > 0 else { return 0 }
    let ticks = (now &- timerStart) / tickNanoseconds
    if periodic { return initialCount - UInt32(ticks % UInt64(initialCount)) }
    return ticks >= UInt64(initialCount) ? 0 : initialCount - UInt32(ticks)
  }

  /// Guest time of the next timer expiry, when the timer is armed (`TimedDevice`).
  public var nextDeadline: UInt64? {
    lock.locked {
      guard initialCount > 0 else { return nil }
      return timerStart &+ UInt64(initialCount) &* tickNanoseconds
    }
  }

  /// Fires the timer if it expired by `now`: the LVT timer vector unless masked; a periodic timer
  /// reloads, a one-shot one stops (`TimedDevice`).
  public func advance(to now: UInt64) {
    let fire: UInt8? = lock.locked {
      guard initialCount > 0 else { return nil }
      let period = UInt64(initialCount) &* tickNanoseconds
      guard now &- timerStart >= period else { return nil }
      if periodic {
        timerStart &+= (now &- timerStart) / period * period
      } else {
        initialCount = 0
      }
      return lvt[0] & 0x1_0000 == 0 ? UInt8(lvt[0] & 0xFF) : nil
    }
    if let fire { accept(vector: fire) }
  }
}

/// An IPI as the ICR describes it.
public struct InterProcessorInterrupt: Sendable, Equatable {
  /// The sending APIC's ID.
  public var source: UInt8
  /// ICR bits 0-31: vector, delivery mode (bits 8-10), destination mode (11), level (14),
  /// trigger (15), shorthand (18-19).
  public var icrLow: UInt32
  /// ICR bits 32-63: the destination in bits 56-63.
  public var icrHigh: UInt32

  /// The vector (fixed interrupts; the start-up page for SIPI).
  public var vector: UInt8 { UInt8(icrLow & 0xFF) }
  /// 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 6 start-up.
  public var deliveryMode: UInt32 { (icrLow >> 8) & 7 }
  /// Logical (true) or physical destination.
  public var logical: Bool { icrLow & 0x800 != 0 }
  /// 0 none, 1 self, 2 all including self, 3 all excluding self.
  public var shorthand: UInt32 { (icrLow >> 18) & 3 }
  /// The destination field.
  public var destination: UInt8 { UInt8(icrHigh >> 24) }
  /// INIT level de-assert (level bit clear, level trigger): a no-op on modern processors.
  public var isINITDeassert: Bool { deliveryMode == 5 && icrLow & 0x4000 == 0 && icrLow & 0x8000 != 0 }
}

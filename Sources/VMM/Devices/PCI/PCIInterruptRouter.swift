/// The machine's PCI INTx wiring, as on a PC chipset's interrupt router.
///
/// Pin INTA-INTD (`pin` 0-3) of the function in slot `s` drives interrupt link `(s + pin) % 4`,
/// the usual swizzle. A link is asserted while any function drives it: the lines are level
/// triggered and shared (a wired OR), so one function lowering its pin does not hide another's.
/// Each link reaches
/// - the I/O APIC's pin 16 + link (global system interrupt 16-19), active high, which the DSDT
///   describes with `_PRT` and the link devices `\_SB.LNKA`-`LNKD` (`ACPITables.pciHostBridgeAML`);
/// - the PIC's IRQ 10 (links A and C) or 11 (B and D), for guests without an I/O APIC; the
///   function's interrupt line register shows it.
public final class PCIInterruptRouter: InterruptSink {
  /// The global system interrupt of link A; links B-D follow.
  public static let firstLinkGSI = 16
  /// Interrupt links (A-D).
  public static let linkCount = 4

  /// The link that pin `pin` (0 = INTA) of slot `slot` drives.
  public static func link(slot: Int, pin: Int) -> Int { (slot + pin) % linkCount }

  /// The PIC IRQ of `link`.
  public static func picIRQ(link: Int) -> Int { link % 2 == 0 ? 10 : 11 }

  private let pic: (any InterruptSink)?
  private let ioapic: (any InterruptSink)?
  private let lock = NSLockLike()
  /// The (slot, pin) sources driving each link, as bits `slot * 4 + pin`.
  private var asserted = [UInt128](repeating: 0, count: linkCount)

  /// A router driving `pic`'s ISA IRQs and `ioapic`'s pins (either may be absent; with an
  /// engine's own interrupt controller, both are the same sink of global system interrupts).
  public init(pic: (any InterruptSink)?, ioapic: (any InterruptSink)?) {
    self.pic = pic
    self.ioapic = ioapic
  }

  /// The INTx line of pin `pin` of slot `slot`; its `line` is the source number the router
  /// receives, not an IRQ.
  public func line(slot: Int, pin: Int = 0) -> InterruptLine {
    precondition((0..<32).contains(slot) && (0..<4).contains(pin), "PCI slot 0-31, pin INTA-INTD")
    return InterruptLine(sink: self, line: slot * 4 + pin)
  }

  /// Drives source `line` (`slot * 4 + pin`) to `level` (`InterruptSink`).
  public func setIRQ(_ line: Int, level: Bool) {
    guard (0..<128).contains(line) else { return }
    let link = Self.link(slot: line / 4, pin: line % 4)
    let bit = UInt128(1) << line
    // The controllers are driven under the lock, so link changes reach them in order (lock
    // order: a device's lock, this one, then the PIC's and I/O APIC's; docs/design/machine.md).
    lock.locked {
      let was = asserted[link] != 0
      asserted[link] = level ? asserted[link] | bit : asserted[link] & ~bit
      let now = asserted[link] != 0
      guard was != now else { return }
      ioapic?.setIRQ(Self.firstLinkGSI + link, level: now)
      pic?.setIRQ(Self.picIRQ(link: link), level: now)
    }
  }
}

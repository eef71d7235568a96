/// The interrupt and power-management wiring of the PC the VMM emulates, as the platform tables
/// (ACPI and MP) describe it to the guest. One value feeds every table, so the tables cannot
/// disagree with each other.
///
/// Fixed parts (the usual PC layout):
/// - vCPU `i` has APIC ID `i` (and ACPI processor UID `i`); the local APICs are at 0xFEE00000;
/// - one I/O APIC at 0xFEC00000 with 24 pins, GSI base 0; its ID is `ioapicID`;
/// - ISA IRQ `n` reaches I/O APIC pin `n`, except IRQ 0 (the PIT), which reaches pin 2; IRQ 2
///   (the cascade) has no pin; IRQ 9 is the ACPI SCI, level triggered and active high; every
///   other ISA IRQ is edge triggered and active high (ISA's own convention);
/// - the 8259 pair's output reaches LINT0 of the local APICs (ExtINT, virtual-wire mode) and NMI
///   reaches LINT1;
/// - ACPI fixed hardware in I/O space: the PM1a event block at 0x600 (4 bytes, `PM1EventBlock`),
///   the PM1a control block at 0x604 (2 bytes, `PowerOffDevice`), the PM timer at `pmTimerPort`
///   if there is one (4 bytes), the reset register at 0xCF9 (`PCIHostBridge`, value 0x06).
public struct PlatformDescription: Sendable, Equatable {
  /// The local APICs' base address.
  public static let localAPICAddress: UInt32 = 0xFEE0_0000
  /// The I/O APIC's base address.
  public static let ioapicAddress: UInt32 = 0xFEC0_0000
  /// The I/O APIC's pins (redirection table entries).
  public static let ioapicPins = 24
  /// The I/O APIC's version register value given in the MP table (82093AA-compatible).
  public static let ioapicVersion: UInt8 = 0x11
  /// The local APIC version given in the MP table (integrated xAPIC).
  public static let localAPICVersion: UInt8 = 0x14
  /// The ISA IRQ of the ACPI system control interrupt.
  public static let sciIRQ: UInt8 = 9
  /// The PM1a event block: PM1 status at +0, PM1 enable at +2 (`PM1EventBlock`).
  public static let pm1EventBlock: UInt16 = 0x600
  /// The PM1a control block (`PowerOffDevice`).
  public static let pm1ControlBlock: UInt16 = 0x604
  /// The port of the ACPI reset register (the PIIX reset control register of `PCIHostBridge`).
  public static let resetRegister: UInt16 = 0xCF9
  /// The value the guest writes to the reset register to reset (bit 2: reset, bit 1: hard).
  public static let resetValue: UInt8 = 0x06
  /// The CMOS index of the RTC century register (`CMOS`), for the FADT.
  public static let rtcCenturyIndex: UInt8 = 0x32
  /// The most vCPUs the tables describe (they must fit the 64 KiB table area).
  public static let maximumCPUCount = 1024

  /// The number of vCPUs (APIC IDs `0..<cpuCount`).
  public var cpuCount: Int
  /// The I/O APIC's ID (by default `defaultIOAPICID(cpuCount:)`).
  public var ioapicID: UInt8
  /// The vNUMA layout, or nil for none (then neither SRAT nor SLIT is built).
  public var numa: NUMATopology?
  /// The I/O port of an ACPI PM timer (3.579545 MHz, 24 bits), or nil when the machine has none.
  /// The VMM has no PM timer device yet: leave it nil until one is registered there.
  public var pmTimerPort: UInt16?

  /// A platform with `cpuCount` vCPUs, optional vNUMA, no PM timer unless `pmTimerPort` names its
  /// port, and the I/O APIC ID `ioapicID` or the default.
  public init(cpuCount: Int, numa: NUMATopology? = nil, pmTimerPort: UInt16? = nil, ioapicID: UInt8? = nil) {
    self.cpuCount = cpuCount
    self.numa = numa
    self.pmTimerPort = pmTimerPort
    self.ioapicID = ioapicID ?? Self.defaultIOAPICID(cpuCount: cpuCount)
  }

  /// The I/O APIC ID after the last vCPU's (`cpuCount`), so that it is unique on the APIC bus as
  /// the MP specification wants; with 255 or more vCPUs no 8-bit ID is free and it is 254 (ACPI
  /// guests keep I/O APIC IDs apart from local APIC IDs; the MP table then omits vCPU 254).
  public static func defaultIOAPICID(cpuCount: Int) -> UInt8 {
    UInt8(clamping: min(max(cpuCount, 0), 254))
  }

  /// The APIC ID of vCPU `index`.
  public func apicID(ofCPU index: Int) -> UInt32 { UInt32(index) }

  /// Polarity of an interrupt input, in the two-bit encoding the MADT and the MP table share.
  public enum Polarity: UInt16, Sendable {
    /// As the bus defines it (ISA: active high).
    case conforming = 0
    /// Active high.
    case activeHigh = 1
    /// Active low.
    case activeLow = 3
  }

  /// Trigger mode of an interrupt input, in the two-bit encoding the MADT and the MP table share.
  public enum Trigger: UInt16, Sendable {
    /// As the bus defines it (ISA: edge).
    case conforming = 0
    /// Edge triggered.
    case edge = 1
    /// Level triggered.
    case level = 3
  }

  /// Where one ISA IRQ reaches the I/O APIC.
  public struct ISARoute: Sendable, Equatable {
    /// The ISA IRQ (0-15).
    public var irq: UInt8
    /// The I/O APIC pin, equal to the GSI (GSI base 0).
    public var pin: UInt8
    /// The input's polarity.
    public var polarity: Polarity
    /// The input's trigger mode.
    public var trigger: Trigger
    /// The MPS INTI flags word: polarity in bits 1-0, trigger mode in bits 3-2.
    public var flags: UInt16 { polarity.rawValue | trigger.rawValue << 2 }
    /// True when the route differs from "IRQ n on pin n, bus defaults", so that ACPI needs an
    /// interrupt source override for it.
    public var needsOverride: Bool { UInt16(irq) != UInt16(pin) || flags != 0 }
  }

  /// The routes of ISA IRQs 0-15 except 2, in IRQ order (see the type's description).
  public var isaRoutes: [ISARoute] {
    (UInt8(0)...15).compactMap { irq in
      switch irq {
      case 0: return ISARoute(irq: 0, pin: 2, polarity: .conforming, trigger: .conforming)
      case 2: return nil
      case Self.sciIRQ: return ISARoute(irq: irq, pin: irq, polarity: .activeHigh, trigger: .level)
      default: return ISARoute(irq: irq, pin: irq, polarity: .conforming, trigger: .conforming)
      }
    }
  }

  /// Throws a one-line error when the description cannot be put into tables for `memory`: a vCPU
  /// count outside 1...`maximumCPUCount`, an I/O APIC ID of 255 (broadcast) or, with fewer than
  /// 255 vCPUs, equal to a vCPU's APIC ID (the MP table needs them unique), or an invalid vNUMA
  /// topology (`NUMATopology.validate(cpuCount:memory:)`).
  public func validate(memory: GuestMemory) throws(LoaderError) {
    guard (1...Self.maximumCPUCount).contains(cpuCount) else {
      throw LoaderError("platform tables describe 1 to \(Self.maximumCPUCount) vCPUs, not \(cpuCount)")
    }
    guard ioapicID != 0xFF else { throw LoaderError("I/O APIC ID 255 is the broadcast ID") }
    if cpuCount < 255, Int(ioapicID) < cpuCount {
      throw LoaderError("I/O APIC ID \(ioapicID) is also vCPU \(ioapicID)'s APIC ID")
    }
    if let numa { try numa.validate(cpuCount: cpuCount, memory: memory) }
  }
}

/// An interrupt message between APICs: what a local APIC's ICR (or x2APIC SELF IPI register) sends,
/// or what an I/O APIC redirection entry sends when its pin fires.
///
/// The low word has the ICR's layout in both APIC modes. The destination is the high word's top
/// byte in xAPIC format (an 8-bit APIC ID, or a flat logical bit mask; 0xFF broadcasts), or the
/// whole high word in x2APIC format (a 32-bit x2APIC ID, 0xFFFF_FFFF broadcasts, or a logical
/// cluster ID in bits 31-16 with a bit mask in bits 15-0).
public struct InterProcessorInterrupt: Sendable, Equatable {
  /// The sending APIC's ID (0xFF: the I/O APIC).
  public var source: UInt8
  /// ICR bits 0-31: vector, delivery mode (bits 8-10), destination mode (11), level (14),
  /// trigger (15), shorthand (18-19).
  public var icrLow: UInt32
  /// ICR bits 32-63: the destination (see `x2APICFormat`).
  public var icrHigh: UInt32
  /// The destination is a 32-bit x2APIC destination (sent by an APIC in x2APIC mode).
  public var x2APICFormat: Bool

  /// A message with the ICR's two halves; `x2APICFormat` when the sender is in x2APIC mode.
  public init(source: UInt8, icrLow: UInt32, icrHigh: UInt32, x2APICFormat: Bool = false) {
    self.source = source
    self.icrLow = icrLow
    self.icrHigh = icrHigh
    self.x2APICFormat = x2APICFormat
  }

  /// The message a PCI device's MSI or MSI-X write sends: `address` 0xFEExxxxx with the
  /// destination APIC ID in bits 12-19 and the destination mode in bit 2; `data` with the vector
  /// (bits 0-7), delivery mode (8-10), level (14) and trigger mode (15), as an I/O APIC entry
  /// sends them (source 0xFF).
  public init(messageAddress address: UInt64, data: UInt32) {
    let destinationMode: UInt32 = address & 0x4 != 0 ? 0x800 : 0
    self.init(
      source: 0xFF, icrLow: (data & 0xC7FF) | destinationMode | 0x4000,
      icrHigh: UInt32(truncatingIfNeeded: (address >> 12) & 0xFF) << 24)
  }

  /// Whether `address` is in the range whose writes are interrupt messages (0xFEE00000-0xFEEFFFFF).
  public static func isMessageAddress(_ address: UInt64) -> Bool { address >> 20 == 0xFEE }

  /// Delivery modes (ICR bits 8-10).
  public enum DeliveryMode: UInt32, Sendable {
    case fixed = 0, lowestPriority = 1, smi = 2, nmi = 4, initialize = 5, startup = 6, extINT = 7
  }

  /// The vector (fixed interrupts; the start-up page for SIPI).
  public var vector: UInt8 { UInt8(icrLow & 0xFF) }
  /// 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 6 start-up, 7 ExtINT.
  public var deliveryMode: UInt32 { (icrLow >> 8) & 7 }
  /// Logical (true) or physical destination.
  public var logical: Bool { icrLow & 0x800 != 0 }
  /// Level-triggered (bit 15): the receiving APIC sets the vector's TMR bit.
  public var levelTriggered: Bool { icrLow & 0x8000 != 0 }
  /// 0 none, 1 self, 2 all including self, 3 all excluding self.
  public var shorthand: UInt32 { (icrLow >> 18) & 3 }
  /// The destination field: 8 bits in xAPIC format, 32 in x2APIC format.
  public var destination: UInt32 { x2APICFormat ? icrHigh : icrHigh >> 24 }
  /// The physical destination that addresses every APIC.
  public var broadcastDestination: UInt32 { x2APICFormat ? 0xFFFF_FFFF : 0xFF }
  /// INIT level de-assert (level bit clear, level trigger): a no-op on modern processors.
  public var isINITDeassert: Bool { deliveryMode == 5 && icrLow & 0x4000 == 0 && icrLow & 0x8000 != 0 }
  /// Fixed and lowest-priority messages carry a vector, which must be 16 or above.
  public var carriesVector: Bool { deliveryMode <= 1 }
}

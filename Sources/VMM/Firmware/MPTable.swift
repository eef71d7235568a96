/// Builds the Intel MultiProcessor Specification 1.4 tables for a `PlatformDescription`, for
/// guests older than ACPI (or told not to use it).
///
/// Floating pointer structure (16 bytes, "_MP_"): the configuration table's address, length 1
/// (16-byte units), revision 4, checksum, feature byte 1 = 0 (a configuration table is present,
/// no default configuration), feature byte 2 = 0 (IMCRP clear: virtual-wire mode, no IMCR).
///
/// Configuration table ("PCMP", revision 4, OEM ID "TRIVSR", product ID "TRIVISOR", local APIC
/// at 0xFEE00000, no extended entries), entries sorted by type as the specification requires:
/// - a processor entry (type 0) per vCPU the MP table can name (APIC ID below 255 and different
///   from the I/O APIC's), local APIC version 0x14, enabled, the BSP flag on vCPU 0, CPU
///   signature family 6 and feature flags FPU | APIC;
/// - bus 0, "ISA   " (type 1);
/// - the I/O APIC (type 2), version 0x11, enabled, at 0xFEC00000;
/// - an I/O interrupt assignment (type 3, INT) for each ISA IRQ 0-15 but 2, as
///   `PlatformDescription.isaRoutes` wires them (IRQ 0 → pin 2, IRQ 9 level/active high);
/// - local interrupt assignments (type 4) to every local APIC (ID 0xFF): ExtINT on LINT0, NMI on
///   LINT1.
public enum MPTable {
  /// The CPU signature in processor entries (family 6, model 0, stepping 0, like the reset EDX).
  public static let cpuSignature: UInt32 = 0x0000_0600
  /// The feature flags in processor entries (CPUID.1:EDX FPU and APIC).
  public static let cpuFeatures: UInt32 = 0x0000_0201
  /// The size of the floating pointer structure.
  public static let floatingPointerSize = 16

  /// The vCPUs the MP table names (see the type's description).
  public static func listedCPUs(_ p: PlatformDescription) -> [Int] {
    (0..<p.cpuCount).filter { p.apicID(ofCPU: $0) < 0xFF && p.apicID(ofCPU: $0) != UInt32(p.ioapicID) }
  }

  /// The configuration table for `p`.
  public static func configurationTable(_ p: PlatformDescription) -> [UInt8] {
    var t = TableBytes()
    t.ascii("PCMP", width: 4)
    t.u16(0)  // base table length, set below
    t.u8(4)  // specification revision 1.4
    t.u8(0)  // checksum, set below
    t.ascii(ACPITables.oemID, width: 8)
    t.ascii("TRIVISOR", width: 12)
    t.u32(0)  // OEM table pointer
    t.u16(0)  // OEM table size
    t.u16(0)  // entry count, set below
    t.u32(PlatformDescription.localAPICAddress)
    t.u16(0)  // extended table length
    t.u8(0)  // extended table checksum
    t.u8(0)
    var entries: UInt16 = 0
    for cpu in listedCPUs(p) {
      t.u8(0)  // processor
      t.u8(UInt8(p.apicID(ofCPU: cpu)))
      t.u8(PlatformDescription.localAPICVersion)
      t.u8(cpu == 0 ? 0x03 : 0x01)  // EN, and BP on the bootstrap processor
      t.u32(cpuSignature)
      t.u32(cpuFeatures)
      t.zeros(8)
      entries += 1
    }
    t.u8(1)  // bus
    t.u8(0)  // bus ID
    t.ascii("ISA", width: 6)
    t.u8(2)  // I/O APIC
    t.u8(p.ioapicID)
    t.u8(PlatformDescription.ioapicVersion)
    t.u8(0x01)  // EN
    t.u32(PlatformDescription.ioapicAddress)
    entries += 2
    for route in p.isaRoutes {
      t.u8(3)  // I/O interrupt assignment
      t.u8(0)  // INT: vectored interrupt
      t.u16(route.flags)
      t.u8(0)  // source bus: ISA
      t.u8(route.irq)
      t.u8(p.ioapicID)
      t.u8(route.pin)
      entries += 1
    }
    for (type, lint) in [(UInt8(3), UInt8(0)), (UInt8(1), UInt8(1))] {  // ExtINT on LINT0, NMI on LINT1
      t.u8(4)  // local interrupt assignment
      t.u8(type)
      t.u16(0)  // conforming polarity and trigger
      t.u8(0)  // source bus: ISA
      t.u8(0)  // source bus IRQ
      t.u8(0xFF)  // every local APIC
      t.u8(lint)
      entries += 1
    }
    t.put(UInt16(t.count), at: 4)
    t.put(entries, at: 34)
    t.fixChecksum(at: 7, over: 0..<t.count)
    return t.bytes
  }

  /// The floating pointer structure pointing at a configuration table at `configurationAddress`.
  public static func floatingPointer(configurationAddress: UInt32) -> [UInt8] {
    var t = TableBytes()
    t.ascii("_MP_", width: 4)
    t.u32(configurationAddress)
    t.u8(1)  // length in 16-byte units
    t.u8(4)  // specification revision 1.4
    t.u8(0)  // checksum, set below
    t.zeros(5)  // feature bytes 1-5
    t.fixChecksum(at: 10, over: 0..<t.count)
    return t.bytes
  }
}

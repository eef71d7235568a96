/// The Intel MultiProcessor Specification 1.4 table, for a directly loaded kernel on a machine with
/// several vCPUs (firmware builds its own from fw_cfg): a floating pointer structure ("_MP_") at
/// `floatingPointerAddress` in the BIOS area a kernel scans (0xF0000-0xFFFFF, reserved in the e820
/// map), and the configuration table ("PCMP") right after it.
///
/// Entries: one processor per vCPU (APIC ID = index, version 0x14, enabled, vCPU 0 the BSP, the
/// CPUID.1 signature and EDX the interpreter shows), one ISA bus, the I/O APIC (ID = the vCPU
/// count, version 0x11, at 0xFEC00000), I/O interrupt assignments for ISA IRQs 1 and 3-15 to the
/// same pin, IRQ 0 to pin 2 and ExtINT on pin 0 (the wiring `LegacyInterruptWiring` implements),
/// and the local interrupts: ExtINT on LINT0 and NMI on LINT1 of every APIC.
public enum MPTable {
  /// Where the floating pointer goes; the configuration table follows at +16.
  public static let floatingPointerAddress: UInt64 = 0xF_0000

  /// The floating pointer and the configuration table for `cpuCount` vCPUs, the table at
  /// `tableAddress`.
  public static func structures(cpuCount: Int, tableAddress: UInt64) -> (floatingPointer: [UInt8], table: [UInt8]) {
    var entries: [UInt8] = []
    var count = 0
    for i in 0..<cpuCount {
      entries += [0, UInt8(i), 0x14, i == 0 ? 3 : 1]  // processor: enabled (+ BSP)
      entries += le32(0x0006_06E3) + le32(0x0000_0201) + [UInt8](repeating: 0, count: 8)  // signature, FPU|APIC
      count += 1
    }
    entries += [1, 0] + Array("ISA   ".utf8)  // bus 0: ISA
    count += 1
    let ioapicID = UInt8(cpuCount)
    entries += [2, ioapicID, 0x11, 1] + le32(UInt32(IOAPIC.base))
    count += 1
    entries += [3, 3, 0, 0, 0, 0, ioapicID, 0]  // ExtINT: ISA IRQ 0 on pin 0
    count += 1
    for irq in 0..<16 where irq != 2 {
      entries += [3, 0, 0, 0, 0, UInt8(irq), ioapicID, UInt8(irq == 0 ? 2 : irq)]
      count += 1
    }
    entries += [4, 3, 0, 0, 0, 0, 0xFF, 0]  // ExtINT on LINT0 of every APIC
    entries += [4, 1, 0, 0, 0, 0, 0xFF, 1]  // NMI on LINT1 of every APIC
    count += 2

    var table = Array("PCMP".utf8) + le16(UInt16(44 + entries.count)) + [4, 0]
    table += Array("TRIVSR  ".utf8) + Array("TRIVISOR VM ".utf8)
    table += le32(0) + le16(0) + le16(UInt16(count)) + le32(UInt32(LocalAPIC.base)) + le16(0) + [0, 0]
    table += entries
    table[7] = checksum(table)

    var pointer = Array("_MP_".utf8) + le32(UInt32(tableAddress)) + [1, 4, 0] + [0, 0, 0, 0, 0]
    pointer[10] = checksum(pointer)
    return (pointer, table)
  }

  /// Writes both structures at `floatingPointerAddress` (the guest's RAM must reach it).
  public static func install(into memory: GuestMemory, cpuCount: Int) throws(MemoryError) {
    let tableAddress = floatingPointerAddress + 16
    let s = structures(cpuCount: cpuCount, tableAddress: tableAddress)
    try memory.write(floatingPointerAddress, bytes: s.floatingPointer)
    try memory.write(tableAddress, bytes: s.table)
  }

  /// The byte that makes `bytes` sum to zero (its own slot counted as zero).
  static func checksum(_ bytes: [UInt8]) -> UInt8 {
    0 &- bytes.reduce(0, &+)
  }

  private static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
  private static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
}

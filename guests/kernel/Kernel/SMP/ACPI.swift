/// CPU discovery from the ACPI tables (ACPI 6.x, chapter 5.2): the RSDP found by the legacy scan
/// (the first KiB of the EBDA, then 0xE0000-0xFFFFF, on 16-byte boundaries), the XSDT (revision
/// 2 and up) or RSDT, and the MADT's Processor Local APIC entries. Every structure's checksum is
/// verified; a table the kernel cannot reach (above the 1 GiB identity map) counts as absent.
enum ACPI {
  /// What the MADT says.
  struct Processors {
    /// APIC IDs of the enabled processors, in MADT order.
    var apicIDs: [UInt32] = []
    var localAPICAddress: UInt64 = 0
    /// Entries the kernel cannot start through the xAPIC (x2APIC IDs, disabled processors).
    var skipped = 0
  }

  private static let identityMapEnd: UInt64 = 0x4000_0000

  /// The processors, or nil (with the reason printed) when there is no valid RSDP or MADT.
  static func discoverProcessors() -> Processors? {
    guard let rsdp = findRSDP() else {
      Console.write("SMP: no ACPI RSDP found\n")
      return nil
    }
    guard let madt = findTable(signature: "APIC", rsdp: rsdp) else {
      Console.write("SMP: no valid ACPI MADT\n")
      return nil
    }
    return parseMADT(madt)
  }

  /// The legacy RSDP scan.
  private static func findRSDP() -> UInt64? {
    let ebda = UInt64(readBIOSDataArea16(0x40E)) << 4
    if ebda >= 0x8_0000 && ebda < 0xA_0000, let found = scanRSDP(from: ebda, to: ebda + 1024) { return found }
    return scanRSDP(from: 0xE_0000, to: 0x10_0000)
  }

  private static func scanRSDP(from start: UInt64, to end: UInt64) -> UInt64? {
    var address = start
    while address + 20 <= end {
      if hasSignature(address, "RSD PTR "), checksum(address, length: 20) == 0 {
        let revision = load8(address + 15)
        if revision < 2 { return address }
        let length = UInt64(load32(address + 20))
        if length >= 36 && length <= 4096 && checksum(address, length: length) == 0 { return address }
      }
      address += 16
    }
    return nil
  }

  /// The table with `signature` listed in the XSDT (revision 2+, when present) or the RSDT.
  private static func findTable(signature: StaticString, rsdp: UInt64) -> UInt64? {
    let revision = load8(rsdp + 15)
    let xsdt = revision >= 2 ? load64(rsdp + 24) : 0
    let (root, entrySize): (UInt64, UInt64) = xsdt != 0 ? (xsdt, 8) : (UInt64(load32(rsdp + 16)), 4)
    guard isValidTable(root, signature: xsdt != 0 ? "XSDT" : "RSDT") else { return nil }
    let length = UInt64(load32(root + 4))
    var entry = root + 36
    while entry + entrySize <= root + length {
      let table = entrySize == 8 ? load64(entry) : UInt64(load32(entry))
      if isValidTable(table, signature: signature) { return table }
      entry += entrySize
    }
    return nil
  }

  private static func isValidTable(_ address: UInt64, signature: StaticString) -> Bool {
    guard address >= 0x1000, address + 36 <= identityMapEnd, hasSignature(address, signature) else { return false }
    let length = UInt64(load32(address + 4))
    guard length >= 36, address + length <= identityMapEnd else { return false }
    return checksum(address, length: length) == 0
  }

  /// MADT: local APIC address at 36, flags at 40, interrupt controller structures from 44
  /// (type, length, ...). Type 0 = Processor Local APIC: UID at 2, APIC ID at 3, flags at 4
  /// (bit 0 enabled, bit 1 online capable). Type 9 = Processor Local x2APIC.
  private static func parseMADT(_ madt: UInt64) -> Processors {
    var result = Processors()
    result.localAPICAddress = UInt64(load32(madt + 36))
    let end = madt + UInt64(load32(madt + 4))
    var entry = madt + 44
    while entry + 2 <= end {
      let type = load8(entry)
      let length = UInt64(load8(entry + 1))
      guard length >= 2, entry + length <= end else { break }
      if type == 0 && length >= 8 {
        if load32(entry + 4) & 1 != 0 {
          result.apicIDs.append(UInt32(load8(entry + 3)))
        } else {
          result.skipped += 1
        }
      } else if type == 9 {
        result.skipped += 1
      }
      entry += length
    }
    return result
  }

  /// Page 0 (the BIOS data area) is unmapped as a null guard: map it for one read.
  private static func readBIOSDataArea16(_ address: UInt64) -> UInt16 {
    let entry = KernelLayout.firstPageTable
    Platform.setPageTableEntry(entry, 0x1)  // present, read-only, supervisor
    let value = load16(address)
    Platform.setPageTableEntry(entry, 0)
    Platform.invalidatePage(0)
    return value
  }

  private static func hasSignature(_ address: UInt64, _ signature: StaticString) -> Bool {
    signature.withUTF8Buffer { bytes in
      for (offset, byte) in bytes.enumerated() where load8(address + UInt64(offset)) != byte { return false }
      return true
    }
  }

  private static func checksum(_ address: UInt64, length: UInt64) -> UInt8 {
    var sum: UInt8 = 0
    for offset in 0..<length { sum &+= load8(address + offset) }
    return sum
  }

  private static func load8(_ address: UInt64) -> UInt8 {
    UnsafeRawPointer(bitPattern: UInt(address))!.load(as: UInt8.self)
  }
  private static func load16(_ address: UInt64) -> UInt16 {
    UnsafeRawPointer(bitPattern: UInt(address))!.loadUnaligned(as: UInt16.self)
  }
  private static func load32(_ address: UInt64) -> UInt32 {
    UnsafeRawPointer(bitPattern: UInt(address))!.loadUnaligned(as: UInt32.self)
  }
  private static func load64(_ address: UInt64) -> UInt64 {
    UnsafeRawPointer(bitPattern: UInt(address))!.loadUnaligned(as: UInt64.self)
  }
}

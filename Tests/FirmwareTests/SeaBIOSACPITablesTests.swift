import Foundation
import TestHostSupport
import Testing
import VMM

/// SeaBIOS given our ACPI tables through fw_cfg ("etc/table-loader") installs them instead of its
/// own: after POST the RSDP in the F segment carries our OEM ID and leads to our MADT.
@Suite(.serialized, .requires(.seabios)) struct SeaBIOSACPITablesTests {
  /// The little-endian value of `n` bytes at `address`.
  static func le(_ memory: GuestMemory, _ address: UInt64, _ n: Int) throws -> UInt64 {
    try memory.read(address, count: n).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
  }

  /// The RSDP SeaBIOS left in 0xE0000-0xFFFFF (checksums verified), if any.
  static func findRSDP(_ memory: GuestMemory) throws -> UInt64? {
    for address in stride(from: UInt64(0xE0000), to: 0x10_0000, by: 16) {
      let head = try memory.read(address, count: 36)
      guard Array(head[0..<8]) == Array("RSD PTR ".utf8), head[0..<20].reduce(0, &+) == 0 else { continue }
      return address
    }
    return nil
  }

  static func bootWithOurTables(_ name: SeaBIOSBootTests.EngineName) throws {
    var machine: Machine?
    let platform = PlatformDescription(cpuCount: 1)
    let b = try SeaBIOSBootTests.boot(try SeaBIOSBootTests.biosImage(), engine: try SeaBIOSBootTests.engine(name)) {
      vm in
      machine = vm
      #expect(throws: Never.self) { try vm.devices.fwCfg?.addACPITables(for: platform, memory: vm.memory) }
    }
    // POST completes as usual (SeaBIOS's e820 map gains the reserved range it allocated for the
    // tables, so `expectCompletePOST`'s item count does not apply).
    #expect(b.outcome.reason == .outputMatched(SeaBIOSBootTests.finalMessage), "\(b.outcome.reason.description)")
    #expect(b.debug.contains("Found QEMU fw_cfg"))
    let memory = try #require(machine?.memory)
    let rsdp = try #require(try findRSDP(memory), "no RSDP in the BIOS area\n\(b.debug)")
    let full = try memory.read(rsdp, count: 36)
    #expect(String(decoding: full[9..<15], as: UTF8.self) == "TRIVSR", "SeaBIOS built its own tables")
    #expect(full.reduce(0, &+) == 0)
    let xsdt = try le(memory, rsdp + 24, 8)
    #expect(try memory.read(xsdt, count: 4) == Array("XSDT".utf8))
    let xsdtLength = Int(try le(memory, xsdt + 4, 4))
    #expect(try memory.read(xsdt, count: xsdtLength).reduce(0, &+) == 0)
    var signatures: [String] = []
    for entry in stride(from: 36, to: xsdtLength, by: 8) {
      let table = try le(memory, xsdt + UInt64(entry), 8)
      let length = Int(try le(memory, table + 4, 4))
      let bytes = try memory.read(table, count: length)
      #expect(bytes.reduce(0, &+) == 0)
      #expect(String(decoding: bytes[10..<16], as: UTF8.self) == "TRIVSR")
      signatures.append(String(decoding: bytes[0..<4], as: UTF8.self))
    }
    #expect(signatures == ["FACP", "APIC"])
    // The tables sit in a range SeaBIOS's e820 map reports reserved ("N: start - end = 2 RESERVED").
    let reserved = b.debug.split(separator: "\n").compactMap { line -> Range<UInt64>? in
      let words = line.split(separator: " ")
      guard line.hasSuffix("= 2 RESERVED"), words.count >= 4, let start = UInt64(words[1], radix: 16),
        let end = UInt64(words[3], radix: 16)
      else { return nil }
      return start..<end
    }
    #expect(reserved.contains { $0.contains(xsdt) }, "\(reserved)")
  }

  @Test func seaBIOSInstallsTheTablesFromFwCfg() throws { try Self.bootWithOurTables(.interp) }

  @Test(.requires(.kvm)) func seaBIOSInstallsTheTablesFromFwCfgOnKVM() throws { try Self.bootWithOurTables(.kvm) }
}

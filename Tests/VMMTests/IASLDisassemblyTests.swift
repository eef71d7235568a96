import Foundation
import TestHostSupport
import Testing

@testable import VMM

/// A second opinion on the tables: ACPICA's own disassembler (`iasl -d`) must accept each one
/// and decode the fields we put there.
@Suite(.requires(.iasl)) struct IASLDisassemblyTests {
  /// `iasl -d` run on `bytes` in a fresh directory: the .dsl it wrote and what it printed.
  func disassemble(_ bytes: [UInt8], name: String) throws -> (dsl: String, log: String, status: Int32) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "trivisor-iasl-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    try Data(bytes).write(to: directory.appendingPathComponent("\(name).dat"))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try #require(HostTools.find("iasl")))
    p.arguments = ["-d", "\(name).dat"]
    p.currentDirectoryURL = directory
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    let dsl = (try? String(contentsOf: directory.appendingPathComponent("\(name).dsl"), encoding: .utf8)) ?? ""
    return (dsl, log, p.terminationStatus)
  }

  /// The installed tables of `platform`, read back by signature.
  func tables(_ platform: PlatformDescription, ram: UInt64 = 64 << 20) throws -> ACPIView {
    let memory = try GuestMemory(ramSize: ram)
    try PlatformTables.install(into: memory, platform: platform)
    return try ACPIView.scan(memory)
  }

  /// How many lines of `dsl` name the subtable `type`.
  func subtables(_ dsl: String, _ type: String) -> Int {
    dsl.split(separator: "\n").filter { $0.contains("Subtable Type") && $0.hasSuffix("[\(type)]") }.count
  }

  /// The `FieldName : value` lines of `dsl` as a list (a field may repeat).
  func fields(_ dsl: String) -> [(String, String)] {
    // "[Offset Decimal Length]  FieldName : value", or "  FlagName : value" for decoded flags.
    dsl.split(separator: "\n").compactMap { line in
      guard !line.hasPrefix(" *"), let separator = line.range(of: " : ") else { return nil }
      var name = line[..<separator.lowerBound]
      if name.hasPrefix("["), let bracket = name.firstIndex(of: "]") { name = name[name.index(after: bracket)...] }
      let value = line[separator.upperBound...].trimmingCharacters(in: .whitespaces)
      return (name.trimmingCharacters(in: .whitespaces), value)
    }
  }

  func field(_ dsl: String, _ name: String) -> String? { fields(dsl).first { $0.0 == name }?.1 }

  @Test func theDSDTDisassemblesToTheS5Package() throws {
    let acpi = try tables(PlatformDescription(cpuCount: 2))
    let (dsl, log, status) = try disassemble(acpi.dsdt.bytes, name: "dsdt")
    #expect(status == 0, "\(log)")
    let compact = dsl.filter { !$0.isWhitespace }
    #expect(compact.contains("DefinitionBlock(\"\",\"DSDT\",2,\"TRIVSR\",\"TRIVISOR\",0x00000001)"), "\(dsl)")
    #expect(compact.contains("Name(\\_S5,Package(0x04)"), "\(dsl)")
    #expect(compact.contains("{0x05,0x05,Zero,Zero})"), "\(dsl)")
    // The PCI root bridge and its resource template, as ACPICA reads them (without its comments).
    let code = dsl.split(separator: "\n").map { line in
      line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false)[0]
    }
    .joined().replacing(/\/\*[^*]*\*\//, with: "").filter { !$0.isWhitespace }
    #expect(code.contains("Scope(\\_SB){Device(LNKA){"), "\(dsl)")
    #expect(code.contains("Device(PCI0){"), "\(dsl)")
    #expect(code.contains("Name(_HID,EisaId(\"PNP0A03\"))"), "\(dsl)")
    #expect(code.contains("WordBusNumber(ResourceProducer,MinFixed,MaxFixed,PosDecode,0x0000,0x0000,0x00FF"), "\(dsl)")
    #expect(code.contains("IO(Decode16,0x0CF8,0x0CF8,0x01,0x08"), "\(dsl)")
    #expect(code.contains("0xC0000000,0xFEBFFFFF"), "\(dsl)")
    // The interrupt links (GSI 16-19, level, active high, shared) and the routes to them.
    #expect(code.contains("Device(LNKA){Name(_HID,EisaId(\"PNP0C0F\"))"), "\(dsl)")
    #expect(code.contains("Interrupt(ResourceConsumer,Level,ActiveHigh,Shared,,,){0x00000010,}"), "\(dsl)")
    #expect(code.contains("Interrupt(ResourceConsumer,Level,ActiveHigh,Shared,,,){0x00000013,}"), "\(dsl)")
    #expect(code.contains("Method(_SRS,1,NotSerialized)"), "\(dsl)")
    #expect(code.contains("Name(_PRT,Package(0x80)"), "\(dsl)")
    // Slot 2 (the first virtio function): INTA on link C, INTB on link D, INTD on link B.
    #expect(code.contains("Package(0x04){0x0002FFFF,Zero,LNKC,Zero}"), "\(dsl)")
    #expect(code.contains("Package(0x04){0x0002FFFF,One,LNKD,Zero}"), "\(dsl)")
    #expect(code.contains("Package(0x04){0x0002FFFF,0x03,LNKB,Zero}"), "\(dsl)")
  }

  @Test func theMADTDisassemblesWithXAPICAndX2APICEntries() throws {
    let acpi = try tables(PlatformDescription(cpuCount: 300))
    let (dsl, log, status) = try disassemble(acpi.tables["APIC"]!.bytes, name: "apic")
    #expect(status == 0, "\(log)")
    #expect(field(dsl, "Local Apic Address") == "FEE00000")
    #expect(field(dsl, "PC-AT Compatibility") == "1")
    #expect(subtables(dsl, "Processor Local APIC") == 255)
    #expect(subtables(dsl, "Processor Local x2APIC") == 45)
    #expect(subtables(dsl, "I/O APIC") == 1)
    #expect(subtables(dsl, "Interrupt Source Override") == 2)
    #expect(subtables(dsl, "Local APIC NMI") == 1)
    #expect(subtables(dsl, "Local x2APIC NMI") == 1)
    #expect(field(dsl, "Address") == "FEC00000")
    // The I/O APIC's GSI base, then IRQ 0 → GSI 2 (bus defaults) and IRQ 9 → GSI 9 (active high,
    // level), then both NMI entries on LINT1 (active high, edge).
    let interrupts = fields(dsl).filter {
      ["Interrupt", "Polarity", "Trigger Mode", "Interrupt Input LINT"].contains($0.0)
    }
    let expected = [
      ("Interrupt", "00000000"), ("Interrupt", "00000002"), ("Polarity", "0"), ("Trigger Mode", "0"),
      ("Interrupt", "00000009"), ("Polarity", "1"), ("Trigger Mode", "3"), ("Polarity", "1"), ("Trigger Mode", "1"),
      ("Interrupt Input LINT", "01"), ("Polarity", "1"), ("Trigger Mode", "1"), ("Interrupt Input LINT", "01"),
    ]
    #expect(interrupts.map { "\($0.0)=\($0.1)" } == expected.map { "\($0.0)=\($0.1)" })
    #expect(fields(dsl).filter { $0.0 == "Processor x2Apic ID" }.last?.1 == "0000012B")
  }

  @Test func theFADTDisassemblesWithThePMBlocks() throws {
    let acpi = try tables(PlatformDescription(cpuCount: 1))
    let (dsl, log, status) = try disassemble(acpi.fadt.bytes, name: "facp")
    #expect(status == 0, "\(log)")
    #expect(field(dsl, "SCI Interrupt") == "0009")
    #expect(field(dsl, "PM1A Event Block Address") == "00000600")
    #expect(field(dsl, "PM1A Control Block Address") == "00000604")
    #expect(field(dsl, "PM1 Control Block Length") == "02")
    #expect(field(dsl, "RTC Century Index") == "32")
    #expect(field(dsl, "8042 Present on ports 60/64 (V2)") == "1")
    #expect(field(dsl, "Legacy Devices Supported (V2)") == "1")
    #expect(field(dsl, "Hardware Reduced (V5)") == "0")
    #expect(field(dsl, "Reset Register Supported (V2)") == "1")
    #expect(field(dsl, "Value to cause reset") == "06")
  }

  @Test func theSRATSLITAndFACSDisassemble() throws {
    let memory = try GuestMemory(ramSize: 64 << 20)
    let numa = try NUMATopology.evenlySplit(nodeCount: 2, cpuCount: 300, memory: memory)
    try PlatformTables.install(into: memory, platform: PlatformDescription(cpuCount: 300, numa: numa))
    let acpi = try ACPIView.scan(memory)
    let srat = try disassemble(acpi.tables["SRAT"]!.bytes, name: "srat")
    #expect(srat.status == 0, "\(srat.log)")
    #expect(subtables(srat.dsl, "Processor Local APIC/SAPIC Affinity") == 255)
    #expect(subtables(srat.dsl, "Processor Local x2APIC Affinity") == 45)
    #expect(subtables(srat.dsl, "Memory Affinity") == 2)
    let slit = try disassemble(acpi.tables["SLIT"]!.bytes, name: "slit")
    #expect(slit.status == 0, "\(slit.log)")
    #expect(field(slit.dsl, "Localities") == "0000000000000002")
    #expect(field(slit.dsl, "Locality   0") == "0A 14")
    let facs = try disassemble(acpi.facs, name: "facs")
    #expect(facs.status == 0, "\(facs.log)")
    #expect(field(facs.dsl, "Signature") == "\"FACS\"")
    #expect(field(facs.dsl, "Version") == "02")
  }
}

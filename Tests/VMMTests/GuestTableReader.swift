import VMM

/// Reads the platform tables back out of guest memory the way an operating system does, with no
/// knowledge of where the VMM put them: the legacy scans for "RSD PTR " and "_MP_", the RSDT and
/// XSDT walked to every table, and each structure checked (signature, length, checksum) before it
/// is decoded. Written from the ACPI and MP specifications, independently of the builders.
struct TableFormatError: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}

/// Little-endian reads from guest memory that throw instead of trapping.
struct GuestBytes {
  let memory: GuestMemory
  func bytes(_ at: UInt64, _ count: Int) throws -> [UInt8] {
    do { return try memory.read(at, count: count) } catch {
      throw TableFormatError("cannot read \(count) bytes at 0x\(String(at, radix: 16)): \(error)")
    }
  }
  func u8(_ at: UInt64) throws -> UInt8 { try bytes(at, 1)[0] }
  func u16(_ at: UInt64) throws -> UInt16 { UInt16(try le(at, 2)) }
  func u32(_ at: UInt64) throws -> UInt32 { UInt32(try le(at, 4)) }
  func u64(_ at: UInt64) throws -> UInt64 { try le(at, 8) }
  private func le(_ at: UInt64, _ n: Int) throws -> UInt64 {
    try bytes(at, n).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
  }
}

/// Little-endian field access into a byte array.
extension Array where Element == UInt8 {
  func le(_ at: Int, _ n: Int) -> UInt64 {
    (0..<n).reduce(0) { $0 | UInt64(self[at + $1]) << (8 * UInt64($1)) }
  }
  func u16(_ at: Int) -> UInt16 { UInt16(le(at, 2)) }
  func u32(_ at: Int) -> UInt32 { UInt32(le(at, 4)) }
  func u64(_ at: Int) -> UInt64 { le(at, 8) }
  func text(_ at: Int, _ n: Int) -> String { String(decoding: self[at..<(at + n)], as: UTF8.self) }
  var sum8: UInt8 { reduce(0, &+) }
}

/// One system description table with a standard header.
struct ACPITable {
  let address: UInt64
  let bytes: [UInt8]
  var signature: String { bytes.text(0, 4) }
  var revision: UInt8 { bytes[8] }
  var oemID: String { bytes.text(10, 6) }
  var oemTableID: String { bytes.text(16, 8) }
  /// The bytes after the 36-byte header.
  var body: ArraySlice<UInt8> { bytes[36...] }
}

/// The guest's view of the ACPI tables.
struct ACPIView {
  let rsdpAddress: UInt64
  let rsdp: [UInt8]
  let rsdt: ACPITable
  let xsdt: ACPITable
  /// The tables the XSDT lists, by signature.
  let tables: [String: ACPITable]
  let dsdt: ACPITable
  let facs: [UInt8]
  let facsAddress: UInt64

  /// Finds the RSDP as Linux does: the first KiB of the EBDA (segment at 0x40E), then
  /// 0xE0000-0xFFFFF, on 16-byte boundaries, accepting only a structure whose checksums hold.
  static func scan(_ memory: GuestMemory) throws -> ACPIView {
    let g = GuestBytes(memory: memory)
    let ebda = UInt64(try g.u16(0x40E)) << 4
    var areas: [Range<UInt64>] = []
    if ebda >= 0x400 { areas.append(ebda..<(ebda + 1024)) }
    areas.append(0xE0000..<0x10_0000)
    for area in areas {
      for address in stride(from: area.lowerBound, to: area.upperBound, by: 16) {
        guard try g.bytes(address, 8) == Array("RSD PTR ".utf8) else { continue }
        guard try g.bytes(address, 20).sum8 == 0 else { continue }
        return try read(memory, rsdpAt: address)
      }
    }
    throw TableFormatError("no RSDP in the EBDA or 0xE0000-0xFFFFF")
  }

  /// Reads and checks one table with a standard header at `address`.
  static func table(_ g: GuestBytes, at address: UInt64, expecting signature: String? = nil) throws -> ACPITable {
    let head = try g.bytes(address, 36)
    let length = Int(head.u32(4))
    guard length >= 36 else { throw TableFormatError("table at 0x\(String(address, radix: 16)) has length \(length)") }
    let t = ACPITable(address: address, bytes: try g.bytes(address, length))
    if let signature, t.signature != signature {
      throw TableFormatError("expected \(signature) at 0x\(String(address, radix: 16)), found \(t.signature)")
    }
    guard t.bytes.sum8 == 0 else { throw TableFormatError("\(t.signature) checksum is wrong") }
    return t
  }

  /// Reads everything reachable from the RSDP at `address`.
  static func read(_ memory: GuestMemory, rsdpAt address: UInt64) throws -> ACPIView {
    let g = GuestBytes(memory: memory)
    let head = try g.bytes(address, 20)
    guard head.text(0, 8) == "RSD PTR ", head.sum8 == 0 else { throw TableFormatError("bad RSDP") }
    guard head[15] >= 2 else { throw TableFormatError("RSDP revision \(head[15]) has no XSDT") }
    let length = Int(try g.u32(address + 20))
    guard length >= 36 else { throw TableFormatError("RSDP length \(length)") }
    let rsdp = try g.bytes(address, length)
    guard rsdp.sum8 == 0 else { throw TableFormatError("RSDP extended checksum is wrong") }
    let rsdt = try table(g, at: UInt64(rsdp.u32(16)), expecting: "RSDT")
    let xsdt = try table(g, at: rsdp.u64(24), expecting: "XSDT")
    guard rsdt.body.count % 4 == 0, xsdt.body.count % 8 == 0 else {
      throw TableFormatError("RSDT/XSDT lengths are not whole entries")
    }
    let rsdtEntries = stride(from: 36, to: rsdt.bytes.count, by: 4).map { UInt64(rsdt.bytes.u32($0)) }
    let xsdtEntries = stride(from: 36, to: xsdt.bytes.count, by: 8).map { xsdt.bytes.u64($0) }
    guard rsdtEntries == xsdtEntries else { throw TableFormatError("RSDT and XSDT list different tables") }
    var tables: [String: ACPITable] = [:]
    for entry in xsdtEntries {
      let t = try table(g, at: entry)
      guard tables[t.signature] == nil else { throw TableFormatError("two \(t.signature) tables") }
      tables[t.signature] = t
    }
    guard let fadt = tables["FACP"] else { throw TableFormatError("no FADT") }
    let dsdt32 = UInt64(fadt.bytes.u32(40))
    let xdsdt = fadt.bytes.count >= 148 ? fadt.bytes.u64(140) : 0
    guard xdsdt == 0 || dsdt32 == 0 || xdsdt == dsdt32 else { throw TableFormatError("DSDT and X_DSDT differ") }
    let dsdt = try table(g, at: xdsdt != 0 ? xdsdt : dsdt32, expecting: "DSDT")
    let facsAddress = fadt.bytes.u64(132) != 0 ? fadt.bytes.u64(132) : UInt64(fadt.bytes.u32(36))
    guard facsAddress % 64 == 0 else { throw TableFormatError("FACS is not 64-byte aligned") }
    let facs = try g.bytes(facsAddress, 64)
    guard facs.text(0, 4) == "FACS", facs.u32(4) >= 64 else { throw TableFormatError("bad FACS") }
    return ACPIView(
      rsdpAddress: address, rsdp: rsdp, rsdt: rsdt, xsdt: xsdt, tables: tables, dsdt: dsdt, facs: facs,
      facsAddress: facsAddress)
  }

  var fadt: ACPITable { tables["FACP"]! }
}

/// A decoded MADT entry.
enum MADTEntry: Equatable {
  case localAPIC(uid: UInt8, apicID: UInt8, flags: UInt32)
  case ioAPIC(id: UInt8, address: UInt32, gsiBase: UInt32)
  case sourceOverride(bus: UInt8, irq: UInt8, gsi: UInt32, flags: UInt16)
  case localAPICNMI(uid: UInt8, flags: UInt16, lint: UInt8)
  case localX2APIC(x2apicID: UInt32, flags: UInt32, uid: UInt32)
  case localX2APICNMI(flags: UInt16, uid: UInt32, lint: UInt8)
}

/// Decodes the MADT: local APIC address, flags and the entries, each of its type's exact length.
func decodeMADT(_ t: ACPITable) throws -> (localAPIC: UInt32, flags: UInt32, entries: [MADTEntry]) {
  let b = t.bytes
  var entries: [MADTEntry] = []
  var at = 44
  let lengths: [UInt8: Int] = [0: 8, 1: 12, 2: 10, 4: 6, 9: 16, 0x0A: 12]
  while at < b.count {
    guard at + 2 <= b.count else { throw TableFormatError("MADT entry header cut at \(at)") }
    let type = b[at]
    let length = Int(b[at + 1])
    guard let expected = lengths[type] else { throw TableFormatError("unexpected MADT entry type \(type)") }
    guard length == expected, at + length <= b.count else {
      throw TableFormatError("MADT entry type \(type) has length \(length)")
    }
    switch type {
    case 0: entries.append(.localAPIC(uid: b[at + 2], apicID: b[at + 3], flags: b.u32(at + 4)))
    case 1: entries.append(.ioAPIC(id: b[at + 2], address: b.u32(at + 4), gsiBase: b.u32(at + 8)))
    case 2: entries.append(.sourceOverride(bus: b[at + 2], irq: b[at + 3], gsi: b.u32(at + 4), flags: b.u16(at + 8)))
    case 4: entries.append(.localAPICNMI(uid: b[at + 2], flags: b.u16(at + 3), lint: b[at + 5]))
    case 9: entries.append(.localX2APIC(x2apicID: b.u32(at + 4), flags: b.u32(at + 8), uid: b.u32(at + 12)))
    default: entries.append(.localX2APICNMI(flags: b.u16(at + 2), uid: b.u32(at + 4), lint: b[at + 8]))
    }
    at += length
  }
  return (b.u32(36), b.u32(40), entries)
}

/// A decoded SRAT entry (processor affinity of either kind, or memory affinity).
enum SRATEntry: Equatable {
  case processor(domain: UInt32, apicID: UInt32, x2APIC: Bool, flags: UInt32)
  case memory(domain: UInt32, base: UInt64, length: UInt64, flags: UInt32)
}

func decodeSRAT(_ t: ACPITable) throws -> [SRATEntry] {
  let b = t.bytes
  var out: [SRATEntry] = []
  var at = 48
  while at < b.count {
    let type = b[at]
    let length = Int(b[at + 1])
    guard at + length <= b.count else { throw TableFormatError("SRAT entry cut") }
    switch (type, length) {
    case (0, 16):
      let domain = UInt32(b[at + 2]) | UInt32(b[at + 9]) << 8 | UInt32(b[at + 10]) << 16 | UInt32(b[at + 11]) << 24
      out.append(.processor(domain: domain, apicID: UInt32(b[at + 3]), x2APIC: false, flags: b.u32(at + 4)))
    case (1, 40):
      let base = UInt64(b.u32(at + 8)) | UInt64(b.u32(at + 12)) << 32
      let length = UInt64(b.u32(at + 16)) | UInt64(b.u32(at + 20)) << 32
      out.append(.memory(domain: b.u32(at + 2), base: base, length: length, flags: b.u32(at + 28)))
    case (2, 24):
      out.append(.processor(domain: b.u32(at + 4), apicID: b.u32(at + 8), x2APIC: true, flags: b.u32(at + 12)))
    default: throw TableFormatError("unexpected SRAT entry type \(type) length \(length)")
    }
    at += length
  }
  return out
}

func decodeSLIT(_ t: ACPITable) throws -> [[UInt8]] {
  let n = Int(t.bytes.u64(36))
  guard t.bytes.count == 44 + n * n else { throw TableFormatError("SLIT length does not match \(n) localities") }
  return (0..<n).map { i in Array(t.bytes[(44 + i * n)..<(44 + (i + 1) * n)]) }
}

/// A decoder for the data objects of a definition block: `Name(path, Package(){integers})` and
/// `Name(path, integer)` at the top level, as the DSDT contains them.
enum AMLReader {
  /// Decodes a `PkgLength` at `at`: the value and how many bytes it took.
  static func pkgLength(_ b: [UInt8], _ at: Int) throws -> (value: Int, size: Int) {
    let lead = b[at]
    let follow = Int(lead >> 6)
    if follow == 0 { return (Int(lead & 0x3F), 1) }
    guard lead & 0x30 == 0 else {
      throw TableFormatError("PkgLength lead byte 0x\(String(lead, radix: 16)) has bits 5-4 set")
    }
    var value = Int(lead & 0x0F)
    for i in 0..<follow { value |= Int(b[at + 1 + i]) << (4 + 8 * i) }
    return (value, 1 + follow)
  }

  /// Decodes an integer term at `at`: the value and its size.
  static func integer(_ b: [UInt8], _ at: Int) throws -> (value: UInt64, size: Int) {
    switch b[at] {
    case 0x00: return (0, 1)
    case 0x01: return (1, 1)
    case 0xFF: return (UInt64.max, 1)
    case 0x0A: return (UInt64(b[at + 1]), 2)
    case 0x0B: return (UInt64(b.u16(at + 1)), 3)
    case 0x0C: return (UInt64(b.u32(at + 1)), 5)
    case 0x0E: return (b.u64(at + 1), 9)
    default: throw TableFormatError("AML byte 0x\(String(b[at], radix: 16)) at \(at) is no integer")
    }
  }

  /// Every top-level `Name` in `aml` whose value is a package of integers, by name segment.
  static func namedPackages(_ aml: [UInt8]) throws -> [String: [UInt64]] {
    var out: [String: [UInt64]] = [:]
    var at = 0
    while at < aml.count {
      guard aml[at] == 0x08 else { throw TableFormatError("AML opcode 0x\(String(aml[at], radix: 16)) is no NameOp") }
      at += 1
      if aml[at] == 0x5C { at += 1 }  // root prefix
      let name = aml.text(at, 4)
      at += 4
      guard aml[at] == 0x12 else { throw TableFormatError("\(name) is no Package") }
      let (length, size) = try pkgLength(aml, at + 1)
      let end = at + 1 + length
      guard end <= aml.count else { throw TableFormatError("\(name) package runs past the table") }
      let count = Int(aml[at + 1 + size])
      var p = at + 2 + size
      var elements: [UInt64] = []
      for _ in 0..<count {
        let (v, s) = try integer(aml, p)
        elements.append(v)
        p += s
      }
      guard p == end else { throw TableFormatError("\(name) package has \(end - p) bytes after its elements") }
      out[name] = elements
      at = end
    }
    return out
  }
}

/// The guest's view of the MP tables.
struct MPView {
  let floatingPointerAddress: UInt64
  let floatingPointer: [UInt8]
  let configurationAddress: UInt64
  let header: [UInt8]
  let entries: [Entry]

  enum Entry: Equatable {
    case processor(apicID: UInt8, version: UInt8, flags: UInt8, signature: UInt32, features: UInt32)
    case bus(id: UInt8, type: String)
    case ioAPIC(id: UInt8, version: UInt8, flags: UInt8, address: UInt32)
    case ioInterrupt(type: UInt8, flags: UInt16, bus: UInt8, irq: UInt8, ioapic: UInt8, pin: UInt8)
    case localInterrupt(type: UInt8, flags: UInt16, bus: UInt8, irq: UInt8, apic: UInt8, lint: UInt8)
  }

  /// Finds "_MP_" where the MP specification says to look: the first KiB of the EBDA, the last KiB
  /// of base memory, then the BIOS ROM area 0xF0000-0xFFFFF, on 16-byte boundaries.
  static func scan(_ memory: GuestMemory) throws -> MPView {
    let g = GuestBytes(memory: memory)
    let ebda = UInt64(try g.u16(0x40E)) << 4
    let baseTop = UInt64(try g.u16(0x413)) << 10
    var areas: [Range<UInt64>] = []
    if ebda >= 0x400 { areas.append(ebda..<(ebda + 1024)) }
    if baseTop >= 1024 { areas.append((baseTop - 1024)..<baseTop) }
    areas.append(0xF0000..<0x10_0000)
    for area in areas {
      for address in stride(from: area.lowerBound, to: area.upperBound, by: 16) {
        guard try g.bytes(address, 4) == Array("_MP_".utf8) else { continue }
        let length = Int(try g.u8(address + 8)) * 16
        guard length >= 16, try g.bytes(address, length).sum8 == 0 else { continue }
        return try read(g, floatingPointerAt: address)
      }
    }
    throw TableFormatError("no _MP_ floating pointer")
  }

  static func read(_ g: GuestBytes, floatingPointerAt address: UInt64) throws -> MPView {
    let fp = try g.bytes(address, 16)
    let config = UInt64(fp.u32(4))
    guard config != 0 else { throw TableFormatError("default configuration, no table") }
    let head = try g.bytes(config, 44)
    guard head.text(0, 4) == "PCMP" else { throw TableFormatError("no PCMP at 0x\(String(config, radix: 16))") }
    let length = Int(head.u16(4))
    let table = try g.bytes(config, length)
    guard table.sum8 == 0 else { throw TableFormatError("MP configuration table checksum is wrong") }
    var entries: [Entry] = []
    var at = 44
    var lastType: UInt8 = 0
    while at < length {
      let type = table[at]
      guard type >= lastType else { throw TableFormatError("MP entries are not sorted by type") }
      lastType = type
      let size = type == 0 ? 20 : 8
      guard at + size <= length else { throw TableFormatError("MP entry cut") }
      let e = Array(table[at..<(at + size)])
      switch type {
      case 0:
        entries.append(.processor(apicID: e[1], version: e[2], flags: e[3], signature: e.u32(4), features: e.u32(8)))
      case 1: entries.append(.bus(id: e[1], type: e.text(2, 6)))
      case 2: entries.append(.ioAPIC(id: e[1], version: e[2], flags: e[3], address: e.u32(4)))
      case 3: entries.append(.ioInterrupt(type: e[1], flags: e.u16(2), bus: e[4], irq: e[5], ioapic: e[6], pin: e[7]))
      case 4: entries.append(.localInterrupt(type: e[1], flags: e.u16(2), bus: e[4], irq: e[5], apic: e[6], lint: e[7]))
      default: throw TableFormatError("unknown MP entry type \(type)")
      }
      at += size
    }
    guard entries.count == Int(head.u16(34)) else { throw TableFormatError("MP entry count mismatch") }
    return MPView(
      floatingPointerAddress: address, floatingPointer: fp, configurationAddress: config, header: head,
      entries: entries)
  }
}

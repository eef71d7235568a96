import Translator
import X86

/// Why a translation file is refused, in one line.
public struct TranslationFileError: Error, CustomStringConvertible, Equatable, Sendable {
  /// What is wrong with the file.
  public let description: String
  /// An error saying `description`.
  public init(_ description: String) { self.description = description }
}

/// A translation file (`trivisor translate`, docs/binary-translation.md): host code for guest
/// blocks made ahead of time, keyed by the content hashes of the guest code pages it covers.
///
/// Layout, little-endian: a 40-byte header (magic `TRVSBT\0\n`, format version u32, flags u32
/// (0), back-end fingerprint u64, page count u32, block count u32, body length u64), the body
/// (pages: physical page address u64 and its SHA-256; blocks: linear RIP u64, physical RIP u64,
/// mode u8, user u8, guest instruction count u16, callout page offset i32 (-1: none), chained and
/// cross-page entry offsets u32, folded count u32, code length u32 and the code, relocation
/// count u32 and (offset u32, symbol u8, addend u32) each, link count u32 and (field u32, target
/// u64) each, host-flags entry offset i32 (-1: none), host-flags link count u32 and (field u32,
/// target u64) each, register-live entry offset i32 (-1: none), register-live link count u32 and
/// (field u32, target u64) each, the same for register-live host-flags entry and links), then the SHA-256 of everything before it. A file that is truncated, corrupted, of
/// another version or made by another build of the translator is refused with one line.
package struct TranslationFile: Equatable {
  /// The file's first bytes.
  package static let magic: [UInt8] = Array("TRVSBT\0\n".utf8)
  /// The format this build reads and writes.
  package static let version: UInt32 = 3
  /// Bytes before the body.
  package static let headerSize = 40
  /// Bytes of the checksum at the end.
  package static let checksumSize = 32

  /// A guest page the file's blocks were made from: its physical address and content hash.
  package struct Page: Equatable {
    /// Physical address of the page (4 KiB aligned).
    package var physical: UInt64
    /// SHA-256 of its 4096 bytes.
    package var hash: [UInt8]
  }

  /// One translated block and where it applies.
  package struct Block: Equatable {
    /// Its guest RIP.
    package var linear: UInt64
    /// The physical address of its first byte.
    package var physical: UInt64
    /// The kind of code it was translated as.
    package var mode: TranslatedCodeMode
    /// Translated for CPL 3 (true) or below.
    package var user: Bool
    /// The host code and its relocations.
    package var code: RelocatableBlock
  }

  /// The translator build the code is for (`RelocatableBlock.backendFingerprint`).
  package var fingerprint: UInt64
  /// Every page a block lies in, by address.
  package var pages: [Page]
  /// The blocks.
  package var blocks: [Block]

  /// A file of `blocks` over `pages` for the build `fingerprint`.
  package init(fingerprint: UInt64, pages: [Page], blocks: [Block]) {
    self.fingerprint = fingerprint
    self.pages = pages
    self.blocks = blocks
  }

  /// The file's bytes.
  package func serialized() -> [UInt8] {
    var body = ByteWriter()
    for p in pages {
      body.u64(p.physical)
      body.bytes(p.hash)
    }
    for b in blocks {
      body.u64(b.linear)
      body.u64(b.physical)
      body.u8(UInt8(b.mode.rawValue))
      body.u8(b.user ? 1 : 0)
      body.u16(UInt16(b.code.length))
      body.u32(UInt32(bitPattern: Int32(b.code.calloutPageOffset ?? -1)))
      body.u32(UInt32(b.code.chainEntry))
      body.u32(UInt32(b.code.crossEntry))
      body.u32(UInt32(b.code.folded))
      body.u32(UInt32(b.code.code.count))
      body.bytes(b.code.code)
      body.u32(UInt32(b.code.relocations.count))
      for r in b.code.relocations {
        body.u32(UInt32(r.offset))
        body.u8(r.symbol.rawValue)
        body.u32(r.addend)
      }
      body.u32(UInt32(b.code.links.count))
      for l in b.code.links {
        body.u32(UInt32(l.field))
        body.u64(l.target)
      }
      body.u32(UInt32(bitPattern: Int32(b.code.hostFlagsEntry ?? -1)))
      body.u32(UInt32(b.code.hostFlagsLinks.count))
      for l in b.code.hostFlagsLinks {
        body.u32(UInt32(l.field))
        body.u64(l.target)
      }
      body.u32(UInt32(bitPattern: Int32(b.code.registerLiveEntry ?? -1)))
      body.u32(UInt32(b.code.registerLiveLinks.count))
      for l in b.code.registerLiveLinks {
        body.u32(UInt32(l.field))
        body.u64(l.target)
      }
      body.u32(UInt32(bitPattern: Int32(b.code.registerLiveHostFlagsEntry ?? -1)))
      body.u32(UInt32(b.code.registerLiveHostFlagsLinks.count))
      for l in b.code.registerLiveHostFlagsLinks {
        body.u32(UInt32(l.field))
        body.u64(l.target)
      }
    }
    var out = ByteWriter()
    out.bytes(Self.magic)
    out.u32(Self.version)
    out.u32(0)
    out.u64(fingerprint)
    out.u32(UInt32(pages.count))
    out.u32(UInt32(blocks.count))
    out.u64(UInt64(body.data.count))
    out.bytes(body.data)
    out.bytes(SHA256.hash(out.data))
    return out.data
  }

  /// Reads and checks a file: its size against its header, its checksum, version and (when given)
  /// the build fingerprint, then every record's bounds (relocations, links and entries inside the
  /// block's code, each block in a listed page). Nothing of a refused file is used.
  package init(parsing data: [UInt8], expectedFingerprint: UInt64?) throws(TranslationFileError) {
    guard data.count >= Self.magic.count, Array(data[0..<Self.magic.count]) == Self.magic else {
      throw TranslationFileError("not a translation file (no TRVSBT magic)")
    }
    guard data.count >= Self.headerSize + Self.checksumSize else {
      throw TranslationFileError("translation file is truncated (\(data.count) bytes, shorter than its header)")
    }
    var header = ByteReader(data, from: Self.magic.count, to: Self.headerSize)
    let version = try header.u32()
    guard version == Self.version else {
      throw TranslationFileError(
        "translation file has format version \(version); this trivisor reads version \(Self.version): translate again")
    }
    let flags = try header.u32()
    let fingerprint = try header.u64()
    let pageCount = Int(try header.u32())
    let blockCount = Int(try header.u32())
    let bodyLength = try header.u64()
    // Checked before any arithmetic: a corrupted length is an error, not a trap (the checksum
    // comes later).
    guard bodyLength < UInt64(Int32.max) else {
      throw TranslationFileError("translation file is corrupted (its header gives a body of \(bodyLength) bytes)")
    }
    let expected = UInt64(Self.headerSize) + bodyLength + UInt64(Self.checksumSize)
    guard UInt64(data.count) == expected else {
      throw TranslationFileError(
        "translation file is \(UInt64(data.count) < expected ? "truncated" : "longer than its header says") (\(data.count) bytes, header says \(expected))"
      )
    }
    let end = data.count - Self.checksumSize
    let checksum = data.withUnsafeBytes { SHA256.hash(UnsafeRawBufferPointer(rebasing: $0[0..<end])) }
    guard Array(data[end...]) == checksum else {
      throw TranslationFileError("translation file is corrupted (checksum mismatch)")
    }
    guard flags == 0 else {
      throw TranslationFileError("translation file has unknown flags 0x\(String(flags, radix: 16))")
    }
    if let expectedFingerprint, fingerprint != expectedFingerprint {
      throw TranslationFileError(
        "translation file was made by another build of the translator (fingerprint \(String(fingerprint, radix: 16)), this one \(String(expectedFingerprint, radix: 16))): translate again"
      )
    }
    var r = ByteReader(data, from: Self.headerSize, to: end)
    var pages: [Page] = []
    var known = Set<UInt64>()
    for i in 0..<pageCount {
      let physical = try r.u64()
      let hash = try r.bytes(32)
      guard physical & 0xFFF == 0, known.insert(physical).inserted else {
        throw TranslationFileError("translation file page record \(i) is malformed")
      }
      pages.append(Page(physical: physical, hash: hash))
    }
    var blocks: [Block] = []
    for i in 0..<blockCount {
      func bad(_ why: String) -> TranslationFileError {
        TranslationFileError("translation file block record \(i) is malformed: \(why)")
      }
      let linear = try r.u64()
      let physical = try r.u64()
      guard let mode = TranslatedCodeMode(rawValue: UInt64(try r.u8())) else { throw bad("unknown code mode") }
      let user = try r.u8()
      guard user <= 1 else { throw bad("bad privilege") }
      let length = Int(try r.u16())
      let callout = Int32(bitPattern: try r.u32())
      let chainEntry = Int(try r.u32())
      let crossEntry = Int(try r.u32())
      let folded = Int(try r.u32())
      let codeLength = Int(try r.u32())
      let code = try r.bytes(codeLength)
      var relocations: [RelocatableBlock.Relocation] = []
      for _ in 0..<Int(try r.u32()) {
        let offset = Int(try r.u32())
        guard let symbol = RelocatableBlock.Symbol(rawValue: try r.u8()) else { throw bad("unknown relocation") }
        relocations.append(.init(offset: offset, symbol: symbol, addend: try r.u32()))
      }
      var links: [RelocatableBlock.Link] = []
      for _ in 0..<Int(try r.u32()) {
        let field = Int(try r.u32())
        links.append(.init(field: field, target: try r.u64()))
      }
      let hostFlagsEntry = Int32(bitPattern: try r.u32())
      guard hostFlagsEntry >= -1 else { throw bad("bad host-flags entry") }
      var hostFlagsLinks: [RelocatableBlock.Link] = []
      for _ in 0..<Int(try r.u32()) {
        let field = Int(try r.u32())
        hostFlagsLinks.append(.init(field: field, target: try r.u64()))
      }
      let registerLiveEntry = Int32(bitPattern: try r.u32())
      guard registerLiveEntry >= -1 else { throw bad("bad register-live entry") }
      var registerLiveLinks: [RelocatableBlock.Link] = []
      for _ in 0..<Int(try r.u32()) {
        let field = Int(try r.u32())
        registerLiveLinks.append(.init(field: field, target: try r.u64()))
      }
      let bothEntry = Int32(bitPattern: try r.u32())
      guard bothEntry >= -1 else { throw bad("bad register-live host-flags entry") }
      var bothLinks: [RelocatableBlock.Link] = []
      for _ in 0..<Int(try r.u32()) {
        let field = Int(try r.u32())
        bothLinks.append(.init(field: field, target: try r.u64()))
      }
      guard callout >= -1, callout < 4096 else { throw bad("bad callout offset") }
      let block = RelocatableBlock(
        code: code, relocations: relocations, chainEntry: chainEntry, crossEntry: crossEntry, links: links,
        folded: folded, length: length, calloutPageOffset: callout < 0 ? nil : Int(callout),
        hostFlagsEntry: hostFlagsEntry < 0 ? nil : Int(hostFlagsEntry), hostFlagsLinks: hostFlagsLinks,
        registerLiveEntry: registerLiveEntry < 0 ? nil : Int(registerLiveEntry), registerLiveLinks: registerLiveLinks,
        registerLiveHostFlagsEntry: bothEntry < 0 ? nil : Int(bothEntry), registerLiveHostFlagsLinks: bothLinks)
      guard block.isWellFormed else { throw bad("a relocation, link or entry outside its code") }
      guard linear & 0xFFF == physical & 0xFFF, known.contains(physical & ~0xFFF) else {
        throw bad("its page is not listed")
      }
      blocks.append(Block(linear: linear, physical: physical, mode: mode, user: user == 1, code: block))
    }
    guard r.atEnd else { throw TranslationFileError("translation file has \(r.remaining) bytes after its records") }
    self.init(fingerprint: fingerprint, pages: pages, blocks: blocks)
  }
}

/// Little-endian output.
struct ByteWriter {
  /// The bytes so far.
  var data: [UInt8] = []
  mutating func u8(_ v: UInt8) { data.append(v) }
  mutating func u16(_ v: UInt16) { for k in 0..<2 { data.append(UInt8(truncatingIfNeeded: v >> (8 * UInt16(k)))) } }
  mutating func u32(_ v: UInt32) { for k in 0..<4 { data.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) } }
  mutating func u64(_ v: UInt64) { for k in 0..<8 { data.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) } }
  mutating func bytes(_ b: [UInt8]) { data += b }
}

/// Little-endian input that never reads past its end (a short read is a truncated file).
struct ByteReader {
  private let data: [UInt8]
  private var at: Int
  private let end: Int

  init(_ data: [UInt8], from: Int, to end: Int) {
    self.data = data
    self.at = from
    self.end = end
  }

  /// Bytes left.
  var remaining: Int { end - at }
  /// Whether every byte was read.
  var atEnd: Bool { at == end }

  mutating func bytes(_ n: Int) throws(TranslationFileError) -> [UInt8] {
    guard n >= 0, n <= end - at else {
      throw TranslationFileError("translation file is truncated inside a record (offset \(at))")
    }
    defer { at += n }
    return Array(data[at..<(at + n)])
  }

  mutating func u8() throws(TranslationFileError) -> UInt8 { try bytes(1)[0] }
  mutating func u16() throws(TranslationFileError) -> UInt16 { try number(2) }
  mutating func u32() throws(TranslationFileError) -> UInt32 { try number(4) }
  mutating func u64() throws(TranslationFileError) -> UInt64 { try number(8) }

  private mutating func number<T: FixedWidthInteger>(_ n: Int) throws(TranslationFileError) -> T {
    let b = try bytes(n)
    var v: T = 0
    for k in 0..<n { v |= T(b[k]) << (8 * k) }
    return v
  }
}

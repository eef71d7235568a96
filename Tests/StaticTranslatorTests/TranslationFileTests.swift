import Testing

@testable import StaticTranslator
@testable import Translator

/// The translation file format: round trip, and refusal of anything truncated, corrupted, of
/// another version or build, or with a record pointing outside its code.
struct TranslationFileTests {
  /// A real file: the test guest translated.
  static func sample() throws -> TranslationFile {
    try StaticTestGuest.translation(of: StaticTestGuest.selfModifyingComputedJump).file
  }

  /// Re-seals `data` with a correct checksum (to get past it to the checks behind it).
  static func resealed(_ data: [UInt8]) -> [UInt8] {
    let body = Array(data[0..<(data.count - TranslationFile.checksumSize)])
    return body + SHA256.hash(body)
  }

  static func error(_ data: [UInt8], fingerprint: UInt64? = nil) -> String? {
    do {
      _ = try TranslationFile(parsing: data, expectedFingerprint: fingerprint)
      return nil
    } catch { return error.description }
  }

  @Test func sha256MatchesTheStandardVectors() {
    func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
    #expect(hex(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
    #expect(hex(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
  }

  @Test func roundTripsAndChecksTheBuild() throws {
    let file = try Self.sample()
    #expect(!file.blocks.isEmpty)
    let data = file.serialized()
    let read = try TranslationFile(parsing: data, expectedFingerprint: StaticTranslationSet.currentFingerprint)
    #expect(read == file)
    #expect(file.fingerprint == StaticTranslationSet.currentFingerprint)
    #expect(Self.error(data, fingerprint: file.fingerprint ^ 1)?.contains("another build of the translator") == true)
  }

  @Test func refusesTruncatedFiles() throws {
    let data = try Self.sample().serialized()
    for length in [0, 5, 20, TranslationFile.headerSize, data.count / 2, data.count - 1] {
      let e = Self.error(Array(data[0..<length]))
      #expect(e != nil, "length \(length)")
      #expect(e?.contains("truncated") == true || e?.contains("magic") == true, "length \(length): \(e ?? "")")
    }
    #expect(Self.error(data + [0])?.contains("longer than its header says") == true)
    // A body length near 2^64 in the header (bytes 32-39) is an error, not an overflow.
    var huge = data
    for i in 32..<40 { huge[i] = 0xFF }
    #expect(Self.error(huge)?.contains("corrupted (its header gives a body of") == true)
  }

  @Test func refusesCorruptedFiles() throws {
    let data = try Self.sample().serialized()
    for offset in [TranslationFile.headerSize, data.count / 2, data.count - 40, data.count - 1] {
      var bad = data
      bad[offset] ^= 0x40
      #expect(Self.error(bad)?.contains("checksum mismatch") == true, "byte \(offset)")
    }
    var magic = data
    magic[0] = 0
    #expect(Self.error(magic)?.contains("not a translation file") == true)
  }

  @Test func refusesOtherVersions() throws {
    var data = try Self.sample().serialized()
    // The version's low byte: the previous format (before register-live links) and a later one.
    for other: UInt8 in [2, 4] {
      data[8] = other
      #expect(Self.error(Self.resealed(data))?.contains("format version \(other)") == true)
    }
  }

  @Test func refusesRecordsOutsideTheirCode() throws {
    var file = try Self.sample()
    file.blocks[0].code.relocations.append(
      .init(offset: file.blocks[0].code.code.count - 2, symbol: .context, addend: 0))
    #expect(Self.error(file.serialized())?.contains("block record 0 is malformed") == true)
    var unlisted = try Self.sample()
    unlisted.pages.removeAll()
    #expect(Self.error(unlisted.serialized())?.contains("its page is not listed") == true)
  }
}

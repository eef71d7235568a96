import Foundation
import Testing

/// `trivisor translate` and `trivisor run --engine sbt --translations FILE` as a user runs them:
/// the same serial output and exit status as interp and dbt, and bad translation files refused
/// with one line and status 2, never run.
@Suite(.enabled(if: TrivisorBinary.path != nil, "the trivisor executable was not built next to the tests"))
struct StaticTranslationCLITests {
  /// The static translator tests' guest (Tests/StaticTranslatorTests/StaticTranslatorGuests.swift):
  /// a loop of calls, two self-modifying stores and a computed jump; prints "AZC\n", exits with
  /// status 121 through isa-debug-exit.
  static let guest: [UInt8] = [
    0xBA, 0xF8, 0x03, 0x00, 0x00, 0xB0, 0x41, 0xEE, 0xB9, 0xE8, 0x03, 0x00, 0x00, 0x31, 0xDB, 0xE8, 0x37, 0x00, 0x00,
    0x00, 0xFF, 0xC9, 0x75, 0xF7, 0xC6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x5A, 0xB0, 0x59, 0xEE, 0xC6, 0x05, 0x24, 0x00,
    0x00, 0x00, 0x04, 0xE8, 0x1D, 0x00, 0x00, 0x00, 0x48, 0x8D, 0x05, 0x06, 0x00, 0x00, 0x00, 0xFF, 0xE0, 0xFF, 0xFF,
    0xFF, 0xFF, 0xB0, 0x43, 0xEE, 0xB0, 0x0A, 0xEE, 0x89, 0xD8, 0x66, 0xBA, 0xF4, 0x00, 0xEE, 0xF4, 0xEB, 0xFD, 0x83,
    0xC3, 0x03, 0xC3,
  ]

  /// A scratch directory with the guest in it, removed afterwards.
  final class Scratch {
    let directory = NSTemporaryDirectory() + "trivisor-sbt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    var guest: String { directory + "/guest.bin" }
    var translations: String { directory + "/guest.tbt" }
    init() throws {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      try Data(StaticTranslationCLITests.guest).write(to: URL(fileURLWithPath: guest))
    }
    deinit { try? FileManager.default.removeItem(atPath: directory) }
  }

  static let flat = ["--flat-address", "0x10000"]

  /// Runs the guest on `engine` (with more arguments), its serial output to a file: (status, output).
  static func run(_ scratch: Scratch, engine: String, _ more: [String] = []) throws -> (Int32, String, String) {
    let serial = scratch.directory + "/serial-\(engine)-\(more.count).txt"
    let r = try TrivisorBinary.run(
      ["run", scratch.guest] + flat + ["--engine", engine, "--serial", "file:" + serial] + more)
    let output = (try? String(contentsOfFile: serial, encoding: .utf8)) ?? ""
    return (r.status, output, r.stderr)
  }

  @Test func sbtRunsTheTranslatedGuestLikeInterpAndDBT() throws {
    let scratch = try Scratch()
    let t = try TrivisorBinary.run(["translate", scratch.guest] + Self.flat + ["-o", scratch.translations])
    #expect(t.status == 0, "\(t.stderr)")
    for engine in ["interp", "dbt"] {
      let (status, output, _) = try Self.run(scratch, engine: engine)
      #expect(status == 121 && output == "AZC\n", "\(engine): \(status) \(output)")
    }
    let (status, output, stderr) = try Self.run(
      scratch, engine: "sbt", ["--translations", scratch.translations, "--stats"])
    #expect(status == 121 && output == "AZC\n", "sbt: \(status) \(output)")
    #expect(stderr.contains("lookups answered from the translation file"))
  }

  @Test func badTranslationFilesAreRefusedWithOneLine() throws {
    let scratch = try Scratch()
    #expect(
      try TrivisorBinary.run(["translate", scratch.guest] + Self.flat + ["-o", scratch.translations]).status == 0)
    let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: scratch.translations)))
    var corrupted = good
    corrupted[good.count / 2] ^= 1
    let cases: [(String, [UInt8], String)] = [
      ("truncated", Array(good[0..<(good.count - 10)]), "truncated"),
      ("corrupted", corrupted, "checksum mismatch"),
      ("garbage", Array("not a translation".utf8), "not a translation file"),
    ]
    for (name, bytes, message) in cases {
      let path = scratch.directory + "/\(name).tbt"
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      let (status, output, stderr) = try Self.run(scratch, engine: "sbt", ["--translations", path])
      #expect(status == 2, "\(name): \(status)")
      #expect(output.isEmpty, "\(name): the guest ran")
      #expect(stderr.split(separator: "\n").count == 1 && stderr.contains(message), "\(name): \(stderr)")
    }
    let (status, _, stderr) = try Self.run(scratch, engine: "dbt", ["--translations", scratch.translations])
    #expect(status == 2 && stderr.contains("--translations needs --engine sbt"))
  }
}

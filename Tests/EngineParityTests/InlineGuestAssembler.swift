import Foundation

/// Assembles a test's own guest (GNU-as source text, flat, linked at 0x10000) with the Swift
/// toolchain's clang, ld.lld and llvm-objcopy (`CorpusAssembler`'s tools), once per source per
/// test run. Tests using it declare `.requires(.guestToolchain)`.
enum InlineGuestAssembler {
  private static let cache = BinaryCache()

  /// The flat binary of `source`, whose first byte lands at 0x10000.
  static func assemble(_ source: String) throws -> [UInt8] {
    if let reason = CorpusAssembler.unavailableReason { throw AssemblyError(message: reason) }
    return try cache.value(for: source) { try build(source) }
  }

  private static func build(_ source: String) throws -> [UInt8] {
    let work = FileManager.default.temporaryDirectory
      .appendingPathComponent("trivisor-inline-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: work) }
    let file = work.appendingPathComponent("guest.S")
    try source.write(to: file, atomically: true, encoding: .utf8)
    return try CorpusAssembler.flatBinary(of: file.path, in: work, name: "guest")
  }
}

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
    let object = work.appendingPathComponent("guest.o").path
    let elf = work.appendingPathComponent("guest.elf").path
    let flat = work.appendingPathComponent("guest.bin").path
    try run("clang", ["-target", "x86_64-unknown-none-elf", "-c", file.path, "-o", object])
    try run(
      "ld.lld",
      ["-static", "-nostdlib", "--image-base=0x10000", "-Ttext=0x10000", "-e", "_start", object, "-o", elf])
    try run("llvm-objcopy", ["-O", "binary", elf, flat])
    return Array(try Data(contentsOf: URL(fileURLWithPath: flat)))
  }

  private static func run(_ tool: String, _ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "\(CorpusAssembler.toolDirectory)/\(tool)")
    process.arguments = arguments
    let errors = Pipe()
    process.standardError = errors
    try process.run()
    let message = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw AssemblyError(
        message: "\(tool) failed (\(process.terminationStatus)): \(String(decoding: message, as: UTF8.self))")
    }
  }
}

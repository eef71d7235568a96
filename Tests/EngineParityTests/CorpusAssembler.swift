import Foundation

/// Assembles the corpus guests in guests/corpus (GNU-as `.S`, flat 64-bit at 0x10000) with the
/// Swift toolchain's clang, ld.lld and llvm-objcopy, once per guest per test run.
enum CorpusAssembler {
  /// Why guests cannot be built here (missing tools), or nil when they can.
  static let unavailableReason: String? = {
    let missing = tools.filter { !FileManager.default.isExecutableFile(atPath: $0) }
    return missing.isEmpty ? nil : "missing toolchain programs: \(missing.joined(separator: ", "))"
  }()

  static let toolDirectory = "/opt/swift/usr/bin"
  static var tools: [String] { ["clang", "ld.lld", "llvm-objcopy"].map { "\(toolDirectory)/\($0)" } }

  /// guests/corpus in this checkout.
  static let corpusDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("guests/corpus")

  private static let cache = BinaryCache()

  /// The flat binary of guests/corpus/`name`.S.
  static func binary(_ name: String) throws -> [UInt8] {
    if let reason = unavailableReason { throw AssemblyError(message: reason) }
    return try cache.value(for: name) { try assemble(name) }
  }

  private static func assemble(_ name: String) throws -> [UInt8] {
    let work = FileManager.default.temporaryDirectory
      .appendingPathComponent("trivisor-corpus-\(getpid())-\(name)")
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: work) }
    return try flatBinary(of: corpusDirectory.appendingPathComponent("\(name).S").path, in: work, name: name)
  }

  /// Assembles and links the GNU-as source at `source` into a flat binary whose first byte lands at
  /// 0x10000, with intermediate files in `work` (the one pipeline for corpus and inline guests).
  static func flatBinary(of source: String, in work: URL, name: String) throws -> [UInt8] {
    let object = work.appendingPathComponent("\(name).o").path
    let elf = work.appendingPathComponent("\(name).elf").path
    let flat = work.appendingPathComponent("\(name).bin").path
    try run("clang", ["-target", "x86_64-unknown-none-elf", "-c", source, "-o", object])
    try run(
      "ld.lld",
      ["-static", "-nostdlib", "--image-base=0x10000", "-Ttext=0x10000", "-e", "_start", object, "-o", elf])
    try run("llvm-objcopy", ["-O", "binary", elf, flat])
    return Array(try Data(contentsOf: URL(fileURLWithPath: flat)))
  }

  private static func run(_ tool: String, _ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "\(toolDirectory)/\(tool)")
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

/// A corpus guest that did not assemble.
struct AssemblyError: Error, CustomStringConvertible {
  let message: String
  var description: String { message }
}

/// Assembled binaries by guest name, shared by the tests of one run.
final class BinaryCache: @unchecked Sendable {
  private let lock = NSLock()
  private var binaries: [String: [UInt8]] = [:]

  func value(for name: String, make: () throws -> [UInt8]) throws -> [UInt8] {
    lock.lock()
    defer { lock.unlock() }
    if let cached = binaries[name] { return cached }
    let made = try make()
    binaries[name] = made
    return made
  }
}

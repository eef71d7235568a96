import Foundation
import Testing

/// Every public declaration of the library products X86 and VMM carries a `///` comment (above
/// its attributes, if any), so the API documents itself for embedders.
@Suite struct PublicAPIDocumentationTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  /// `file:line: declaration` of each public declaration without a doc comment under `module`.
  static func undocumented(in module: String) throws -> [String] {
    let directory = root.appendingPathComponent("Sources/\(module)")
    var missing: [String] = []
    let files = FileManager.default.enumerator(atPath: directory.path)?.compactMap { $0 as? String } ?? []
    for file in files where file.hasSuffix(".swift") {
      let lines = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
        .split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
      for (i, line) in lines.enumerated() {
        var words = line.split(separator: " ").map(String.init)
        while let first = words.first, first.hasPrefix("@") { words.removeFirst() }
        guard let first = words.first, first == "public" || first == "open", words.count > 1, words[1] != "extension",
          words[1] != "import"
        else { continue }
        var j = i - 1
        while j >= 0 && lines[j].hasPrefix("@") { j -= 1 }
        if j < 0 || !lines[j].hasPrefix("///") { missing.append("\(module)/\(file):\(i + 1): \(line)") }
      }
    }
    return missing
  }

  @Test(arguments: ["X86", "VMM", "TrapAndEmulate", "TrapEngine"])
  func everyPublicDeclarationIsDocumented(_ module: String) throws {
    let missing = try Self.undocumented(in: module)
    #expect(missing.isEmpty, "\(missing.count) undocumented:\n\(missing.prefix(20).joined(separator: "\n"))")
  }
}

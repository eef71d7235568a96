import Foundation

/// What `metadata.json` says about one opcode (or one ModRM.reg form of a group opcode).
public struct OpcodeInfo: Sendable, Equatable {
  /// `normal`, `prefix`, `alias`, `undocumented`, `undefined`, `fpu`, `extension` ...
  public var status: String
  /// AND mask for FLAGS: bits the chip leaves undefined are 0. 0xFFFF when none are.
  public var flagsMask: UInt16
}

/// A SingleStep folder's `metadata.json` and `revocation_list.txt`.
public struct SingleStepMetadata: Sendable {
  /// Keyed by file stem: "00", "F6.3" (opcode "F6", reg 3) or "0F00.2".
  public var opcodes: [String: OpcodeInfo] = [:]
  /// Hashes of tests known to be bad.
  public var revoked: Set<String> = []

  public init() {}

  /// Loads the metadata of a test folder; a missing file leaves the defaults.
  public init(directory: String) throws(SingleStepDataError) {
    let metadataPath = directory + "/metadata.json"
    if let data = FileManager.default.contents(atPath: metadataPath) {
      let parsed: Any
      do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
        throw SingleStepDataError("\(metadataPath): invalid JSON")
      }
      guard let root = parsed as? [String: Any], let table = root["opcodes"] as? [String: Any] else {
        throw SingleStepDataError("\(metadataPath): no 'opcodes' object")
      }
      for (key, value) in table {
        guard let entry = value as? [String: Any] else { continue }
        if let info = Self.info(entry) { opcodes[key.uppercased()] = info }
        if let groups = entry["reg"] as? [String: Any] {
          for (reg, form) in groups {
            if let form = form as? [String: Any], let info = Self.info(form) {
              opcodes[key.uppercased() + "." + reg] = info
            }
          }
        }
      }
    }
    if let data = FileManager.default.contents(atPath: directory + "/revocation_list.txt") {
      for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
        let text = line.trimmingCharacters(in: .whitespaces)
        if text.isEmpty || text.hasPrefix("#") { continue }
        revoked.insert(text.lowercased())
      }
    }
  }

  /// The entry for a file stem, falling back from "F6.3" to "F6".
  public func info(forStem stem: String) -> OpcodeInfo? {
    if let exact = opcodes[stem.uppercased()] { return exact }
    if let dot = stem.firstIndex(of: ".") { return opcodes[String(stem[..<dot]).uppercased()] }
    return nil
  }

  private static func info(_ entry: [String: Any]) -> OpcodeInfo? {
    guard let status = entry["status"] as? String else { return nil }
    let mask = (entry["flags-mask"] as? NSNumber)?.intValue ?? 0xFFFF
    return OpcodeInfo(status: status, flagsMask: UInt16(truncatingIfNeeded: mask))
  }
}

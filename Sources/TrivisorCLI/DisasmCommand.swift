import ArgumentParser
import Foundation
import Oracles
import VMM
import X86

/// `trivisor disasm`: Intel-syntax disassembly of a file or of hex bytes.
struct DisasmCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "disasm",
    abstract: "Disassemble x86 machine code in Intel syntax."
  )

  @Argument(help: "A file of raw machine code.")
  var file: String?

  @Option(name: .long, help: "Bytes in hex, e.g. \"48 89 d8\".")
  var hex: String?

  @Option(name: .long, help: "Code mode: 16, 32 or 64.")
  var mode: Int = 64

  @Option(name: .long, help: "Address of the first byte (decimal or 0x hex).")
  var address: String = "0"

  @Option(
    name: .customLong("compare-objdump"),
    help:
      "Instead: compare every instruction of this ELF file's .text with llvm-objdump (length and text); exits 1 on any mismatch."
  )
  var compareObjdump: String?

  func run() throws {
    if let path = compareObjdump {
      try compare(path)
      return
    }
    let codeMode: CodeMode
    switch mode {
    case 16: codeMode = .bits16
    case 32: codeMode = .bits32
    case 64: codeMode = .bits64
    default: throw ValidationError("--mode must be 16, 32 or 64, not \(mode)")
    }
    guard let start = DisasmCommand.parseNumber(address) else {
      throw ValidationError("--address: '\(address)' is not a number")
    }
    let bytes: [UInt8]
    switch (file, hex) {
    case (let path?, nil):
      do throws(HostFileError) {
        bytes = try HostFile.readRegular(path, what: "file")
      } catch {
        throw ValidationError(error.description)
      }
    case (nil, let text?):
      bytes = try DisasmCommand.parseHex(text)
    default:
      throw ValidationError("give either a FILE or --hex BYTES")
    }
    for line in DisasmCommand.listing(bytes, mode: codeMode, address: start) { print(line) }
  }

  /// `--compare-objdump FILE`: the whole `.text` section against llvm-objdump.
  func compare(_ path: String) throws {
    do throws(HostFileError) {
      _ = try HostFile.readRegular(path, what: "ELF file")
    } catch {
      throw ValidationError(error.description)
    }
    guard let runner = ObjdumpRunner.locate() else {
      throw ValidationError("llvm-objdump and clang not found (looked in /opt/swift/usr/bin and PATH)")
    }
    let report: ObjdumpReport
    do throws(ObjdumpError) {
      report = try ObjdumpComparison.compareBinary(runner: runner, path: path, limit: Int.max)
    } catch {
      throw ValidationError(error.description)
    }
    print(report.summary(label: path))
    var byKind: [ObjdumpDisagreement: Int] = [:]
    for m in report.mismatches { byKind[m.kind, default: 0] += 1 }
    for (kind, count) in byKind.sorted(by: { $0.value > $1.value }) { print("  \(kind.rawValue): \(count)") }
    for m in report.mismatches.prefix(20) { print("  \(m)") }
    if report.mismatchCount > 0 { throw ExitCode(1) }
  }

  /// One line per instruction: address, bytes, text; `(bad)` for an undefined byte.
  static func listing(_ bytes: [UInt8], mode: CodeMode, address: UInt64) -> [String] {
    var lines: [String] = []
    var offset = 0
    while offset < bytes.count {
      let slice = Array(bytes[offset..<min(bytes.count, offset + 15)])
      let here = address &+ UInt64(offset)
      let length: Int
      let text: String
      if let (n, t) = Disassembler.disassemble(slice, mode: mode, address: here) {
        length = n
        text = t
      } else {
        length = 1
        text = "(bad)"
      }
      let hexBytes = slice.prefix(length).map { String(format: "%02x", $0) }.joined(separator: " ")
      let pad = String(repeating: " ", count: max(2, 31 - hexBytes.count))
      lines.append(String(format: "%8llx:", here) + " " + hexBytes + pad + text)
      offset += length
    }
    return lines
  }

  static func parseNumber(_ s: String) -> UInt64? {
    if s.lowercased().hasPrefix("0x") { return UInt64(s.dropFirst(2), radix: 16) }
    return UInt64(s)
  }

  static func parseHex(_ text: String) throws -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace && $0 != "," }
    guard digits.count % 2 == 0 else { throw ValidationError("--hex: odd number of hex digits") }
    var out: [UInt8] = []
    var i = digits.startIndex
    while i < digits.endIndex {
      let j = digits.index(i, offsetBy: 2)
      guard let b = UInt8(digits[i..<j], radix: 16) else {
        throw ValidationError("--hex: '\(digits[i..<j])' is not a hex byte")
      }
      out.append(b)
      i = j
    }
    if out.isEmpty { throw ValidationError("--hex: no bytes given") }
    return out
  }
}

import Foundation
import X86

/// An error driving clang or llvm-objdump.
public struct ObjdumpError: Error, CustomStringConvertible {
  public let description: String
}

/// One instruction as llvm-objdump printed it.
public struct ObjdumpLine: Sendable {
  public var bytes: [UInt8]
  /// The text after the bytes ("add\teax, ecx", "<unknown>").
  public var text: String
  /// The address llvm-objdump printed it at.
  public var address: UInt64 = 0
}

/// Runs the toolchain's clang and llvm-objdump.
public struct ObjdumpRunner: Sendable {
  public let objdump: String
  public let clang: String

  /// Finds the tools in /opt/swift/usr/bin (or next to `swift` on PATH); nil when absent.
  public static func locate() -> ObjdumpRunner? {
    var directories = ["/opt/swift/usr/bin"]
    if let path = ProcessInfo.processInfo.environment["PATH"] {
      directories += path.split(separator: ":").map(String.init)
    }
    let fm = FileManager.default
    for d in directories
    where fm.isExecutableFile(atPath: d + "/llvm-objdump") && fm.isExecutableFile(atPath: d + "/clang") {
      return ObjdumpRunner(objdump: d + "/llvm-objdump", clang: d + "/clang")
    }
    return nil
  }

  /// Runs a program, returning its standard output; throws with its standard error on failure.
  static func run(_ executable: String, _ arguments: [String]) throws(ObjdumpError) -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    do { try process.run() } catch { throw ObjdumpError(description: "cannot run \(executable): \(error)") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    if process.terminationStatus != 0 {
      let message = String(decoding: errors, as: UTF8.self).split(separator: "\n").first ?? ""
      throw ObjdumpError(description: "\(executable) failed: \(message)")
    }
    return String(decoding: data, as: UTF8.self)
  }

  /// Assembles each byte sequence under its own symbol and disassembles the object, so objdump
  /// restarts decoding at each one. Returns, per sequence, the lines objdump printed for it.
  public func disassembleSamples(_ samples: [[UInt8]], mode: CodeMode) throws(ObjdumpError) -> [[ObjdumpLine]] {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "trivisor-objdump-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
      throw ObjdumpError(description: "cannot create \(directory.path)")
    }
    defer { try? FileManager.default.removeItem(at: directory) }
    var source = ".text\n"
    for (i, s) in samples.enumerated() {
      source += "s\(i): .byte " + s.map { "0x" + String($0, radix: 16) }.joined(separator: ",") + "\n"
    }
    let asmPath = directory.appendingPathComponent("samples.s").path
    let objPath = directory.appendingPathComponent("samples.o").path
    do { try source.write(toFile: asmPath, atomically: false, encoding: .utf8) } catch {
      throw ObjdumpError(description: "cannot write \(asmPath)")
    }
    let target = mode == .bits64 ? "x86_64-linux-gnu" : "i386-linux-gnu"
    _ = try Self.run(clang, ["-c", "-target", target, asmPath, "-o", objPath])
    var arguments = ["-d", "--x86-asm-syntax=intel", objPath]
    if mode == .bits16 { arguments.insert("--triple=i386-unknown-linux-code16", at: 0) }
    let output = try Self.run(objdump, arguments)
    var result = [[ObjdumpLine]](repeating: [], count: samples.count)
    var current: Int?
    for line in output.split(separator: "\n", omittingEmptySubsequences: true) {
      if line.hasSuffix(">:"), let open = line.firstIndex(of: "<") {
        let name = line[line.index(after: open)..<line.index(line.endIndex, offsetBy: -2)]
        current = name.hasPrefix("s") ? Int(name.dropFirst()) : nil
        continue
      }
      guard let current, let parsed = Self.parseInstructionLine(line) else { continue }
      result[current].append(parsed)
    }
    return result
  }

  /// Compiles C source with the toolchain's clang into an object file in `directory`.
  public func compileC(_ source: String, arguments: [String], directory: String, name: String) throws(ObjdumpError)
    -> String
  {
    let sourcePath = directory + "/" + name + ".c"
    let objectPath = directory + "/" + name + ".o"
    do { try source.write(toFile: sourcePath, atomically: false, encoding: .utf8) } catch {
      throw ObjdumpError(description: "cannot write \(sourcePath)")
    }
    _ = try Self.run(clang, ["-c"] + arguments + [sourcePath, "-o", objectPath])
    return objectPath
  }

  /// Disassembles a binary's code sections; returns every instruction line.
  public func disassembleBinary(_ path: String) throws(ObjdumpError) -> [ObjdumpLine] {
    Self.parseListing(try Self.run(objdump, ["-d", "--x86-asm-syntax=intel", path]))
  }

  /// Disassembles an ELF file's `.text` section as raw code at address 0: the section is copied
  /// out and wrapped in an object of its own, because llvm-objdump prints shared libraries such as
  /// libc only as "..." between their symbols.
  public func disassembleTextSection(_ path: String, mode: CodeMode = .bits64) throws(ObjdumpError) -> (
    code: [UInt8], lines: [ObjdumpLine]
  ) {
    let objcopy = URL(fileURLWithPath: objdump).deletingLastPathComponent().appendingPathComponent("llvm-objcopy").path
    guard FileManager.default.isExecutableFile(atPath: objcopy) else {
      throw ObjdumpError(description: "llvm-objcopy not found next to \(objdump)")
    }
    // One directory per call: tests run this in parallel within one process.
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "trivisor-objdump-\(getpid())-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let raw = directory.appendingPathComponent("text.bin").path
    let wrapped = directory.appendingPathComponent("text.o").path
    _ = try Self.run(objcopy, ["-O", "binary", "--only-section=.text", path, raw])
    _ = try Self.run(
      objcopy,
      [
        "-I", "binary", "-O", mode == .bits64 ? "elf64-x86-64" : "elf32-i386", "--rename-section=.data=.text,code", raw,
        wrapped,
      ])
    guard let data = FileManager.default.contents(atPath: raw), !data.isEmpty else {
      throw ObjdumpError(description: "\(path) has no .text section")
    }
    return ([UInt8](data), try disassembleBinary(wrapped))
  }

  /// The instruction lines of an llvm-objdump listing. Bytes of a long instruction that wrap onto
  /// a line of their own are joined to it, and a prefix printed as an instruction of its own
  /// ("lock", then the instruction at the next address) is joined to what follows, as one
  /// instruction is.
  static func parseListing(_ output: String) -> [ObjdumpLine] {
    var lines: [ObjdumpLine] = []
    var pendingPrefix: ObjdumpLine?
    for raw in output.split(separator: "\n", omittingEmptySubsequences: true) {
      if let continuation = parseContinuationLine(raw), var last = lines.popLast() {
        last.bytes += continuation
        lines.append(last)
        continue
      }
      guard var line = parseInstructionLine(raw) else { continue }
      if let prefix = pendingPrefix {
        pendingPrefix = nil
        if prefix.address &+ 1 == line.address {
          line = ObjdumpLine(
            bytes: prefix.bytes + line.bytes, text: prefix.text + " " + line.text, address: prefix.address)
        } else {
          lines.append(prefix)
        }
      }
      if ["lock", "rep", "repne"].contains(line.text) && line.bytes.count == 1 {
        pendingPrefix = line
        continue
      }
      lines.append(line)
    }
    if let pendingPrefix { lines.append(pendingPrefix) }
    return lines
  }

  /// The bytes of a line that holds only bytes (the rest of the instruction above).
  static func parseContinuationLine(_ line: Substring) -> [UInt8]? {
    guard let colon = line.firstIndex(of: ":"), !line.contains("\t") else { return nil }
    let address = line[..<colon].trimmingCharacters(in: .whitespaces)
    guard !address.isEmpty, address.allSatisfy(\.isHexDigit) else { return nil }
    var bytes: [UInt8] = []
    for word in line[line.index(after: colon)...].split(separator: " ") {
      guard word.count == 2, let b = UInt8(word, radix: 16) else { return nil }
      bytes.append(b)
    }
    return bytes.isEmpty ? nil : bytes
  }

  /// Parses "   a: 01 c8        \tadd\teax, ecx".
  static func parseInstructionLine(_ line: Substring) -> ObjdumpLine? {
    guard let colon = line.firstIndex(of: ":"), let tab = line.firstIndex(of: "\t") else { return nil }
    let address = line[..<colon].trimmingCharacters(in: .whitespaces)
    guard !address.isEmpty, address.allSatisfy(\.isHexDigit), colon < tab else { return nil }
    let byteText = line[line.index(after: colon)..<tab]
    var bytes: [UInt8] = []
    for word in byteText.split(separator: " ") {
      guard word.count == 2, let b = UInt8(word, radix: 16) else { return nil }
      bytes.append(b)
    }
    if bytes.isEmpty { return nil }
    return ObjdumpLine(
      bytes: bytes, text: String(line[line.index(after: tab)...]).trimmingCharacters(in: .whitespaces),
      address: UInt64(address, radix: 16) ?? 0)
  }
}

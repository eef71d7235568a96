import Foundation
import TestHostSupport
import Testing
import X86

@testable import Oracles

/// Every x87 encoding (D8-DF: all 512 register forms, the eight memory forms of each escape byte
/// with several addressing modes, REX.W, REX.B and operand-size prefixes) and WAIT: the
/// disassembler must print each as llvm-objdump does. The XSAVE instructions ride along.
@Test(.requires(.llvmObjdump)) func decoderAgreesWithObjdumpOnX87Forms() throws {
  let runner = try #require(ObjdumpRunner.locate())
  var encodings: [[UInt8]] = [[0x9B], [0x9B, 0xDB, 0xE3], [0x9B, 0xD9, 0x38]]
  // The XSAVE family next to them: XGETBV, XSETBV, XSAVE/XRSTOR/XSAVEOPT and their 64-bit forms.
  encodings += [[0x0F, 0x01, 0xD0], [0x0F, 0x01, 0xD1]]
  for reg in UInt8(4)...6 { encodings += [[0x0F, 0xAE, reg << 3], [0x48, 0x0F, 0xAE, reg << 3 | 1]] }
  for escape in UInt8(0xD8)...0xDF {
    for modrm in UInt8(0xC0)...0xFF { encodings.append([escape, modrm]) }
    for reg in UInt8(0)..<8 {
      encodings.append([escape, reg << 3])  // [rax]
      encodings.append([escape, 0x40 | reg << 3 | 1, 0x10])  // [rcx + 0x10]
      encodings.append([escape, 0x80 | reg << 3 | 4, 0x24, 0x00, 0x01, 0x00, 0x00])  // [rsp + 0x100]
      encodings.append([escape, reg << 3 | 5, 0x00, 0x10, 0x00, 0x00])  // [rip + 0x1000]
      encodings.append([0x48, escape, reg << 3 | 3])  // REX.W [rbx]
      encodings.append([0x41, escape, 0x40 | reg << 3 | 0, 0xF8])  // [r8 - 8]
      encodings.append([0x66, escape, reg << 3 | 6])  // operand-size prefix [rsi]
    }
  }
  let bytes = encodings.map { ".byte " + $0.map { String(format: "0x%02x", $0) }.joined(separator: ",") }
  let source = "__asm__(\"" + bytes.joined(separator: "\\n") + "\\n\");\n"
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-x87-\(getpid())").path
  try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: directory) }
  let object = try runner.compileC(
    source, arguments: ["-target", "x86_64-linux-gnu", "-ffreestanding"], directory: directory, name: "x87")
  let report = try ObjdumpComparison.compareBinary(runner: runner, path: object, limit: 10_000)
  print(report.summary(label: "objdump x87 forms"))
  for m in report.mismatches.prefix(40) { print("  \(m)") }
  #expect(report.compared >= 900)
  #expect(report.mismatchCount == 0)
}

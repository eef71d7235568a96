import Testing
import X86

@testable import Oracles

@Test func decoderAgreesWithObjdumpOnRandomBytes() throws {
  guard let runner = ObjdumpRunner.locate() else {
    print("SKIP: llvm-objdump/clang not found in /opt/swift/usr/bin or PATH")
    return
  }
  for (mode, label, count) in [
    (CodeMode.bits64, "64-bit", 20000), (.bits32, "32-bit", 5000), (.bits16, "16-bit", 5000),
  ] {
    let report = try ObjdumpComparison.compareRandom(runner: runner, count: count, mode: mode, seed: 7)
    print(report.summary(label: "objdump random \(label)"))
    for m in report.mismatches.prefix(15) { print("  \(m)") }
    #expect(report.mismatchCount == 0, "\(label): \(report.mismatchCount) mismatches with llvm-objdump")
  }
}

@Test func decoderAgreesWithObjdumpOnCompiledCode() throws {
  guard let runner = ObjdumpRunner.locate() else {
    print("SKIP: llvm-objdump/clang not found in /opt/swift/usr/bin or PATH")
    return
  }
  let binary = "/opt/swift/usr/bin/swift-demangle"
  let report = try ObjdumpComparison.compareBinary(runner: runner, path: binary, limit: 20000)
  print(report.summary(label: "objdump \(binary)"))
  for m in report.mismatches.prefix(15) { print("  \(m)") }
  #expect(report.mismatchCount == 0)
}

import Foundation
import TestHostSupport
import Testing
import X86

@testable import Oracles

@Test(.requires(.llvmObjdump)) func decoderAgreesWithObjdumpOnRandomBytes() throws {
  let runner = try #require(ObjdumpRunner.locate())
  for (mode, label, count) in [
    (CodeMode.bits64, "64-bit", 20000), (.bits32, "32-bit", 5000), (.bits16, "16-bit", 5000),
  ] {
    let report = try ObjdumpComparison.compareRandom(runner: runner, count: count, mode: mode, seed: 7)
    print(report.summary(label: "objdump random \(label)"))
    for m in report.mismatches.prefix(15) { print("  \(m)") }
    #expect(report.mismatchCount == 0, "\(label): \(report.mismatchCount) mismatches with llvm-objdump")
  }
}

/// Real binaries' `.text`: the toolchain's swift-demangle, /bin/ls and libc (AVX2 and AVX-512
/// string routines), 20,000 instructions spread over each, length and whole text. The full
/// sections run with `trivisor disasm --compare-objdump FILE` (docs/fidelity/objdump.md).
@Test(
  .requires(.llvmObjdump),
  arguments: [
    "/opt/swift/usr/bin/swift-demangle", "/bin/ls", "/usr/lib/x86_64-linux-gnu/libc.so.6",
  ])
func decoderAgreesWithObjdumpOnCompiledCode(_ binary: String) throws {
  try #require(FileManager.default.fileExists(atPath: binary), "\(binary) is not on this machine")
  let runner = try #require(ObjdumpRunner.locate())
  let report = try ObjdumpComparison.compareBinary(runner: runner, path: binary, limit: 20000)
  print(report.summary(label: "objdump \(binary)"))
  for m in report.mismatches.prefix(15) { print("  \(m)") }
  #expect(report.compared > 1000)
  #expect(report.mismatchCount == 0)
}

/// C compiled at test time for 32-bit and 64-bit x86 (integer, string, floating-point and
/// switch-heavy code), every instruction compared in its mode.
@Test(.requires(.llvmObjdump)) func decoderAgreesWithObjdumpOnFreshlyCompiledC() throws {
  let runner = try #require(ObjdumpRunner.locate())
  // Freestanding (no libc headers: the toolchain has none for i386).
  let source = """
    typedef unsigned long long u64;
    u64 mix(u64 a, u64 b, int n) {
      for (int i = 0; i < n; i++) { a = (a << 7 | a >> 57) ^ (b * 0x9E3779B97F4A7C15ull); b += a / (b | 1); }
      return a % 1000003 + __builtin_popcountll(b) + __builtin_ctzll(a | 1);
    }
    int classify(int c) {
      switch (c) { case 0: return 7; case 1: return 3; case 2: return 9; case 3: return 1; case 4: return 12;
        case 5: return 4; case 6: return 8; default: return c < 0 ? -c : c * 3; }
    }
    double blend(const double *x, const float *y, int n) {
      double s = 0; for (int i = 0; i < n; i++) s += x[i] * (double)y[i] - (x[i] > 1.5 ? 2.0 : 0.5); return s;
    }
    unsigned long copy(char *d, const char *s, unsigned long n) {
      __builtin_memmove(d, s, n); return __builtin_strlen(d) + (unsigned long)__builtin_memcmp(d, s, n);
    }
    short narrow(int v) { return (short)((short)(v >> 3) * (signed char)v); }
    """
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-cc-\(getpid())").path
  try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: directory) }
  for (label, arguments, mode) in [
    ("64-bit -O2", ["-target", "x86_64-linux-gnu", "-ffreestanding", "-O2"], CodeMode.bits64),
    ("64-bit -O0", ["-target", "x86_64-linux-gnu", "-ffreestanding", "-O0"], .bits64),
    ("32-bit -O2", ["-target", "i386-linux-gnu", "-ffreestanding", "-O2"], .bits32),
    ("32-bit -O0", ["-target", "i386-linux-gnu", "-ffreestanding", "-O0"], .bits32),
  ] {
    let object = try runner.compileC(
      source, arguments: arguments, directory: directory,
      name: label.filter { $0.isLetter || $0.isNumber })
    let report = try ObjdumpComparison.compareBinary(runner: runner, path: object, limit: 100_000, mode: mode)
    print(report.summary(label: "objdump clang \(label)"))
    for m in report.mismatches.prefix(10) { print("  \(m)") }
    #expect(report.compared > 50)
    #expect(report.mismatchCount == 0, "clang \(label): \(report.mismatchCount) mismatches")
  }
}

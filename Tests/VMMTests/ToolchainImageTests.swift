import Foundation
import TestHostSupport
import Testing

@testable import VMM

/// Loads kernels built by the real toolchain (clang + ld.lld) at test time, so the ELF parsing is
/// checked against linker output and not only against images this test suite builds itself.
@Suite(.requires(.guestToolchain)) struct ToolchainImageTests {
  /// clang next to the Swift toolchain, or on PATH.
  static var clang: String? {
    var candidates = ["/opt/swift/usr/bin/clang"]
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
      candidates.append("\(dir)/clang")
    }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
  }

  /// Assembles and links `source` for `target` (the suite requires the toolchain programs).
  static func build(_ source: String, target: String, name: String) throws -> [UInt8] {
    let clang = try #require(clang, "no clang found")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-\(name)-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let src = dir.appendingPathComponent("k.S")
    let object = dir.appendingPathComponent("k.o")
    let out = dir.appendingPathComponent("k.elf")
    let lld = URL(fileURLWithPath: clang).deletingLastPathComponent().appendingPathComponent("ld.lld").path
    try #require(FileManager.default.isExecutableFile(atPath: lld), "no ld.lld next to \(clang)")
    try source.write(to: src, atomically: true, encoding: .utf8)
    let steps = [
      (clang, ["--target=\(target)", "-c", "-o", object.path, src.path]),
      (
        lld,
        [
          "-static", "--image-base=0", "-Ttext=0x100000", "--build-id=none", "-e", "_start", "-o", out.path,
          object.path,
        ]
      ),
    ]
    for (tool, arguments) in steps {
      let p = Process()
      p.executableURL = URL(fileURLWithPath: tool)
      p.arguments = arguments
      try p.run()
      p.waitUntilExit()
      try #require(p.terminationStatus == 0, "\(name): \(tool) could not build the test kernel")
    }
    return Array(try Data(contentsOf: out))
  }

  @Test func loadsAClangBuiltELF64Kernel() throws {
    let source = """
      .text
      .globl _start
      _start:
        movabs $value, %rax
        mov (%rax), %rbx
        hlt
      .data
      value: .quad 0x1122334455667788
      .bss
      buffer: .space 0x3000
      """
    let image = try Self.build(source, target: "x86_64-unknown-none-elf", name: "elf64")
    let m = try GuestMemory(ramSize: 16 << 20)
    try m.fill(0x10_0000, length: 1 << 20, byte: 0xCC)
    let boot = try ImageLoader.load(image: image, into: m, options: LoadOptions())
    #expect(boot.registers.rip == 0x10_0000)
    #expect(try m.read(0x10_0000, count: 2) == [0x48, 0xB8])  // movabs
    let valueAddress = try m.read(UInt64.self, at: 0x10_0002)
    #expect(try m.read(UInt64.self, at: valueAddress) == 0x1122_3344_5566_7788)
    // The BSS follows the data and is zeroed.
    #expect(try m.read(valueAddress + 8, count: 0x3000).allSatisfy { $0 == 0 })
  }

  @Test func loadsAClangBuiltMultibootKernel() throws {
    let source = """
      .text
      .align 4
      .long 0x1BADB002
      .long 0x00000003
      .long -(0x1BADB002 + 0x00000003)
      .globl _start
      _start:
        cli
        hlt
      """
    let image = try Self.build(source, target: "i386-unknown-none-elf", name: "multiboot")
    let m = try GuestMemory(ramSize: 16 << 20)
    let boot = try ImageLoader.load(image: image, into: m, options: LoadOptions(commandLine: "root=none"))
    #expect(boot.mode == .protected32)
    #expect(boot.registers.rip == 0x10_000C)
    #expect(try m.read(0x10_000C, count: 2) == [0xFA, 0xF4])
    #expect(boot.registers.rax == 0x2BAD_B002)
  }
}

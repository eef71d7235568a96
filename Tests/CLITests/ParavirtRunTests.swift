import Foundation
import Testing
import VMM

/// `trivisor run --pv`: a small x86-64 ELF booted as a deprivileged paravirtual kernel writes to
/// the hypervisor console from ring 3; a bad image or a contradicting option is one usage line.
@Suite(.enabled(if: TrivisorBinary.path != nil, "the trivisor executable was not built next to the tests"))
struct ParavirtRunTests {
  /// An ELF at virtual 0xffffffff80100000 (physical 0x100000) whose code writes its message with
  /// console_io (`xor edi, edi; mov esi, len; lea rdx, msg; mov eax, 18; vmcall; jmp $`).
  static func helloKernel() -> [UInt8] {
    let message = Array("hello from a PV kernel\nPV-END\n".utf8)
    let le32 = { (v: UInt32) in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    var code: [UInt8] = [0x31, 0xFF, 0xBE] + le32(UInt32(message.count))
    code += [0x48, 0x8D, 0x15] + le32(UInt32(5 + 3 + 2))  // to the message after the code
    code += [0xB8] + le32(18) + [0x0F, 0x01, 0xC1, 0xEB, 0xFE]
    code += message
    let virtual: UInt64 = 0xFFFF_FFFF_8010_0000
    var b = [UInt8](repeating: 0, count: 0x1000)
    func put(_ v: UInt64, _ at: Int, _ size: Int) {
      for i in 0..<size { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }
    b.replaceSubrange(0..<7, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1])
    for (v, at, size) in [
      (2, 16, 2), (62, 18, 2), (1, 20, 4), (virtual, 24, 8), (64, 32, 8), (64, 52, 2), (56, 54, 2), (1, 56, 2),
      (1, 64, 4), (7, 68, 4), (0x1000, 72, 8), (virtual, 80, 8), (0x10_0000, 88, 8),
      (UInt64(code.count), 96, 8), (UInt64(code.count), 104, 8),
    ] as [(UInt64, Int, Int)] {
      put(v, at, size)
    }
    return b + code
  }

  static func temporary(_ bytes: [UInt8]) throws -> String {
    let path = NSTemporaryDirectory() + "trivisor-pv-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).elf"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
  }

  @Test(arguments: ["interp", "dbt"])
  func aPVKernelWritesToTheConsole(engine: String) throws {
    let path = try Self.temporary(Self.helloKernel())
    defer { unlink(path) }
    let run = try TrivisorBinary.run(
      ["run", "--engine", engine, "--pv", "--stop-on-output", "PV-END", "--timeout", "600", path])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.contains("PV-END"), "\(run.stderr)")
  }

  @Test func autoPicksAnEngineThatBootsPVAndKVMSaysWhyNot() throws {
    let path = try Self.temporary(Self.helloKernel())
    defer { unlink(path) }
    let auto = try TrivisorBinary.run(["run", "--pv", "--stop-on-output", "PV-END", "--timeout", "600", path])
    #expect(auto.status == 0, "\(auto.stderr)")
    let kvm = try TrivisorBinary.run(["run", "--engine", "kvm", "--pv", path])
    #expect(kvm.status == ExitStatus.usage, "\(kvm.stderr)")
    #expect(kvm.stderrLines.count == 1 && kvm.stderr.contains("cannot boot --pv"), "\(kvm.stderr)")
  }

  @Test func badImagesAndOptionsAreOneUsageLine() throws {
    let path = try Self.temporary([UInt8](repeating: 0, count: 100))
    defer { unlink(path) }
    for arguments in [["run", "--pv", path], ["run", "--pv"], ["run", "--pv", "--bios", path, path]] {
      let run = try TrivisorBinary.run(arguments)
      #expect(run.status == ExitStatus.usage, "\(arguments): \(run.stderr)")
      #expect(run.stderrLines.count == 1, "\(arguments): \(run.stderr)")
    }
  }
}

import Foundation
import GuestImages
import Launcher
import TestHostSupport
import Testing
import VMM

/// `trivisor run --pv`: a small x86-64 ELF booted as a deprivileged paravirtual kernel writes to
/// the hypervisor console from ring 3; a bad image or a contradicting option is one usage line.
@Suite(.enabled(if: TrivisorBinary.path != nil, "the trivisor executable was not built next to the tests"))
struct ParavirtRunTests {
  /// An ELF at virtual 0xffffffff80100000 (physical 0x100000) whose code writes its message with
  /// console_io through the hypercall page, its second page (XEN_ELFNOTE_HYPERCALL_PAGE), so it
  /// runs on every engine: `xor edi, edi; mov esi, len; lea rdx, msg; call page+18*32; jmp $`.
  static func helloKernel() -> [UInt8] {
    let message = Array("hello from a PV kernel\nPV-END\n".utf8)
    let le32 = { (v: UInt32) in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    let virtual: UInt64 = 0xFFFF_FFFF_8010_0000
    let hypercallPage = virtual + 0x1000
    var code: [UInt8] = [0x31, 0xFF, 0xBE] + le32(UInt32(message.count))
    code += [0x48, 0x8D, 0x15] + le32(UInt32(5 + 2))  // to the message after the code
    let afterCall = virtual + UInt64(code.count + 5)
    code += [0xE8] + le32(UInt32(truncatingIfNeeded: hypercallPage + 18 * 32 - afterCall)) + [0xEB, 0xFE]
    code += message
    var b = [UInt8](repeating: 0, count: 0x1000)
    func put(_ v: UInt64, _ at: Int, _ size: Int) {
      for i in 0..<size { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }
    b.replaceSubrange(0..<7, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1])
    for (v, at, size) in [
      // ELF header: ET_EXEC, x86-64, entry, two program headers at 64.
      (2, 16, 2), (62, 18, 2), (1, 20, 4), (virtual, 24, 8), (64, 32, 8), (64, 52, 2), (56, 54, 2), (2, 56, 2),
      // PT_LOAD: code page and hypercall page from file offset 0x1000.
      (1, 64, 4), (7, 68, 4), (0x1000, 72, 8), (virtual, 80, 8), (0x10_0000, 88, 8), (0x2000, 96, 8), (0x2000, 104, 8),
      // PT_NOTE at 176: "Xen" note type 2 (XEN_ELFNOTE_HYPERCALL_PAGE).
      (4, 120, 4), (176, 128, 8), (24, 152, 8), (4, 176, 4), (8, 180, 4), (2, 184, 4), (0x006E_6558, 188, 4),
      (hypercallPage, 192, 8),
    ] as [(UInt64, Int, Int)] {
      put(v, at, size)
    }
    return b + code + [UInt8](repeating: 0, count: 0x2000 - code.count)
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

  /// kvm: the hypercall page's stubs trap with `out %eax, $0xE4`, open to ring 3 in the monitor's TSS.
  @Test(.requires(.kvm)) func aPVKernelWritesToTheConsoleOnKVM() throws {
    try aPVKernelWritesToTheConsole(engine: "kvm")
  }

  @Test func autoPicksAnEngineThatBootsPV() throws {
    let path = try Self.temporary(Self.helloKernel())
    defer { unlink(path) }
    let auto = try TrivisorBinary.run(["run", "--pv", "--stop-on-output", "PV-END", "--timeout", "600", path])
    #expect(auto.status == 0, "\(auto.stderr)")
  }

  /// Two deprivileged reference kernels on one pCPU (`--pcpus 1`, two `--vm` groups) both pass
  /// their self-test, and the time one of them waited for the pCPU shows as its steal time in
  /// the runstate line the kernel prints (vcpu_op get_runstate_info).
  @Test(arguments: ["interp", "dbt"]) func twoPVKernelsOnOnePCPUSeeStealTime(engine: String) throws {
    let path = try Self.temporary(try GuestImages.referenceKernel)
    defer { unlink(path) }
    let run = try TrivisorBinary.run([
      "run", "--pcpus", "1", "--timeout", "600", "--vm", "--pv --engine \(engine) \(path)",
      "--vm", "--pv --engine \(engine) \(path)",
    ])
    #expect(run.status == 0, "\(run.stderr)")
    for vm in ["[vm0] ", "[vm1] "] {
      #expect(
        run.stdout.contains(vm + "SELFTEST SUMMARY pass=\(ReferenceKernelOutput.selfTestChecks.count) fail=0"),
        "\(run.stdout)")
    }
    let steal = run.stdout.split(separator: "\n").compactMap { line -> UInt64? in
      guard line.contains("PV-RUNSTATE "),
        let field = line.split(separator: " ").first(where: { $0.hasPrefix("steal_ns=") })
      else { return nil }
      return UInt64(field.dropFirst("steal_ns=".count))
    }
    #expect(steal.count == 2, "\(run.stdout)")
    #expect(steal.reduce(0, +) > 0, "one of them waited for the pCPU: \(steal)")
  }

  /// Without IMAGE, `--pv` boots the built-in reference kernel deprivileged, as `run` boots it
  /// natively: its self-test passes with the paravirtual platform.
  @Test func withoutAnImageItBootsTheReferenceKernel() throws {
    let run = try TrivisorBinary.run(["run", "--pv", "--engine", "interp", "--timeout", "600"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("platform=paravirtual"), "\(run.stdout)")
    #expect(
      run.stdout.contains("SELFTEST SUMMARY pass=\(ReferenceKernelOutput.selfTestChecks.count) fail=0"), "\(run.stdout)"
    )
  }

  @Test func badImagesAndOptionsAreOneUsageLine() throws {
    let path = try Self.temporary([UInt8](repeating: 0, count: 100))
    defer { unlink(path) }
    for arguments in [
      ["run", "--pv", path], ["run", "--pv", "--demo"], ["run", "--pv", "--engine", "trap"],
      ["run", "--pv", "--bios", path, path],
    ] {
      let run = try TrivisorBinary.run(arguments)
      #expect(run.status == ExitStatus.usage, "\(arguments): \(run.stderr)")
      #expect(run.stderrLines.count == 1, "\(arguments): \(run.stderr)")
    }
  }
}

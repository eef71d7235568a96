import Foundation
import Interpreter
import VMM

/// Assembles small test guests with the toolchain's clang and ld.lld into a flat binary linked at
/// `GuestMachine.codeBase` (Intel syntax, 64-bit). Nil (with a printed reason) when no clang.
enum GuestAssembler {
  static let clang: String? = {
    let candidates = [
      ProcessInfo.processInfo.environment["TRIVISOR_CLANG"], "/opt/swift/usr/bin/clang", "/usr/bin/clang",
    ]
    return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
  }()

  /// The flat binary of `body` at `base`. Tests that assemble are marked
  /// `.requires(.guestToolchain)`.
  static func assemble(_ body: String, base: UInt64 = GuestMachine.codeBase) throws -> [UInt8] {
    guard let clang else { throw HarnessError("no clang found (set TRIVISOR_CLANG)") }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trivisor-guest-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let source = dir.appendingPathComponent("guest.S")
    let output = dir.appendingPathComponent("guest.bin")
    try (".intel_syntax noprefix\n.code64\n" + body + "\n").write(to: source, atomically: true, encoding: .utf8)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: clang)
    process.arguments = [
      "-target", "x86_64-linux-gnu", "-nostdlib", "-static", "-fuse-ld=lld", "-Wl,--oformat=binary",
      "-Wl,--image-base=0", "-Wl,-Ttext=0x\(String(base, radix: 16))", "-Wl,-e,0x\(String(base, radix: 16))",
      "-x", "assembler", source.path, "-o", output.path,
    ]
    let errors = Pipe()
    process.standardError = errors
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      throw HarnessError("assembling the guest failed: \(text)")
    }
    return Array(try Data(contentsOf: output))
  }
}

struct HarnessError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// A 16 MiB long-mode machine for one test: identity-mapped page tables (from `LongModeSetup`,
/// optionally user-accessible), a GDT with ring-0 and ring-3 segments and a 64-bit TSS, an IDT
/// filled by `setGate`, and the guest code at `codeBase`, started at CPL 0 with RSP = `stackTop`.
final class GuestMachine {
  static let codeBase: UInt64 = 0x10_0000
  static let gdtBase: UInt64 = 0x600
  static let idtBase: UInt64 = 0x2_0000
  static let tssBase: UInt64 = 0x3_0000
  /// A 4 KiB page table a test can hang under the 2 MiB page at `smallPagesBase`.
  static let pageTable: UInt64 = 0x4_0000
  static let smallPagesBase: UInt64 = 0x40_0000
  static let userStackTop: UInt64 = 0x6_0000
  static let stackTop: UInt64 = 0x8_0000

  static let kernelCode: UInt16 = 0x08
  static let kernelData: UInt16 = 0x10
  static let userData: UInt16 = 0x1B
  static let userCode: UInt16 = 0x23
  static let tss: UInt16 = 0x28

  /// Assembly that drops from ring 0 to ring 3 at the label `user:` that must follow it, with
  /// RSP = `userStackTop` and RFLAGS = `rflags`, through an IRETQ frame (SS RSP RFLAGS CS RIP).
  static func enterRing3(rflags: UInt64 = 0x2) -> String {
    """
      push 0x1b                          # SS
      push 0x60000                       # RSP
      push 0x\(String(rflags, radix: 16))                           # RFLAGS
      push 0x23                          # CS
      lea rax, [rip + user]
      push rax
      iretq
    """
  }

  let memory: GuestMemory
  let vcpu: InterpreterVirtualCPU

  init(code: String, userAccessible: Bool = false, deterministic: Bool = true) throws {
    let bytes = try GuestAssembler.assemble(code)
    memory = try GuestMemory(ramSize: 16 << 20)
    var sregs = try LongModeSetup.prepare(memory)
    try memory.write(GuestMachine.codeBase, bytes: bytes)
    if userAccessible {
      // U/S on the PML4, PDPT and the first GiB's directory entries.
      let user: UInt64 = 0x4
      for address in [BootLayout.pml4, BootLayout.pdpt] {
        try memory.write(try memory.read(UInt64.self, at: address) | user, at: address)
      }
      for entry in UInt64(0)..<512 {
        let address = BootLayout.pageDirectories + entry * 8
        try memory.write(try memory.read(UInt64.self, at: address) | user, at: address)
      }
    }
    vcpu = InterpreterVirtualCPU(memory: memory, deterministic: deterministic)
    try writeGDT()
    sregs.gdt = DescriptorTable(base: GuestMachine.gdtBase, limit: 0x37)
    sregs.idt = DescriptorTable(base: GuestMachine.idtBase, limit: 0xFFF)
    sregs.cs = Segment(
      selector: GuestMachine.kernelCode, base: 0, limit: 0xFFFF_FFFF, type: 11, l: true, g: true)
    let data = Segment(
      selector: GuestMachine.kernelData, base: 0, limit: 0xFFFF_FFFF, type: 3, db: true, g: true)
    sregs.ds = data
    sregs.es = data
    sregs.ss = data
    sregs.fs = data
    sregs.gs = data
    sregs.tr = Segment(selector: GuestMachine.tss, base: GuestMachine.tssBase, limit: 0x67, type: 11, s: false)
    sregs.cr0 |= 1 << 16  // WP: supervisor writes honour read-only pages
    try vcpu.setSpecialRegisters(sregs)
    var regs = Registers()
    regs.rip = GuestMachine.codeBase
    regs.rsp = GuestMachine.stackTop
    try vcpu.setRegisters(regs)
  }

  private func writeGDT() throws {
    let tss = GuestMachine.tssBase
    let tssLow: UInt64 =
      0x67 | (tss & 0xFFFF) << 16 | ((tss >> 16) & 0xFF) << 32 | UInt64(0x89) << 40 | ((tss >> 24) & 0xFF) << 56
    let entries: [UInt64] = [
      0,
      0x00AF_9A00_0000_FFFF,  // 0x08 kernel code, 64-bit
      0x00CF_9200_0000_FFFF,  // 0x10 kernel data
      0x00CF_F200_0000_FFFF,  // 0x18 user data (DPL 3)
      0x00AF_FA00_0000_FFFF,  // 0x20 user code, 64-bit (DPL 3)
      tssLow, tss >> 32,  // 0x28 64-bit TSS
    ]
    for (i, e) in entries.enumerated() { try memory.write(e, at: GuestMachine.gdtBase + UInt64(i * 8)) }
    try memory.fill(tss, length: 0x68)
    try memory.write(GuestMachine.stackTop, at: tss + 4)  // RSP0
    try memory.write(UInt16(0x68), at: tss + 0x66)  // no I/O bitmap
  }

  /// A 64-bit interrupt gate (IF cleared on entry) for `vector` to `handler`.
  func setGate(_ vector: UInt8, _ handler: UInt64, dpl: UInt8 = 0) throws {
    let address = GuestMachine.idtBase + UInt64(vector) * 16
    let low =
      (handler & 0xFFFF) | UInt64(GuestMachine.kernelCode) << 16 | UInt64(0x8E | dpl << 5) << 40
      | ((handler >> 16) & 0xFFFF) << 48
    try memory.write(low, at: address)
    try memory.write(handler >> 32, at: address + 8)
  }

  /// Maps `smallPagesBase` ... + 2 MiB through 4 KiB pages of `pageTable` (all absent until set).
  func useSmallPages() throws {
    try memory.fill(GuestMachine.pageTable, length: 0x1000)
    let directoryEntry = BootLayout.pageDirectories + (GuestMachine.smallPagesBase >> 21) * 8
    try memory.write(GuestMachine.pageTable | 0x7, at: directoryEntry)
  }

  /// Sets the 4 KiB page table entry for `linear` (in the small-pages range).
  func mapSmallPage(_ linear: UInt64, flags: UInt64) throws {
    let index = (linear - GuestMachine.smallPagesBase) >> 12
    try memory.write((linear & ~0xFFF) | flags, at: GuestMachine.pageTable + index * 8)
  }

  /// Runs until an exit other than port I/O to `port`s in `recorded` (answered with `.none` and
  /// recorded as (port, value)).
  func runRecordingOutputs(budget: UInt64 = 100_000) throws -> (exit: VMExit, outputs: [(UInt16, UInt32)]) {
    var outputs: [(UInt16, UInt32)] = []
    while true {
      let exit = try vcpu.run(budget: budget)
      guard case .io(let access) = exit, access.isWrite else { return (exit, outputs) }
      outputs.append((access.port, access.value))
      try vcpu.complete(.none)
    }
  }
}

extension InterpreterVirtualCPU {
  /// Answers an exit that waits for the VMM neutrally, as the fuzzing tests need: reads return 0,
  /// CPUID returns zeros, writes are dropped. False when the exit ends the run (shutdown, internal
  /// error); HLT is left to the caller.
  func answerNeutrally(_ exit: VMExit) throws -> Bool {
    switch exit {
    case .io(let a): try complete(a.isWrite ? .none : .value(0))
    case .mmio(let a): try complete(a.isWrite ? .none : .value(0))
    case .msrRead, .rdtsc: try complete(.value(0))
    case .msrWrite, .hypercall, .invlpg: try complete(.none)
    case .cpuid: try complete(.cpuid(eax: 0, ebx: 0, ecx: 0, edx: 0))
    case .shutdown, .internalError: return false
    default: break
    }
    return true
  }
}

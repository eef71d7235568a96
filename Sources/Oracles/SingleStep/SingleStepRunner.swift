import Foundation
import X86

/// The outcome of one opcode file.
public struct OpcodeResult: Sendable {
  /// File stem: "00", "F6.6".
  public var stem: String
  /// The instruction's mnemonic, from the first test's name.
  public var name: String
  public var status: String
  public var passed = 0
  public var failed = 0
  /// Revoked tests and tests of opcodes whose behaviour the data's README calls undefined.
  public var skipped = 0
  /// Description of the first failing test.
  public var firstFailure: String?
}

/// Totals of a SingleStep run.
public struct SingleStepReport: Sendable {
  public var results: [OpcodeResult] = []
  public var passed: Int { results.reduce(0) { $0 + $1.passed } }
  public var failed: Int { results.reduce(0) { $0 + $1.failed } }
  public var skippedRevoked = 0
  public var skippedUndefined = 0

  /// The per-opcode table and the final "N passed, M failed" line.
  public func table(onlyFailing: Bool = false) -> String {
    var lines = ["opcode  name          status        passed  failed"]
    for r in results where !onlyFailing || r.failed > 0 {
      lines.append(
        r.stem.padding(toLength: 8, withPad: " ", startingAt: 0)
          + r.name.padding(toLength: 14, withPad: " ", startingAt: 0)
          + r.status.padding(toLength: 14, withPad: " ", startingAt: 0)
          + String(r.passed).leftPadded(6) + "  " + String(r.failed).leftPadded(6))
    }
    if skippedRevoked + skippedUndefined > 0 {
      lines.append(
        "skipped: \(skippedRevoked) revoked tests, \(skippedUndefined) tests of opcodes with status 'undefined'")
    }
    lines.append("\(passed) passed, \(failed) failed")
    return lines.joined(separator: "\n")
  }
}

/// Runs SingleStep MOO tests on the X86 model in real mode.
public final class SingleStepRunner {
  public let model: CPUModel
  private let memory = RealModeMemory()
  private let cpu: CPU

  public init(model: CPUModel) {
    self.model = model
    cpu = CPU(model: model, memory: memory)
  }

  /// The CPU model a test folder was captured on, from its name.
  public static func model(forDirectory path: String) -> CPUModel? {
    let name = URL(fileURLWithPath: path).lastPathComponent
    if name.hasPrefix("8086") || name.hasPrefix("8088") { return .i8086 }
    if name.hasPrefix("80286") || name.hasPrefix("286") { return .i80286 }
    if name.hasPrefix("80386") || name.hasPrefix("386") { return .i80386 }
    return nil
  }

  /// Runs every `.MOO.gz` file of a folder (or only the one whose stem is `opcode`); with
  /// `stride` > 1 only every `stride`-th test of each file (the first, then every `stride`-th after
  /// it), a fixed sample for quick runs.
  public func run(
    directory: String, opcode: String? = nil, stride: Int = 1, progress: (OpcodeResult) -> Void = { _ in }
  ) throws(SingleStepDataError) -> SingleStepReport {
    let metadata = try SingleStepMetadata(directory: directory)
    let files: [String]
    do {
      files = try FileManager.default.contentsOfDirectory(atPath: directory).filter {
        $0.hasSuffix(".MOO.gz") || $0.hasSuffix(".MOO")
      }
      .sorted()
    } catch { throw SingleStepDataError("cannot list \(directory)") }
    var report = SingleStepReport()
    for file in files {
      let cleanStem = file.replacingOccurrences(of: ".MOO.gz", with: "").replacingOccurrences(of: ".MOO", with: "")
      if let opcode, cleanStem.uppercased() != opcode.uppercased() { continue }
      let info = metadata.info(forStem: cleanStem) ?? OpcodeInfo(status: "normal", flagsMask: 0xFFFF)
      let moo = try MOOFile(path: directory + "/" + file)
      let prefixes: Set<String> = ["rep", "repe", "repz", "repne", "repnz", "lock"]
      let words = (moo.tests.first?.name ?? "").split(separator: " ").map(String.init)
      let name = words.first(where: { !prefixes.contains($0.lowercased()) && !$0.hasSuffix(":") }) ?? ""
      var result = OpcodeResult(stem: cleanStem, name: name, status: info.status)
      for (position, test) in moo.tests.enumerated() where position % max(stride, 1) == 0 {
        if metadata.revoked.contains(test.hash.lowercased()) {
          result.skipped += 1
          report.skippedRevoked += 1
          continue
        }
        if info.status == "undefined" {
          result.skipped += 1
          report.skippedUndefined += 1
          continue
        }
        if let failure = runTest(test, flagsMask: info.flagsMask) {
          result.failed += 1
          if result.firstFailure == nil { result.firstFailure = "test \(test.index) '\(test.name)': \(failure)" }
        } else {
          result.passed += 1
        }
      }
      progress(result)
      report.results.append(result)
    }
    return report
  }

  static let gprIndex16: [String: Int] = ["ax": 0, "cx": 1, "dx": 2, "bx": 3, "sp": 4, "bp": 5, "si": 6, "di": 7]
  static let gprIndex32: [String: Int] = [
    "eax": 0, "ecx": 1, "edx": 2, "ebx": 3, "esp": 4, "ebp": 5, "esi": 6, "edi": 7,
  ]
  static let segments: [String: SegmentRegister] = [
    "cs": .cs, "ss": .ss, "ds": .ds, "es": .es, "fs": .fs, "gs": .gs,
  ]

  /// Runs one test; nil when it passes, else what differed.
  public func runTest(_ test: MOOTest, flagsMask: UInt16) -> String? {
    memory.clear()
    cpu.invalidateTLB()
    let i = test.initial
    let wide = !i.registers32.isEmpty
    let cs = wide ? UInt16(truncatingIfNeeded: i.register32("cs") ?? 0) : i.register16("cs") ?? 0
    let ip = wide ? UInt16(truncatingIfNeeded: i.register32("eip") ?? 0) : i.register16("ip") ?? 0
    cpu.resetReal(cs: cs, ip: ip)
    if wide {
      for (name, index) in Self.gprIndex32 { cpu.state.setGPR(index, UInt64(i.register32(name) ?? 0)) }
      for (name, s) in Self.segments {
        cpu.state.setSegment(s, .real(UInt16(truncatingIfNeeded: i.register32(name) ?? 0), code: s == .cs))
      }
      cpu.state.rip = UInt64(i.register32("eip") ?? 0)
      cpu.state.rflags = Self.loadedFlags(UInt64(i.register32("eflags") ?? 2), model: model)
    } else {
      for (name, index) in Self.gprIndex16 { cpu.state.setGPR(index, UInt64(i.register16(name) ?? 0)) }
      for name in ["cs", "ss", "ds", "es"] {
        if let s = Self.segments[name] { cpu.state.setSegment(s, .real(i.register16(name) ?? 0, code: s == .cs)) }
      }
      cpu.state.rip = UInt64(ip)
      cpu.state.rflags = Self.loadedFlags(UInt64(i.register16("flags") ?? 2), model: model)
    }
    for (address, value) in i.ram { memory.store(value, at: address) }
    if let problem = execute(test) { return problem }
    return compare(test, flagsMask: flagsMask, wide: wide)
  }

  /// FLAGS as the chip holds them after the capture harness loads them (with POPF/IRET): bit 1
  /// reads 1, bits 3 and 5 read 0; the 8086 reads bits 12-15 as 1, the 286 in real mode as 0.
  /// `CPUState.rflags` stores raw values, so the oracle applies these load-time rules itself.
  static func loadedFlags(_ value: UInt64, model: CPUModel) -> UInt64 {
    var v = (value | 2) & ~UInt64(0x28)
    switch model {
    case .i8086: v = (v | 0xF000) & 0xFFFF
    case .i80286: v &= 0x0FFF
    case .i80386: v &= 0x3_7FFF
    case .host64: break
    }
    return v
  }

  /// Executes the instruction: REP forms to the end of their repetition, then a HLT placed after it.
  private func execute(_ test: MOOTest) -> String? {
    let startCS = cpu.state.segmentSelector(SegmentRegister.cs.rawValue)
    let startIP = cpu.state.rip
    let repeats = test.bytes.prefix(while: {
      [0xF2, 0xF3, 0x26, 0x2E, 0x36, 0x3E, 0xF0, 0x64, 0x65, 0x66, 0x67].contains($0)
    })
    .contains(where: { $0 == 0xF2 || $0 == 0xF3 })
    var steps = 0
    var halted = false
    while steps < 200_000 {
      let event = cpu.step()
      switch event {
      case nil: steps += 1
      case .halt?: halted = true
      case .portIn(_, let size)?:
        cpu.complete(value: size >= 8 ? ~0 : (1 << UInt64(size * 8)) - 1)
        continue
      case .portOut?: continue
      case let other?: return "model stopped with \(other)"
      }
      if halted { break }
      let sameInstruction =
        cpu.state.rip == startIP && cpu.state.segmentSelector(SegmentRegister.cs.rawValue) == startCS
      if !(repeats && sameInstruction) { break }
    }
    // A HLT placed after the instruction (or at the exception handler) ends the test.
    if !halted, let hltAt = linearIP(), memory.load(hltAt) == 0xF4, finalIPExpectsHLT(test) {
      if case .halt? = cpu.step() {} else { return "the HLT after the instruction did not halt" }
    }
    return nil
  }

  private func linearIP() -> UInt32? {
    let base = cpu.state.segmentBase(SegmentRegister.cs.rawValue)
    return UInt32(truncatingIfNeeded: base &+ cpu.state.rip)
  }

  private func finalIPExpectsHLT(_ test: MOOTest) -> Bool {
    // FINA lists only registers that changed: an absent IP ended where it started.
    let expected =
      (test.final.register16("ip") ?? test.initial.register16("ip")).map(UInt64.init)
      ?? (test.final.register32("eip") ?? test.initial.register32("eip")).map(UInt64.init)
    guard let expected else { return false }
    return expected == (cpu.state.rip + 1) & 0xFFFF || expected == cpu.state.rip + 1
  }

  private func compare(_ test: MOOTest, flagsMask: UInt16, wide: Bool) -> String? {
    var problems: [String] = []
    let f = test.final
    let i = test.initial
    // EFLAGS bits 18-31 do not exist on the 386; the captured values carry ones there.
    let flagsMask32 = UInt64(flagsMask) | 0x3_0000
    if wide {
      for name in MOOFile.registers32 {
        guard
          let expected = f.register32(name) ?? (name.hasPrefix("cr") || name.hasPrefix("dr") ? nil : i.register32(name))
        else {
          continue
        }
        let actual: UInt64
        if let index = Self.gprIndex32[name] {
          actual = cpu.state.gpr(index) & 0xFFFF_FFFF
        } else if let s = Self.segments[name] {
          actual = UInt64(cpu.state.segmentSelector(s.rawValue))
        } else if name == "eip" {
          actual = cpu.state.rip & 0xFFFF_FFFF
        } else if name == "eflags" {
          let a = cpu.state.rflags & flagsMask32 & 0xFFFF_FFFF
          if a != UInt64(expected) & flagsMask32 {
            problems.append("eflags \(hex(a)) expected \(hex(UInt64(expected) & flagsMask32))")
          }
          continue
        } else {
          continue
        }
        if actual != UInt64(expected) { problems.append("\(name) \(hex(actual)) expected \(hex(UInt64(expected)))") }
      }
    } else {
      for name in MOOFile.registers16 {
        guard let expected = f.register16(name) ?? i.register16(name) else { continue }
        let actual: UInt64
        if let index = Self.gprIndex16[name] {
          actual = cpu.state.gpr(index) & 0xFFFF
        } else if let s = Self.segments[name] {
          actual = UInt64(cpu.state.segmentSelector(s.rawValue))
        } else if name == "ip" {
          actual = cpu.state.rip & 0xFFFF
        } else {
          let a = cpu.state.rflags & UInt64(flagsMask)
          if a != UInt64(expected & flagsMask) {
            problems.append("flags \(hex(a)) expected \(hex(UInt64(expected & flagsMask)))")
          }
          continue
        }
        if actual != UInt64(expected) { problems.append("\(name) \(hex(actual)) expected \(hex(UInt64(expected)))") }
      }
    }
    // FLAGS pushed by an exception carry the undefined bits too: mask those two bytes. They sit
    // at SS:SP-2 when the frame was pushed (SP dropped by 6); EXCP's address is used otherwise (it
    // can be the word-aligned bus address, one below an odd SP).
    var flagBytes: [UInt32: UInt8] = [:]
    if flagsMask != 0xFFFF {
      var at: UInt32?
      if let sp0 = i.register16("sp"), let sp1 = f.register16("sp"), sp1 == sp0 &- 6,
        let ss = i.register16("ss")
      {
        at = UInt32(truncatingIfNeeded: UInt64(UInt32(ss) << 4 &+ UInt32(sp0 &- 2)) & model.physicalAddressMask)
      } else if let e = test.exception {
        at = e.flagsAddress
      }
      if let at {
        flagBytes[at] = UInt8(flagsMask & 0xFF)
        flagBytes[at &+ 1] = UInt8(flagsMask >> 8)
      }
    }
    var badBytes: [String] = []
    for (address, value) in f.ram {
      let mask = flagBytes[address] ?? 0xFF
      guard let actual = memory.load(address) else {
        badBytes.append("[\(hex(UInt64(address)))] outside RAM")
        continue
      }
      if actual & mask != value & mask {
        badBytes.append("[\(hex(UInt64(address)))]=\(hex2(actual)) expected \(hex2(value))")
      }
    }
    if !badBytes.isEmpty {
      problems.append("RAM " + badBytes.prefix(4).joined(separator: ", ") + (badBytes.count > 4 ? " ..." : ""))
    }
    return problems.isEmpty ? nil : problems.joined(separator: "; ")
  }
}

extension String {
  func leftPadded(_ width: Int) -> String {
    count >= width ? self : String(repeating: " ", count: width - count) + self
  }
}

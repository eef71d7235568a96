import Foundation
import X86

/// Options of the system-level difftest (`trivisor difftest --mode system`).
public struct SystemDiffOptions: Sendable {
  /// Stop after this many instructions retired (by the interpreter's runs) in total.
  public var instructionCount: UInt64
  public var seed: UInt64
  /// Top-level items per program.
  public var itemsPerProgram = 60
  /// Instructions one program may retire before it is cut off.
  public var instructionLimit: UInt64 = 100_000
  /// Shrink mismatching programs to fewer items.
  public var reduce = true
  /// Mismatches to report in full (all are counted).
  public var keptMismatches = 3
  /// The translator's code buffer (a small one makes it start over now and then).
  public var translatorCodeBytes = 8 << 20

  public init(instructionCount: UInt64, seed: UInt64) {
    self.instructionCount = instructionCount
    self.seed = seed
  }
}

/// The outcome of a system-level difftest run.
public struct SystemDiffReport: Sendable {
  public var programs = 0
  /// Instructions the interpreter retired over all programs (the translator's runs retire the
  /// same number when they agree).
  public var instructions: UInt64 = 0
  /// Of the dbt runs' instructions, those translated code completed.
  public var translatedInstructions: UInt64 = 0
  public var mismatchCount = 0
  public var mismatches: [String] = []
  /// Events compared (port accesses, interrupts, HLTs), and by kind.
  public var events = 0
  public var eventKinds: [String: Int] = [:]
  /// How the programs ended.
  public var endings: [String: Int] = [:]
  /// Exceptions the handlers reported, by vector.
  public var exceptionVectors: [Int: Int] = [:]
  public var translatorCounters: [(name: String, value: UInt64)] = []
  public var seconds = 0.0

  public var summary: String {
    let share = instructions == 0 ? 0 : Double(translatedInstructions) * 100 / Double(instructions)
    var lines = [
      "system difftest: \(instructions) instructions in \(programs) programs, \(mismatchCount) mismatching programs, "
        + String(format: "%.1f s", seconds),
      "  translated code completed \(translatedInstructions) of the dbt runs' instructions ("
        + String(format: "%.1f %%", share) + ")",
      "  events compared: \(events) ("
        + eventKinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")",
      "  exceptions reported by the guest: "
        + exceptionVectors.sorted { $0.key < $1.key }.map { "#\($0.key) \($0.value)" }.joined(separator: ", "),
      "  programs ended: "
        + endings.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
    ]
    if mismatchCount > 0 { lines.append("  MISMATCHES: \(mismatchCount)") }
    return lines.joined(separator: "\n")
  }
}

/// The system-level differential test: random programs (`SystemProgramGenerator`) on the X86
/// model twice, once with the dynamic binary translator attached and once on the interpreter
/// alone, from the same machine; the event sequences (port accesses with their values, timer
/// interrupts and HLTs, each with its instruction count, RIP, CPL and a register hash), the
/// instruction counts, every architectural word of the CPU state and all of memory must agree.
public final class SystemDiffTester {
  public let options: SystemDiffOptions
  private let dbt: SystemRunner
  private let interp: SystemRunner

  public init(options: SystemDiffOptions) throws(NativeRunnerError) {
    self.options = options
    dbt = try SystemRunner(translated: true, codeBytes: options.translatorCodeBytes)
    interp = try SystemRunner(translated: false)
    dbt.instructionLimit = options.instructionLimit
    interp.instructionLimit = options.instructionLimit
  }

  /// The seed of program `index` of a run with `seed`.
  static func programSeed(_ seed: UInt64, _ index: Int) -> UInt64 {
    var r = RandomSource(seed: seed ^ UInt64(index) &* 0xD1B5_4A32_D192_ED03)
    return r.next()
  }

  public func run(progress: (String) -> Void = { _ in }) -> SystemDiffReport {
    var report = SystemDiffReport()
    let start = Date()
    var nextProgress: UInt64 = 1_000_000
    while report.instructions < options.instructionCount {
      let seed = Self.programSeed(options.seed, report.programs)
      var generator = SystemProgramGenerator(
        seed: seed, items: options.itemsPerProgram)
      let program = generator.generate()
      let (i, d, difference) = compare(program)
      report.programs += 1
      report.instructions &+= i.retired
      report.events += i.events.count
      for e in i.events {
        let kind: String
        switch e.kind {
        case .output(let port, _, let value):
          kind = port == SystemLayout.exitPort ? "exit" : "out"
          if port == SystemLayout.testPort && value >> 16 == 0x4E56 {
            report.exceptionVectors[Int(value & 0xFF), default: 0] += 1
          }
        case .input: kind = "in"
        case .interrupt: kind = "timer"
        case .halt: kind = "hlt"
        case .end(let reason):
          report.endings[reason, default: 0] += 1
          continue
        }
        report.eventKinds[kind, default: 0] += 1
      }
      _ = d
      if let difference {
        report.mismatchCount += 1
        if report.mismatches.count < options.keptMismatches {
          report.mismatches.append(describe(program, index: report.programs - 1, difference: difference))
        }
        progress(
          "MISMATCH in program \(report.programs - 1) (seed \(options.seed)): \(difference.split(separator: "\n").first ?? "")"
        )
      }
      if report.instructions >= nextProgress {
        progress(
          "  \(report.instructions) instructions, \(report.programs) programs, \(report.mismatchCount) mismatches")
        nextProgress += 1_000_000
      }
    }
    report.translatedInstructions = dbt.translator?.statistics.translatedInstructions ?? 0
    report.translatorCounters = (dbt.translator?.counters ?? []).map { ($0.name, $0.value) }
    report.seconds = Date().timeIntervalSince(start)
    return report
  }

  /// Runs `program` on both and returns the traces and the first difference, if any.
  func compare(_ program: SystemProgram) -> (interp: SystemTrace, dbt: SystemTrace, difference: String?) {
    let i = interp.run(program)
    let d = dbt.run(program)
    return (i, d, Self.difference(i, d, interpMemory: interp.memory, dbtMemory: dbt.memory))
  }

  /// The first difference between two traces and memories, described; nil when they agree.
  static func difference(
    _ i: SystemTrace, _ d: SystemTrace, interpMemory: SystemMemory, dbtMemory: SystemMemory
  ) -> String? {
    for k in 0..<max(i.events.count, d.events.count) {
      let a = k < i.events.count ? i.events[k].description : "(none)"
      let b = k < d.events.count ? d.events[k].description : "(none)"
      if a != b {
        var lines = ["event \(k) differs:", "  interp: \(a)", "  dbt:    \(b)"]
        if k > 0 { lines.insert("  (event \(k - 1), the same on both: \(i.events[k - 1]))", at: 1) }
        return lines.joined(separator: "\n")
      }
    }
    if i.retired != d.retired { return "instructions retired differ: interp \(i.retired), dbt \(d.retired)" }
    var fields: [String] = []
    for (a, b) in zip(i.state, d.state) where a.value != b.value {
      fields.append("\(a.name): interp 0x\(sysHex(a.value)), dbt 0x\(sysHex(b.value))")
    }
    if !fields.isEmpty { return "final state differs: " + fields.prefix(8).joined(separator: "; ") }
    if memcmp(interpMemory.bytes, dbtMemory.bytes, interpMemory.size) != 0 {
      var diffs: [String] = []
      let a = interpMemory.bytes.assumingMemoryBound(to: UInt8.self)
      let b = dbtMemory.bytes.assumingMemoryBound(to: UInt8.self)
      for k in 0..<interpMemory.size where a[k] != b[k] {
        diffs.append("0x\(sysHex(UInt64(k))): interp \(sysHex(UInt64(a[k]))) dbt \(sysHex(UInt64(b[k])))")
        if diffs.count == 8 { break }
      }
      return "memory differs: " + diffs.joined(separator: "; ")
    }
    return nil
  }

  /// A mismatch report: the seeds, the difference, the program reduced to fewer items where the
  /// mismatch persists, its listing and its event trace.
  func describe(_ program: SystemProgram, index: Int, difference: String) -> String {
    var program = program
    var difference = difference
    if options.reduce { (program, difference) = reduce(program, difference: difference) }
    let (i, _, _) = compare(program)
    var lines = [
      "MISMATCH in program \(index) of seed \(options.seed) (program seed \(program.seed), "
        + "\(program.items.count - program.skipped.count) of \(program.items.count) items kept)",
      difference,
      "start: CR3 0x\(sysHex(program.cr3)), CR4.PGE \(program.globalPages), IF \(program.interruptsEnabled), "
        + "timer mean \(program.timerMean), #PF handler INVLPG \(program.handlerInvalidates), fault PTE flags "
        + program.faultFlags.map { "0x\(sysHex($0))" }.joined(separator: " "),
      "events (interp):",
    ]
    lines += i.events.prefix(60).map { "  \($0)" }
    lines.append("program:")
    lines += Self.listing(program).prefix(600)
    return lines.joined(separator: "\n")
  }

  /// Delta debugging over the items: drops runs of items (halves, quarters, ... single ones)
  /// while the regenerated program still mismatches.
  func reduce(_ program: SystemProgram, difference: String) -> (SystemProgram, String) {
    var best = program
    var bestDifference = difference
    var skip = program.skipped
    let count = program.items.count
    var chunk = max(count / 2, 1)
    while chunk >= 1 {
      var start = 0
      while start < count {
        let candidate = skip.union(start..<min(start + chunk, count))
        if candidate != skip {
          var g = SystemProgramGenerator(
            seed: program.seed, items: options.itemsPerProgram, skip: candidate)
          let p = g.generate()
          if let diff = compare(p).difference {
            skip = candidate
            best = p
            bestDifference = diff
          }
        }
        start += chunk
      }
      if chunk == 1 { break }
      chunk /= 2
    }
    return (best, bestDifference)
  }

  /// The program's code, disassembled, with the items marked.
  static func listing(_ program: SystemProgram) -> [String] {
    var lines: [String] = []
    var starts: [UInt64: [String]] = [:]
    for (k, item) in program.items.enumerated() where !program.skipped.contains(k) {
      starts[item.address, default: []].append("item \(k): \(item.kind)")
    }
    for section in program.sections {
      lines.append("section 0x\(sysHex(section.base)):")
      var offset = 0
      while offset < section.bytes.count {
        let address = section.base + UInt64(offset)
        for s in starts[address] ?? [] { lines.append("  ; \(s)") }
        let mode: CodeMode = program.code32.contains { $0.contains(address) } ? .bits32 : .bits64
        let bytes = Array(section.bytes[offset..<min(offset + 15, section.bytes.count)])
        if let (length, text) = Disassembler.disassemble(bytes, mode: mode, address: address) {
          let hexBytes = bytes.prefix(length).map { String(format: "%02x", $0) }.joined(separator: " ")
          lines.append("  0x\(sysHex(address)): \(hexBytes.padding(toLength: 30, withPad: " ", startingAt: 0)) \(text)")
          offset += length
        } else {
          lines.append("  0x\(sysHex(address)): \(String(format: "%02x", bytes[0]))  (.byte)")
          offset += 1
        }
      }
    }
    return lines
  }
}

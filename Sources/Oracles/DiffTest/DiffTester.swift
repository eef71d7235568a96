import CNative
import X86

/// Options of a differential-testing run.
public struct DiffTestOptions: Sendable {
  /// Instructions under test to generate (helpers not counted).
  public var instructionCount: Int
  public var seed: UInt64
  /// Classes to draw from (all by default); classes the host lacks are dropped with a note.
  public var classes: [InstructionClass]
  /// Instructions under test per program.
  public var programLength: Int = 4
  /// Run the model with its fast handlers (the default) or with every instruction on the general path.
  public var fastPath = true
  /// Mismatches to shrink and keep in full (the rest are only counted).
  public var keptMismatches: Int = 20
  /// 64-bit code, or 32- or 16-bit code in compatibility mode.
  public var mode: DiffTestMode
  /// How the model runs 64-bit programs: the interpreter stepping, or the translator (`.dbt`,
  /// which implies `paging`).
  public var engine: DiffTestEngine = .interp
  /// Run 64-bit programs with 4-level paging at CPL 3 instead of the flat-user mode.
  public var paging = false

  /// Options for `mode`; `classes` nil means every class the mode generates but `rcp` and the x87 classes
  /// (`InstructionClass.defaultClasses`).
  public init(
    instructionCount: Int, seed: UInt64, classes: [InstructionClass]? = nil, mode: DiffTestMode = .long64
  ) {
    self.instructionCount = instructionCount
    self.seed = seed
    self.mode = mode
    self.classes = classes ?? InstructionClass.defaultClasses(for: mode)
  }
}

/// Where a run's tests come from: the 64-bit generator or the compatibility-mode one.
enum ProgramSource: Sendable {
  case long64(ProgramGenerator)
  case compatibility(CompatProgramGenerator)

  init(mode: DiffTestMode, classes: [InstructionClass], features: Set<HostFeature>, seed: UInt64) {
    if mode.isCompatibility {
      self = .compatibility(CompatProgramGenerator(mode: mode, classes: classes, seed: seed))
    } else {
      self = .long64(ProgramGenerator(classes: classes, features: features, seed: seed))
    }
  }

  /// The next initial state and program of `count` instructions under test.
  mutating func nextTest(count: Int) -> (initial: MachineState, program: TestProgram) {
    switch self {
    case .long64(var g):
      let initial = g.initialState()
      let program = g.program(count: count)
      self = .long64(g)
      return (initial, program)
    case .compatibility(var g):
      let test = g.nextTest(count: count)
      self = .compatibility(g)
      return test
    }
  }
}

/// A mismatch reduced as far as possible, with everything needed to reproduce it.
public struct DiffMismatch: Sendable {
  public var program: TestProgram
  public var initial: MachineState
  public var native: RunResult
  public var model: RunResult
  public var differences: [FieldDifference]
  /// The class blamed: that of the last instruction under test in the reduced program.
  public var instructionClass: InstructionClass
  /// True when the reduced program is a single instruction.
  public var isSingleInstruction: Bool

  /// A multi-line reproducer.
  public var report: String {
    var lines: [String] = []
    lines.append(
      "MISMATCH in class '\(instructionClass.rawValue)'"
        + (isSingleInstruction ? " (single instruction)" : " (program prefix; did not reproduce alone)"))
    for (address, i) in zip(program.addresses, program.instructions) {
      let text =
        Disassembler.disassemble(i.bytes, mode: program.codeMode, address: address)?.text ?? "(model cannot decode)"
      let bytes = i.bytes.map { hex2($0) }.joined(separator: " ")
      lines.append("  \(hex(address)): \(bytes.padding(toLength: 36, withPad: " ", startingAt: 0)) \(text)")
    }
    lines.append("  initial: " + Self.registers(initial))
    lines.append("  native:  \(native.outcome) at rip \(hex(native.state.rip)); " + Self.registers(native.state))
    lines.append("  model:   \(model.outcome) at rip \(hex(model.state.rip)); " + Self.registers(model.state))
    if initial.isCompatibility {
      // The whole LDT: the program may load any selector from memory or an immediate.
      for (index, e) in initial.ldt.enumerated() {
        lines.append("  ldt[\(index)] (selector \(hex(UInt64(index << 3 | 7)))): \(Self.describe(e))")
      }
    }
    if differences.contains(where: { ["fcw", "fsw", "abridged ftw"].contains($0.field) || $0.field.hasPrefix("st") }) {
      lines.append("  initial x87: " + Self.x87(initial))
    }
    for d in differences { lines.append("  differs: \(d)") }
    return lines.joined(separator: "\n")
  }

  /// FCW, FSW, the abridged tag byte and ST(0)-ST(7) (sign and exponent, then significand).
  static func x87(_ s: MachineState) -> String {
    func field(_ offset: Int, _ count: Int) -> UInt64 {
      (0..<count).reduce(UInt64(0)) { $0 | UInt64(s.fx[offset + $1]) << (8 * UInt64($1)) }
    }
    let registers = (0..<8).map {
      "st\($0)=\(hex(field(FXLayout.st($0) + 8, 2))):\(hex(field(FXLayout.st($0), 8)))"
    }
    return "fcw=\(hex(field(FXLayout.fcw, 2))) fsw=\(hex(field(FXLayout.fsw, 2))) ftw=\(hex(field(FXLayout.ftw, 1))) "
      + registers.joined(separator: " ")
  }

  static func registers(_ s: MachineState) -> String {
    let count = s.isCompatibility ? 8 : 16
    var text =
      (0..<count).map { "\(MachineState.registerNames[$0])=\(hex(s.gpr[$0]))" }.joined(separator: " ")
      + " rflags=\(hex(s.rflags))"
    if s.isCompatibility {
      text += " " + zip(MachineState.segmentNames, s.segments).map { "\($0)=\(hex(UInt64($1)))" }.joined(separator: " ")
    }
    return text
  }

  /// An LDT entry in the terms of modify_ldt, with its descriptor.
  static func describe(_ e: LDTEntry) -> String {
    if e.empty { return "empty (all zero)" }
    let kind = ["data", "expand-down data", "code"][Int(e.contents.rawValue)]
    let access = e.readExecOnly ? (e.contents == .code ? " execute-only" : " read-only") : ""
    return "base \(hex(UInt64(e.base))) limit \(hex(UInt64(e.limit)))\(e.limitInPages ? " (pages)" : "") "
      + "\(e.is32Bit ? "32" : "16")-bit \(kind)\(access)\(e.notPresent ? " not present" : "") = \(hex(e.descriptor))"
  }
}

/// Totals of a run.
public struct DiffTestReport: Sendable {
  public var instructions = 0
  /// Of `instructions`, those the host reached: a program that faults does not run the
  /// instructions after the faulting one.
  public var executed = 0
  public var programs = 0
  public var mismatchCount = 0
  /// Runs the host could not finish (timeouts): not compared.
  public var skipped = 0
  public var perClass: [InstructionClass: (tested: Int, mismatched: Int)] = [:]
  /// How the host's runs ended ("completed", "#DE", "#PF" ...), to show faults are exercised.
  public var hostOutcomes: [String: Int] = [:]
  public var mismatches: [DiffMismatch] = []
  public var notes: [String] = []
  /// The engine the model ran 64-bit programs on.
  public var engine: DiffTestEngine = .interp
  /// Instructions the model retired (shrinking included), and of those the ones translated code
  /// completed (`.dbt`; the rest ran in the interpreter: instructions the translator leaves,
  /// side exits, faults).
  public var modelInstructions: UInt64 = 0
  public var translatedInstructions: UInt64 = 0
  /// The translator's counters at the end of the run (`.dbt`).
  public var translatorCounters: [(name: String, value: UInt64)] = []

  /// The share of the model's instructions that translated code completed, in percent.
  public var translatedShare: Double {
    modelInstructions == 0 ? 0 : Double(translatedInstructions) * 100 / Double(modelInstructions)
  }

  public var summary: String {
    var first =
      "difftest: \(instructions) instructions in \(programs) programs, \(mismatchCount) mismatching programs"
      + (skipped > 0 ? ", \(skipped) skipped (native timeout)" : "")
    if engine == .dbt {
      let share = (translatedShare * 10).rounded() / 10
      first +=
        "; dbt: \(translatedInstructions) of \(modelInstructions) model instructions translated (\(share) %)"
    }
    var lines = [first]
    lines.append("  executed on the host: \(executed) (the rest follow a fault in their program)")
    lines.append(
      "  host outcomes: "
        + hostOutcomes.sorted(by: { $0.value > $1.value }).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    for (c, v) in perClass.sorted(by: { $0.key < $1.key }) {
      lines.append(
        "  \(c.rawValue.padding(toLength: max(12, c.rawValue.count), withPad: " ", startingAt: 0)) \(v.tested) tested, \(v.mismatched) mismatches"
      )
    }
    return lines.joined(separator: "\n")
  }
}

/// Generates programs, runs them on the host and on the model, compares, and shrinks mismatches.
public final class DiffTester {
  public let options: DiffTestOptions
  let native: NativeRunner
  let model: ModelRunner
  let features: Set<HostFeature>
  var generator: ProgramSource
  public private(set) var notes: [String]

  public init(options: DiffTestOptions) throws(NativeRunnerError) {
    self.options = options
    let host = HostCPU.detect()
    var notes: [String] = []
    let inMode = options.classes.filter { $0.isAvailable(in: options.mode) }
    for c in options.classes where !c.isAvailable(in: options.mode) {
      notes.append("class '\(c.rawValue)' has no generator in mode \(options.mode.rawValue): skipped")
    }
    let usable = host.usableClasses(inMode)
    self.notes = notes + usable.notes
    features = host.features
    generator = ProgramSource(mode: options.mode, classes: usable.classes, features: host.features, seed: options.seed)
    native = try NativeRunner()
    model = try ModelRunner(vendor: host.vendor, engine: options.engine, paging: options.paging)
    model.fastPath = options.fastPath
  }

  /// Classes in which the model raises #UD on every instruction the host executes: not implemented.
  public func unimplementedClasses(_ classes: [InstructionClass], samples: Int = 24) throws(NativeRunnerError)
    -> [InstructionClass]
  {
    var missing: [InstructionClass] = []
    for c in classes where c != .invalid && c.isAvailable(in: options.mode) {
      var probe = ProgramSource(mode: options.mode, classes: [c], features: features, seed: options.seed ^ 0x5EED)
      var executedNatively = 0
      var implemented = false
      for _ in 0..<samples {
        let (state, program) = probe.nextTest(count: 1)
        let n = try native.run(code: program.code, initial: state)
        let m = model.run(code: program.code, initial: state)
        if case .fault(6, _) = n.outcome { continue }
        executedNatively += 1
        if case .fault(6, _) = m.outcome { continue }
        if case .other = m.outcome { continue }
        implemented = true
        break
      }
      if executedNatively > 0 && !implemented { missing.append(c) }
    }
    return missing
  }

  /// Runs the whole test. `progress` receives a line now and then.
  public func run(progress: (String) -> Void = { _ in }) throws(NativeRunnerError) -> DiffTestReport {
    var report = DiffTestReport()
    report.notes = notes
    report.engine = model.engine
    let retiredBefore = model.retiredInstructions
    let translatedBefore = model.translatedInstructions
    var lastProgress = 0
    while report.instructions < options.instructionCount {
      let length = min(options.programLength, options.instructionCount - report.instructions)
      let (initial, program) = generator.nextTest(count: max(1, length))
      report.programs += 1
      report.instructions += program.testedCount
      for i in program.instructions where !i.isSetup {
        report.perClass[i.instructionClass, default: (0, 0)].tested += 1
      }
      let n = try native.run(code: program.code, initial: initial)
      if case .other = n.outcome {
        report.skipped += 1
        continue
      }
      let stop = n.outcome == .completed ? UInt64.max : n.state.rip
      report.executed += zip(program.addresses, program.instructions).filter { !$1.isSetup && $0 <= stop }.count
      switch n.outcome {
      case .completed: report.hostOutcomes["completed", default: 0] += 1
      case .fault(let v, _): report.hostOutcomes[vectorName(v), default: 0] += 1
      case .other(let s): report.hostOutcomes[s, default: 0] += 1
      }
      let m = model.run(code: program.code, initial: initial)
      let diffs = StateComparison.differences(
        native: n, model: m, undefinedFlags: program.undefinedFlags(stoppedAt: n.state.rip),
        approximate: program.hasApproximations)
      if !diffs.isEmpty {
        report.mismatchCount += 1
        // Shrink every mismatch so the class of the culprit, not of the program's last instruction, is blamed.
        let reduced = try shrink(program, initial: initial, native: n, model: m, differences: diffs)
        report.perClass[reduced.instructionClass, default: (0, 0)].mismatched += 1
        if report.mismatches.count < options.keptMismatches { report.mismatches.append(reduced) }
      }
      if report.instructions - lastProgress >= 10_000 {
        lastProgress = report.instructions
        progress("  \(report.instructions) instructions, \(report.mismatchCount) mismatches")
      }
    }
    report.modelInstructions = model.retiredInstructions - retiredBefore
    report.translatedInstructions = model.translatedInstructions - translatedBefore
    report.translatorCounters = model.translatorCounters.map { ($0.name, $0.value) }
    return report
  }

  /// Reduces a mismatching program: the shortest failing prefix, then its last instruction alone
  /// from the state the host reached before it.
  func shrink(
    _ program: TestProgram, initial: MachineState, native n: RunResult, model m: RunResult,
    differences: [FieldDifference]
  ) throws(NativeRunnerError) -> DiffMismatch {
    var best = DiffMismatch(
      program: program, initial: initial, native: n, model: m, differences: differences,
      instructionClass: program.instructions.last(where: { !$0.isSetup })?.instructionClass ?? .alu,
      isSingleInstruction: program.instructions.count == 1)
    for k in 1...program.instructions.count {
      let prefix = program.prefix(k)
      let pn = try native.run(code: prefix.code, initial: initial)
      if case .other = pn.outcome { continue }
      let pm = model.run(code: prefix.code, initial: initial)
      let d = StateComparison.differences(
        native: pn, model: pm, undefinedFlags: prefix.undefinedFlags(stoppedAt: pn.state.rip),
        approximate: prefix.hasApproximations)
      if d.isEmpty { continue }
      let culprit = program.instructions[k - 1]
      best = DiffMismatch(
        program: prefix, initial: initial, native: pn, model: pm, differences: d,
        instructionClass: culprit.instructionClass, isSingleInstruction: k == 1)
      if k == 1 { return best }
      // Try the culprit alone, from the host's state before it.
      let before = program.prefix(k - 1)
      let pre = try native.run(code: before.code, initial: initial)
      guard pre.outcome == .completed else { return best }
      var start = pre.state
      start.rip = program.origin
      var single = culprit
      single.undefinedAfter = culprit.undefinedFlags
      let alone = TestProgram(instructions: [single], codeMode: program.codeMode, origin: program.origin)
      let an = try native.run(code: alone.code, initial: start)
      let am = model.run(code: alone.code, initial: start)
      let ad = StateComparison.differences(
        native: an, model: am, undefinedFlags: alone.undefinedFlags(stoppedAt: an.state.rip),
        approximate: alone.hasApproximations)
      if !ad.isEmpty {
        best = DiffMismatch(
          program: alone, initial: start, native: an, model: am, differences: ad,
          instructionClass: culprit.instructionClass, isSingleInstruction: true)
      }
      return best
    }
    return best
  }
}

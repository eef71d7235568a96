import ArgumentParser
import Oracles

struct DiffTestCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "difftest",
    abstract: "Compare the x86 model against the host CPU on random instructions.",
    discussion: """
      Generates random instruction sequences, runs each natively on the host (in a child process) \
      and on the model from the same state, and compares registers, RFLAGS (without the flags the \
      SDM leaves undefined), the sandbox memory and the fault raised. Mismatches are shrunk to a \
      single instruction where possible. Exits with status 1 when any mismatch occurs.

      --mode compat32 and --mode compat16 run 32- and 16-bit code in compatibility mode instead \
      (Linux on x86-64: the GDT's 32-bit user code selector or an LDT code segment, with LDT data \
      and stack segments installed through modify_ldt). Their classes cover segment register \
      loads and stores, stacks whose size differs from the code size, ENTER/LEAVE at every \
      nesting level, 16-bit string addressing, and segment limit, type and guard-page faults; the \
      segment selectors, fault error codes and CR2 are compared as well.

      --engine dbt (64-bit mode) runs the model with the dynamic binary translator attached, with \
      4-level paging at CPL 3 as the translator requires, each program in one run so translated \
      blocks execute; the summary gives the share of the model's instructions translated code \
      completed, and the run fails when it is zero. --paging runs the interpreter with the same \
      paged setup.

      --mode system --engine dbt compares the translator against the interpreter at system level, \
      without the host: random programs at CPL 0 and CPL 3 in 64-bit paged mode (with trips \
      through 32-bit compatibility mode) mixing the translated instruction forms with page faults \
      the guest's handler fixes, PTE writes with and without INVLPG or a CR3 reload, CR3 switches, \
      self-modifying code, CPUID, RDTSC(P) under the instruction clock, MSRs, SYSCALL/SYSRET/IRETQ, \
      INT n, port I/O, PUSHF/POPF with IF and TF, CLI/STI/HLT, debug registers, non-canonical \
      addresses, #DE and timer interrupts at random instruction counts. Each program runs on the \
      model with the translator attached and on the interpreter alone; the event sequences (port \
      accesses with values, interrupt deliveries, HLT, with instruction count, RIP and CPL), the \
      instruction counts, the whole CPU state and all memory must agree. --count is the number of \
      instructions to run, --items the items per program; a mismatch prints the seeds, the first \
      difference and the program (reduced to the items that still mismatch unless --no-reduce).
      """
  )

  @Option(
    help: ArgumentHelp(
      "Code to generate: \(DiffTestMode.allCases.map(\.rawValue).joined(separator: ", ")).",
      discussion:
        "64: 64-bit user code (default); compat32/compat16: compatibility mode with LDT segments; "
        + "system: dbt against interp on system-level programs (needs --engine dbt)."))
  var mode = "64"

  @Option(
    help: ArgumentHelp(
      "How the model runs 64-bit programs: \(DiffTestEngine.allCases.map(\.rawValue).joined(separator: ", ")).",
      discussion: "interp: the interpreter, one instruction at a time (default); dbt: the translator, whole programs."))
  var engine = "interp"
  @Flag(help: "Run 64-bit programs with 4-level paging at CPL 3 instead of flat (always so with --engine dbt).")
  var paging = false
  @Option(help: "Instructions under test to generate.") var count = 10_000
  @Option(help: "Random seed (the same seed reproduces the same run).") var seed: UInt64 = 1
  @Option(
    name: .customLong("class"),
    help: ArgumentHelp(
      "Only these instruction classes (repeatable or comma-separated).",
      discussion: "64-bit classes: \(InstructionClass.classes(for: .long64).map(\.rawValue).joined(separator: ", ")); "
        + "compat32/compat16 classes: \(InstructionClass.compatibilityClasses.map(\.rawValue).joined(separator: ", "))")
  )
  var classes: [String] = []
  @Option(help: "Instructions under test per program.") var length = 4
  @Option(help: "Mismatches to shrink and print in full.") var show = 10
  @Flag(help: "Print progress and every kept mismatch.") var verbose = false
  @Flag(help: "Run every instruction on the model's general path, without the pre-resolved fast handlers.")
  var noFastPath = false
  @Option(help: "--mode system: items (instruction groups) per program.") var items = 60
  @Flag(help: "--mode system: print mismatching programs whole instead of reduced.") var noReduce = false

  /// `--mode system`: the translator against the interpreter, no host CPU involved.
  func runSystem() throws {
    guard engine == "dbt" else {
      throw ValidationError("--mode system compares dbt against interp: give --engine dbt")
    }
    guard count > 0 else { throw ValidationError("--count must be positive") }
    guard (1...400).contains(items) else { throw ValidationError("--items must be 1...400") }
    var options = SystemDiffOptions(instructionCount: UInt64(count), seed: seed)
    options.itemsPerProgram = items
    options.reduce = !noReduce
    options.keptMismatches = max(show, 0)
    let tester: SystemDiffTester
    do { tester = try SystemDiffTester(options: options) } catch { throw ValidationError(error.description) }
    print("difftest: \(count) instructions, seed \(seed), mode system (dbt against interp), \(items) items per program")
    let report = tester.run { line in if verbose || line.hasPrefix("MISMATCH") { print(line) } }
    for m in report.mismatches {
      print("")
      print(m)
    }
    if verbose {
      for (name, value) in report.translatorCounters { print("  \(name): \(value)") }
    }
    print("")
    print(report.summary)
    if report.mismatchCount > 0 { throw ExitCode(1) }
    if report.translatedInstructions == 0 {
      print("difftest: the translator completed no instruction: nothing was tested on dbt")
      throw ExitCode(1)
    }
  }

  func run() throws {
    if mode == "system" { return try runSystem() }
    guard let mode = DiffTestMode(rawValue: mode) else {
      throw ValidationError(
        "unknown mode '\(self.mode)'; known: \(DiffTestMode.allCases.map(\.rawValue).joined(separator: ", ")), system")
    }
    guard let engine = DiffTestEngine(rawValue: engine) else {
      throw ValidationError(
        "unknown engine '\(self.engine)'; known: \(DiffTestEngine.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    if mode.isCompatibility && (engine == .dbt || paging) {
      throw ValidationError("--engine dbt and --paging apply to --mode 64 (compatibility mode always pages)")
    }
    if engine == .dbt && noFastPath {
      throw ValidationError("--engine dbt translates the fast forms: it cannot run with --no-fast-path")
    }
    var selected: [InstructionClass] = []
    for name in classes.flatMap({ $0.split(separator: ",").map(String.init) }) {
      guard let c = InstructionClass(rawValue: name) else {
        throw ValidationError(
          "unknown class '\(name)'; known: \(InstructionClass.allCases.map(\.rawValue).joined(separator: ", "))")
      }
      selected.append(c)
    }
    guard count > 0 else { throw ValidationError("--count must be positive") }
    guard (1...64).contains(length) else { throw ValidationError("--length must be 1...64") }
    for c in selected where !c.isAvailable(in: mode) {
      throw ValidationError("class '\(c.rawValue)' is not generated in mode \(mode.rawValue)")
    }
    // Approximate results (compared within a tolerance) feed the instructions after them: an
    // exact class next to them would report the tolerance's differences as its own.
    for c in [InstructionClass.rcp, .x87Transcendental] where selected.contains(c) && Set(selected).count > 1 {
      throw ValidationError("class '\(c.rawValue)' compares approximate results: run it alone (--class \(c.rawValue))")
    }
    var options = DiffTestOptions(
      instructionCount: count, seed: seed, classes: selected.isEmpty ? nil : selected, mode: mode)
    options.programLength = length
    options.keptMismatches = max(show, 0)
    options.fastPath = !noFastPath
    options.engine = engine
    options.paging = paging
    let tester: DiffTester
    do { tester = try DiffTester(options: options) } catch { throw ValidationError(error.description) }
    for note in tester.notes { print("note: \(note)") }
    print(
      "difftest: \(count) instructions, seed \(seed), mode \(mode.rawValue), engine \(engine.rawValue)"
        + (engine == .interp && paging ? " (paging)" : "") + (noFastPath ? ", general path only" : "") + ", classes: "
        + options.classes.map(\.rawValue).joined(separator: " ")
    )
    let report: DiffTestReport
    do {
      report = try tester.run { line in print(line) }
    } catch { throw ValidationError(error.description) }
    for (i, m) in report.mismatches.enumerated() where verbose || i < show {
      print("")
      print(m.report)
    }
    if verbose {
      for (name, value) in report.translatorCounters { print("  \(name): \(value)") }
    }
    print("")
    print(report.summary)
    if report.mismatchCount > 0 { throw ExitCode(1) }
    if engine == .dbt && report.translatedInstructions == 0 {
      print("difftest: the translator completed no instruction: nothing was tested on dbt")
      throw ExitCode(1)
    }
  }
}

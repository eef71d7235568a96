import TestHostSupport
import Testing

@testable import Oracles

/// The model against the host CPU: a bounded random run that must show no mismatch.
@Test(.requires(.nativeX86Linux)) func modelMatchesHostCPUOnRandomPrograms() throws {
  let instructions = 30_000
  var options = DiffTestOptions(instructionCount: instructions, seed: 0x7121_5150)
  options.keptMismatches = 10
  let probe = try DiffTester(options: options)
  for note in probe.notes { print("note: \(note)") }
  let missing = try probe.unimplementedClasses(InstructionClass.allCases)
  if !missing.isEmpty {
    print(
      "difftest: classes the model does not implement at all, left out: \(missing.map(\.rawValue).joined(separator: ", "))"
    )
    options.classes = InstructionClass.defaultClasses(for: .long64).filter { !missing.contains($0) }
  }
  let tester = try DiffTester(options: options)
  let report = try tester.run()
  print(report.summary)
  for m in report.mismatches.prefix(5) { print(m.report) }
  #expect(report.instructions >= instructions)
  #expect(report.mismatchCount == 0, "\(report.mismatchCount) programs differ between the host CPU and the model")
}

/// The 64-bit difftest with the model paged at CPL 3 (`--paging`) on the interpreter, and with the
/// translator attached (`--engine dbt`, always paged): no mismatch, and on dbt translated code
/// must have completed a good share of the model's instructions (the helpers, ALU, moves, shifts,
/// CMOV/SETcc, stack and branches it covers), not just a few.
@Test(.requires(.nativeX86Linux), arguments: [DiffTestEngine.interp, .dbt])
func pagedModelMatchesHostCPUOnRandomPrograms(engine: DiffTestEngine) throws {
  let instructions = 5_000
  var options = DiffTestOptions(instructionCount: instructions, seed: 0xDB7_2026)
  options.engine = engine
  options.paging = true
  options.keptMismatches = 5
  let tester = try DiffTester(options: options)
  let report = try tester.run()
  print(report.summary)
  for m in report.mismatches { print(m.report) }
  #expect(report.instructions >= instructions)
  #expect(report.mismatchCount == 0, "\(report.mismatchCount) programs differ between the host CPU and the model")
  #expect(report.hostOutcomes["#PF", default: 0] > 0, "no program page-faulted")
  if engine == .dbt {
    #expect(report.translatedShare > 20, "translated share \(report.translatedShare) %")
  } else {
    #expect(report.translatedInstructions == 0)
  }
}

/// The x87 classes against the host: the exact one (everything but the transcendentals) and
/// the transcendentals, compared within an ulp. Short runs; `difftest --class` runs the millions.
@Test(.requires(.nativeX86Linux), arguments: [InstructionClass.x87, .x87Transcendental])
func x87MatchesHostCPU(instructionClass: InstructionClass) throws {
  var options = DiffTestOptions(instructionCount: 3_000, seed: 0x87_2026)
  options.classes = [instructionClass]
  options.keptMismatches = 5
  let report = try DiffTester(options: options).run()
  print(report.summary)
  for m in report.mismatches { print(m.report) }
  #expect(report.instructions >= 3_000)
  #expect(report.mismatchCount == 0, "\(report.mismatchCount) programs differ between the host CPU and the model")
  #expect(report.hostOutcomes["#MF", default: 0] > 0, "no unmasked x87 exception reached #MF")
}

/// The undefined-flag masks for shifts and rotates follow the SDM's "Flags Affected" rules.
@Test func undefinedFlagMasksFollowTheSDM() {
  // SHL by 1: OF defined, AF undefined. By 2: OF undefined. By 0: nothing changes.
  let one = ProgramGenerator.shiftFlags(kind: 4, width: 32, count: 1)
  #expect(one.defines & FlagBits.of != 0 && one.undefines == FlagBits.af)
  let two = ProgramGenerator.shiftFlags(kind: 4, width: 32, count: 2)
  #expect(two.undefines == FlagBits.af | FlagBits.of)
  let zero = ProgramGenerator.shiftFlags(kind: 4, width: 32, count: 32)
  #expect(zero.defines == 0 && zero.undefines == 0)
  // 8-bit SHR by 9 (>= width): CF undefined too.
  let wide = ProgramGenerator.shiftFlags(kind: 5, width: 8, count: 9)
  #expect(wide.undefines & FlagBits.cf != 0)
  // Rotates never touch SF/ZF/AF/PF.
  let rotate = ProgramGenerator.shiftFlags(kind: 0, width: 64, count: 3)
  #expect(rotate.defines == FlagBits.cf && rotate.undefines == FlagBits.of)
}

/// The encoder produces the bytes the SDM gives for a few known forms.
@Test func encoderProducesKnownEncodings() {
  var e = Encoder()
  e.emit(size: 64, opcode: [0x03], reg: 0, rm: .memory(base: 4, index: nil, scale: 1, displacement: 8))
  #expect(e.bytes == [0x48, 0x03, 0x44, 0x24, 0x08])  // add rax, [rsp + 8]
  e = Encoder()
  e.emit(size: 32, opcode: [0x8B], reg: 9, rm: .memory(base: 13, index: 10, scale: 4, displacement: 0))
  #expect(e.bytes == [0x47, 0x8B, 0x4C, 0x95, 0x00])  // mov r9d, [r13 + 4*r10]
  e = Encoder()
  e.emit(size: 16, opcode: [0xC1], reg: 4, rm: .register(8), immediate: [3])
  #expect(e.bytes == [0x66, 0x41, 0xC1, 0xE0, 0x03])  // shl r8w, 3
  e = Encoder()
  e.emit(size: 8, opcode: [0x88], reg: 6, rm: .register(7), forceREX: true)
  #expect(e.bytes == [0x40, 0x88, 0xF7])  // mov dil, sil
}

/// The comparison reports register, RFLAGS, sandbox and outcome differences, and ignores only
/// the flags it is told are undefined.
@Test func stateComparisonFindsDifferences() {
  let base = MachineState(gpr: Array(repeating: 0, count: 16), rip: 0x1000_0000, rflags: 0x202, sandbox: [0, 0, 0])
  var other = base
  other.gpr[3] = 7
  other.rflags = 0x202 | FlagBits.af | FlagBits.cf
  other.sandbox[1] = 9
  let native = RunResult(outcome: .completed, state: base)
  let model = RunResult(outcome: .fault(vector: 6, errorCode: 0), state: other)
  let all = StateComparison.differences(native: native, model: model, undefinedFlags: 0).map(\.field)
  #expect(all.contains("outcome") && all.contains("rbx"))
  #expect(all.contains { $0.hasPrefix("rflags") } && all.contains { $0.hasPrefix("sandbox") })
  var sameButAF = base
  sameButAF.rflags |= FlagBits.af
  let masked = StateComparison.differences(
    native: native, model: RunResult(outcome: .completed, state: sameButAF), undefinedFlags: FlagBits.af)
  #expect(masked.isEmpty)
}

/// The compatibility-mode oracles: 32- and 16-bit code with LDT segments of its own, a short run
/// with a fixed seed that must show no mismatch and must reach every class and every kind of
/// fault the classes aim at.
@Test(.requires(.nativeX86Linux, .compatibilityMode), arguments: [DiffTestMode.compat32, .compat16])
func modelMatchesHostCPUInCompatibilityMode(mode: DiffTestMode) throws {
  let instructions = 20_000
  var options = DiffTestOptions(instructionCount: instructions, seed: 0x1D7_2026, mode: mode)
  options.keptMismatches = 5
  let tester = try DiffTester(options: options)
  let report = try tester.run()
  print(report.summary)
  for m in report.mismatches { print(m.report) }
  #expect(report.instructions >= instructions)
  #expect(report.mismatchCount == 0, "\(report.mismatchCount) programs differ between the host CPU and the model")
  for c in InstructionClass.compatibilityClasses {
    #expect((report.perClass[c]?.tested ?? 0) > 0, "class \(c.rawValue) not generated")
  }
  for outcome in ["completed", "#GP", "#SS", "#NP", "#PF", "#UD"] {
    #expect(report.hostOutcomes[outcome, default: 0] > 0, "no program ended with \(outcome)")
  }
}

/// Each mode generates its own classes: ENTER/LEAVE in all three, the segment classes only in
/// compatibility mode, every other class only in 64-bit mode; a run without classes takes all of
/// its mode's but `rcp` and `x87-transcendental` (approximations, compared with a tolerance only
/// on their own) and the x87 classes (random x87 states, run on their own).
@Test func modesGenerateTheirOwnClasses() {
  let long = InstructionClass.classes(for: .long64)
  #expect(long.contains(.enterLeave) && long.contains(.alu) && !long.contains(.segmentLoad))
  #expect(Set(long).union(InstructionClass.compatibilityClasses) == Set(InstructionClass.allCases))
  #expect(InstructionClass.classes(for: .compat16) == InstructionClass.compatibilityClasses)
  #expect(
    DiffTestOptions(instructionCount: 1, seed: 1).classes
      == long.filter { ![.rcp, .x87, .x87All, .x87Transcendental].contains($0) })
  #expect(long.contains(.rcp))
}

/// An LDT entry's descriptor is the one modify_ldt installs: DPL 3, accessed, P from
/// seg_not_present, type from contents and read_exec_only, D/B and G from their fields.
@Test func ldtEntriesEncodeTheDescriptorsLinuxInstalls() {
  let data = LDTEntry(base: 0x1000_2000, limit: 0x1FFF, is32Bit: true, contents: .data)
  #expect(data.descriptor == 0x1040_F300_2000_1FFF)
  let code16 = LDTEntry(base: 0x1000_0000, limit: 0xFFF, is32Bit: false, contents: .code, readExecOnly: true)
  #expect(code16.descriptor == 0x1000_F900_0000_0FFF)
  var down = LDTEntry(
    base: 0xFFFF_F000, limit: 0xF_FFFE, is32Bit: true, contents: .expandDownData, limitInPages: true, notPresent: true)
  #expect(down.descriptor == 0xFFCF_77FF_F000_FFFE)
  down.empty = true
  #expect(down.descriptor == 0)
  // Selectors resolve through Linux's GDT layout and the LDT; out-of-table ones do not.
  #expect(CompatDescriptorTables.descriptor(0x2B, ldt: [data]) == 0x00CF_F300_0000_FFFF)
  #expect(CompatDescriptorTables.descriptor(0x07, ldt: [data]) == data.descriptor)
  #expect(CompatDescriptorTables.descriptor(0x0F, ldt: [data]) == nil)
  #expect(CompatDescriptorTables.descriptor(0x83, ldt: [data]) == nil)
}

/// Generated compatibility-mode tests start from loadable selectors (the native trampoline loads
/// them before the first instruction), with a stack in the sandbox, and fit the code page.
@Test(arguments: [DiffTestMode.compat32, .compat16])
func compatibilityTestsStartFromLoadableSelectors(mode: DiffTestMode) {
  var generator = CompatProgramGenerator(mode: mode, classes: InstructionClass.compatibilityClasses, seed: 7)
  for _ in 0..<2000 {
    let (initial, program) = generator.nextTest(count: 4)
    #expect(initial.ldt.count == 16 && initial.segments.count == 6)
    #expect(program.code.count <= 0xE00)
    #expect(generator.predictLoad(initial.segments[2], into: 2) != nil, "SS \(initial.segments[2])")
    for register in [0, 3, 4, 5] {
      #expect(generator.predictLoad(initial.segments[register], into: register) != nil)
    }
    let cs = CompatDescriptorTables.cache(initial.segments[1], ldt: initial.ldt)
    #expect(cs.attributes & 0x8 != 0 && (cs.attributes & 0x4000 != 0) == (mode == .compat32))
    #expect(initial.rip == (mode == .compat16 ? 0 : 0x1000_0000))
    // RAX-RDI start with clear upper halves: compatibility-mode code cannot set them.
    #expect(initial.gpr.prefix(8).allSatisfy { $0 >> 32 == 0 })
  }
}

import Interpreter
import Testing
import Translator
import VMM
import X86

@testable import StaticTranslator

/// Flag liveness across blocks (`FlagLiveness`) on hand-written control-flow graphs, and a guest
/// whose flags cross block boundaries run on interp, dbt and sbt with the same state at every
/// stop.
struct FlagLivenessTests {
  typealias Step = BlockCompiler.FlagStep
  static let all = FlagLiveness.all
  static let cf: UInt64 = 0x1
  static let zf: UInt64 = 0x40
  static let of: UInt64 = 0x800

  /// A step that writes every flag (CMP, ADD...).
  static let writeAll = Step(reads: 0, writes: 0x8D5)
  /// A step that touches no flag (MOV).
  static let move = Step(reads: 0, writes: 0)

  @Test func aSuccessorThatWritesFirstMakesFlagsDeadAcrossTheBranch() {
    // A: MOV; JMP B. B: CMP; JZ (end, to C and D, both writing first).
    let graph: [UInt64: FlagLiveness.Node] = [
      0x100: .init(steps: [Self.move, Self.move], successors: [0x200]),
      0x200: .init(steps: [Self.writeAll, Step(reads: Self.zf, writes: 0)], successors: [0x300, 0x400]),
      0x300: .init(steps: [Self.writeAll], successors: [0x100]),
      0x400: .init(steps: [Self.writeAll], successors: [0x100]),
    ]
    let l = FlagLiveness(graph)
    #expect(l.liveIn == [0x100: 0, 0x200: 0, 0x300: 0, 0x400: 0])
  }

  @Test func aReadInTheSuccessorKeepsThatFlagLiveInThePredecessor() {
    // A: TEST; JMP B. B: JZ (reads ZF) as its first instruction, then a loop back to A through C.
    let graph: [UInt64: FlagLiveness.Node] = [
      0x100: .init(steps: [Self.move, Self.writeAll, Self.move], successors: [0x200]),
      0x200: .init(steps: [Step(reads: Self.zf, writes: 0)], successors: [0x300, 0x100]),
      0x300: .init(steps: [Self.move], successors: [0x100]),
    ]
    let l = FlagLiveness(graph)
    #expect(l.live(at: 0x200) == Self.zf)
    #expect(l.live(at: 0x100) == 0)
    // C passes through to A, which writes before reading: dead there too.
    #expect(l.live(at: 0x300) == 0)
  }

  @Test func unknownSuccessorsSideExitsAndReturnsMeanEveryFlagLive() {
    let graph: [UInt64: FlagLiveness.Node] = [
      // Falls into a block outside the graph.
      0x100: .init(steps: [Self.move], successors: [0x999]),
      // Ends in RET (successor unknown).
      0x200: .init(steps: [Self.move], successors: [nil]),
      // A memory operand that may side-exit before the first flag write.
      0x300: .init(steps: [Step(reads: 0, writes: 0, mayLeaveBefore: true), Self.writeAll], successors: [0x400]),
      // The same after the write: the write comes first, dead at the start.
      0x400: .init(steps: [Self.writeAll, Step(reads: 0, writes: 0, mayLeaveBefore: true)], successors: [0x400]),
    ]
    let l = FlagLiveness(graph)
    #expect(l.live(at: 0x100) == Self.all)
    #expect(l.live(at: 0x200) == Self.all)
    #expect(l.live(at: 0x300) == Self.all)
    #expect(l.live(at: 0x400) == 0)
    #expect(l.live(at: 0x999) == Self.all)
    #expect(l.live(at: nil) == Self.all)
  }

  @Test func aConditionalBranchInsideABlockAddsItsTargetsFlags() {
    // A: MOV; JZ inside the block to C (reads OF first); MOV; JMP B (writes first).
    let graph: [UInt64: FlagLiveness.Node] = [
      0x100: .init(
        steps: [Self.move, Step(reads: Self.zf, writes: 0, takenTo: 0x300), Self.move], successors: [0x200]),
      0x200: .init(steps: [Self.writeAll], successors: [nil]),
      0x300: .init(steps: [Step(reads: Self.of, writes: 0), Self.writeAll], successors: [nil]),
    ]
    let l = FlagLiveness(graph)
    #expect(l.live(at: 0x100) == Self.zf | Self.of)
  }

  @Test func partialWritesAndLoopsReachTheFixedPoint() {
    // A loop of three blocks: A writes all but CF (INC), B reads CF (ADC) after C... C writes all.
    // A -> B -> C -> A: CF is live at A (B reads it, A does not write it), live at C's end only
    // through A.
    let inc = Step(reads: 0, writes: 0x8D5 & ~Self.cf)
    let adc = Step(reads: Self.cf, writes: 0x8D5)
    let graph: [UInt64: FlagLiveness.Node] = [
      0x100: .init(steps: [inc], successors: [0x200]),
      0x200: .init(steps: [adc], successors: [0x300]),
      0x300: .init(steps: [Self.writeAll], successors: [0x100, nil]),
    ]
    let l = FlagLiveness(graph)
    #expect(l.live(at: 0x200) == Self.cf)
    #expect(l.live(at: 0x100) == Self.cf)
    #expect(l.live(at: 0x300) == 0)
    #expect(l.rounds >= 2)
  }

  @Test func discoveredBlocksGiveTheBackEndsSteps() throws {
    // The crossing guest's blocks: the loop head (ADD first) and Q (SUB first) are dead at their
    // start; P (JZ first) needs ZF.
    let report = try StaticTestGuest.translation(of: Self.crossingGuest, mode: .protected32)
    #expect(report.blocksSkipped == 0)
    #expect(report.hostFlagsEntries >= 3)
    #expect(report.hostFlagsExits >= 2)
    let byRIP = Dictionary(report.file.blocks.map { ($0.linear, $0.code) }, uniquingKeysWith: { a, _ in a })
    #expect(byRIP[0x10009]?.hostFlagsEntry != nil)  // loop: ADD writes every flag first
    #expect(byRIP[0x10027]?.hostFlagsEntry != nil)  // Q: SUB first
    #expect(byRIP[0x1001E]?.hostFlagsEntry == nil)  // P: JZ reads ZF from the block before
    // The loop block's exit to P keeps the flags (JZ reads them): an ordinary link.
    #expect(byRIP[0x10009]?.hostFlagsLinks.contains { $0.target == 0x1001E } == false)
    #expect(byRIP[0x10009]?.links.contains { $0.target == 0x1001E } == true)
    // E's CMP, dead at Q: leaves with the flags uncaptured.
    #expect(byRIP[0x10023]?.hostFlagsLinks.contains { $0.target == 0x10027 } == true)
  }

  /// Flat 32-bit code whose flags cross block boundaries both ways: a loop of ADD/CMP/JB (over a
  /// SUB), TEST CL,1 then JMP to a block that starts with JZ (ZF read across the branch), ADD
  /// ESI,3, CMP ESI,EBX then JMP to a block that starts with SUB ECX,1 (flags dead across the
  /// branch), JNZ back to the loop's head (whose ADD writes every flag first), PUSHFD, HLT.
  /// Offsets: loop 0x09, L1 0x19, P 0x1E, E 0x23, Q 0x27, PUSHFD 0x2C.
  static let crossingGuest: [UInt8] = [
    0xB9, 0x2C, 0x01, 0x00, 0x00,  // mov ecx, 300
    0x31, 0xDB,  // xor ebx, ebx
    0x31, 0xF6,  // xor esi, esi
    0x01, 0xCB,  // loop: add ebx, ecx
    0x81, 0xFB, 0xE8, 0x03, 0x00, 0x00,  // cmp ebx, 1000
    0x72, 0x06,  // jb L1
    0x81, 0xEB, 0xE8, 0x03, 0x00, 0x00,  // sub ebx, 1000
    0xF6, 0xC1, 0x01,  // L1: test cl, 1
    0xEB, 0x00,  // jmp P
    0x74, 0x03,  // P: jz E
    0x83, 0xC6, 0x03,  // add esi, 3
    0x39, 0xDE,  // E: cmp esi, ebx
    0xEB, 0x00,  // jmp Q
    0x83, 0xE9, 0x01,  // Q: sub ecx, 1
    0x75, 0xDD,  // jnz loop
    0x9C,  // pushfd
    0xF4,  // hlt
    0xEB, 0xFD,  // jmp hlt
  ]

  /// What a run did: every stop's registers, RIP and RFLAGS, the final stack word PUSHFD wrote,
  /// instructions retired.
  struct Outcome: Equatable {
    var trace: [[UInt64]] = []
    var pushed: [UInt8] = []
    var retired: UInt64 = 0
  }

  /// Runs the crossing guest in slices of `budgets` (cycled) on the interpreter, `dbt`, or `sbt`
  /// with `set`.
  static func run(engine: String, set: StaticTranslationSet?, budgets: [UInt64]) throws -> (
    Outcome, DynamicTranslator?
  ) {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(StaticTestGuest.base, bytes: crossingGuest)
    let vcpu = InterpreterVirtualCPU(memory: memory, deterministic: true)
    let translator = engine == "interp" ? nil : try DynamicTranslator(codeBytes: 4 << 20)
    if engine == "sbt", let set { translator?.staticBlocks = StaticBlockIndex(set) }
    vcpu.cpu.blockExecutor = translator
    var sregs = SpecialRegisters()
    sregs.cr0 = 0x11
    let data = Segment(selector: 0x10, base: 0, limit: 0xFFFF_FFFF, type: 3, db: true, g: true)
    sregs.cs = Segment(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, type: 11, db: true, g: true)
    (sregs.ds, sregs.es, sregs.ss, sregs.fs, sregs.gs) = (data, data, data, data, data)
    try vcpu.setSpecialRegisters(sregs)
    var regs = Registers()
    regs.rip = StaticTestGuest.base
    regs.rsp = 0x80000
    regs.rflags = 0x2
    try vcpu.setRegisters(regs)
    var outcome = Outcome()
    for i in 0..<100_000 {
      let exit = try vcpu.run(budget: budgets[i % budgets.count])
      guard case .budgetExhausted = exit else { break }
      let r = try vcpu.registers()
      outcome.trace.append((0..<8).map { r[encoding: $0] } + [r.rip, r.rflags])
    }
    let final = try vcpu.registers()
    outcome.trace.append((0..<8).map { final[encoding: $0] } + [final.rip, final.rflags])
    outcome.pushed = try memory.read(0x80000 - 4, count: 4)
    outcome.retired = vcpu.instructionsRetired ?? 0
    return (outcome, translator)
  }

  @Test(arguments: [[UInt64(1_000_000)], [37, 101, 13, 64, 5, 250, 1], [1], [2], [3], [7]])
  func flagsCrossingBlocksGiveTheSameStateAtEveryStop(budgets: [UInt64]) throws {
    let report = try StaticTestGuest.translation(of: Self.crossingGuest, mode: .protected32)
    let set = StaticTranslationSet(report.file)
    let (interp, _) = try Self.run(engine: "interp", set: nil, budgets: budgets)
    let (dbt, _) = try Self.run(engine: "dbt", set: nil, budgets: budgets)
    let (sbt, translator) = try Self.run(engine: "sbt", set: set, budgets: budgets)
    // 300 rounds of 8 to 10 instructions, then PUSHFD and HLT.
    #expect(interp.retired > 2400)
    #expect(dbt == interp)
    #expect(sbt == interp)
    let t = try #require(translator)
    // Slices of one instruction never enter generated code (every block is longer).
    if budgets != [1] {
      #expect(t.statistics.staticBlocksInstalled >= 5)
      #expect(t.statistics.staticTranslatedInstructions > 0)
    }
    if budgets == [1_000_000] {
      // One long slice: the branches to the host-flags entries were linked when the page's blocks
      // went in, and the loop ran in file code.
      #expect(t.statistics.hostFlagsLinksPatched >= 2)
      #expect(t.statistics.staticBlocksInstalledAhead >= 3)
      #expect(t.statistics.staticTranslatedInstructions > 2400)
    }
  }
}

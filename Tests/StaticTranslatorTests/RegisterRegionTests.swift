import Interpreter
import Testing
import Translator
import VMM
import X86

@testable import StaticTranslator

/// Register allocation across blocks (`RegisterRegions`, `BlockCompiler.RegisterRegion`): a loop
/// over several blocks with a call inside gets one assignment for all its blocks and the
/// function it calls, its direct branches keep the registers live, and it runs alike on interp,
/// dbt and sbt: same output and status, and after a fault in the middle of the loop the same
/// registers and flags, the fault precise.
struct RegisterRegionTests {
  /// The loop's blocks (`StaticTestGuest.regionLoopWithFault` offsets): its head with the odd way
  /// (a superblock goes on after JZ), the even way, the join with the poison, the loop's end,
  /// and f.
  static let loopBlocks: [UInt64] = [0x21, 0x38, 0x3F, 0x54, 0x70].map { StaticTestGuest.base + $0 }

  static func engines(for guest: [UInt8]) throws -> [(String, any Engine)] {
    let file = try StaticTestGuest.translation(of: guest).file
    return [
      ("interp", InterpreterEngine()),
      ("dbt", TranslatorEngine()),
      ("sbt", StaticTranslatorEngine(translations: StaticTranslationSet(file))),
    ]
  }

  @Test func theLoopAndItsCalleeShareOneAssignment() throws {
    let report = try StaticTestGuest.translation(of: StaticTestGuest.regionLoopWithFault)
    #expect(report.blocksSkipped == 0)
    let region = try #require(report.registerRegions.first { $0.contains(Self.loopBlocks[0]) })
    for rip in Self.loopBlocks { #expect(region.contains(rip), "0x\(String(rip, radix: 16)) in the region") }
    // The code before the loop and after it is in no region.
    #expect(!region.contains(StaticTestGuest.base))
    #expect(!region.contains(StaticTestGuest.base + 0x58))
    // Per privilege class: the head's JZ and JMP, the even way's CALL, the join's JNE and JNZ,
    // the end's JNZ.
    #expect(report.registerLiveExits == 2 * 6)

    // The analysis itself: every block of the region has the same six registers, the most used
    // ones of the loop (among them EBX and ECX), and only blocks some member branches to get the
    // entry.
    let cpu = CPU(model: .host64, memory: TestCodeMemory(StaticTestGuest.regionLoopWithFault))
    var graph: [UInt64: RegisterRegions.Node] = [:]
    for rip in Self.loopBlocks + [StaticTestGuest.base] {
      let b = GuestBlock.read(from: cpu, rip: rip, physical: rip, mode: .long64)
      graph[rip] = RegisterRegions.Node(b)
    }
    let regions = RegisterRegions(graph)
    let decisions = Self.loopBlocks.compactMap { regions.decisions[$0] }
    #expect(decisions.count == Self.loopBlocks.count)
    let guests = try #require(decisions.first?.guests)
    #expect(guests.count == 6 && guests.contains(3) && guests.contains(1))
    #expect(decisions.allSatisfy { $0.guests == guests })
    // The head is reached from the loop's end and the join; f from the even way.
    #expect(regions.decisions[Self.loopBlocks[0]]?.liveEntry == true)
    #expect(regions.decisions[Self.loopBlocks[4]]?.liveEntry == true)
    #expect(regions.decisions[Self.loopBlocks[3]]?.liveTargets.contains(Self.loopBlocks[0]) == true)
    #expect(regions.decisions[Self.loopBlocks[1]]?.liveTargets == [Self.loopBlocks[4]])
    #expect(regions.decisions[StaticTestGuest.base] == nil)
    // What a block before it may leave unstored: at the head, EBX (written on every way round).
    let head = try #require(regions.decisions[Self.loopBlocks[0]])
    #expect(head.dirtyAtEntry & (1 << 3) != 0)

    // The file's code for those blocks has the entries and links.
    let file = report.file.blocks.filter { !$0.user && region.contains($0.linear) }
    #expect(file.count == region.count)
    #expect(file.contains { $0.code.registerLiveEntry != nil })
    #expect(file.contains { !$0.code.registerLiveLinks.isEmpty })
  }

  @Test func theLoopRunsAlikeOnEveryEngineWithRegistersLive() throws {
    let guest = StaticTestGuest.regionLoop
    var runs: [String: StaticTestGuest.Run] = [:]
    for (name, engine) in try Self.engines(for: guest) { runs[name] = try StaticTestGuest.run(guest, on: engine) }
    let interp = try #require(runs["interp"])
    #expect(interp.output.hasPrefix("R") && interp.output.count == 2)
    for name in ["dbt", "sbt"] {
      let run = try #require(runs[name])
      #expect(run.output == interp.output, "\(name)")
      #expect(run.status == interp.status, "\(name)")
    }
    let sbt = try #require(runs["sbt"])
    // The region's branches were linked register-live, and the loop ran from the file.
    #expect((sbt.counters["sbt-register-live-links"] ?? 0) >= 5)
    #expect((sbt.counters["sbt-static-instructions"] ?? 0) >= 300 * 10)
    #expect(runs["dbt"]?.counters["sbt-register-live-links"] == nil)
  }

  @Test func aFaultInTheMiddleOfTheLoopLeavesExactState() throws {
    let guest = StaticTestGuest.regionLoopWithFault
    var registers: [String: Registers] = [:]
    var sbtCounters: [String: UInt64] = [:]
    for (name, engine) in try Self.engines(for: guest) {
      let run = try StaticTestGuest.run(guest, on: engine)
      registers[name] = try #require(run.registers, "\(name) stopped with a triple fault")
      if name == "sbt" { sbtCounters = run.counters }
    }
    let interp = try #require(registers["interp"])
    // Stopped at the load, in the last round (ECX = 1), its ADD done.
    #expect(interp.rip == StaticTestGuest.base + 0x23)
    #expect(interp.rcx == 1)
    #expect(interp.rsi == 1 << 63)
    for name in ["dbt", "sbt"] {
      // Every general register, RIP and RFLAGS as the interpreter left them.
      #expect(registers[name] == interp, "\(name)")
    }
    #expect((sbtCounters["sbt-register-live-links"] ?? 0) >= 5)
  }

  /// `StaticTestGuest.regionLoopWithFault` with its first OUT made NOPs (a bare vCPU would stop
  /// at it).
  static var quietGuest: [UInt8] {
    var guest = StaticTestGuest.regionLoopWithFault
    for i in 0x05..<0x08 { guest[i] = 0x90 }
    return guest
  }

  /// Runs `quietGuest` in slices of `budgets`
  /// (cycled) on the interpreter, `dbt`, or `sbt` with `set`, to its first stop that is not an
  /// exhausted budget (the #GP's triple fault): every stop's general registers, RIP and RFLAGS,
  /// and the translator.
  static func slicedRun(engine: String, set: StaticTranslationSet?, budgets: [UInt64]) throws -> (
    [[UInt64]], DynamicTranslator?
  ) {
    let guest = quietGuest
    let memory = try GuestMemory(ramSize: 8 << 20)
    try memory.write(StaticTestGuest.base, bytes: guest)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: StaticTestGuest.base)
    let vcpu = InterpreterVirtualCPU(memory: memory, deterministic: true)
    let translator = engine == "interp" ? nil : try DynamicTranslator(codeBytes: 4 << 20)
    if engine == "sbt", let set { translator?.staticBlocks = StaticBlockIndex(set) }
    vcpu.cpu.blockExecutor = translator
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setMSRs(boot.msrs)
    try vcpu.setRegisters(boot.registers)
    var trace: [[UInt64]] = []
    for i in 0..<200_000 {
      let exit = try vcpu.run(budget: budgets[i % budgets.count])
      let r = try vcpu.registers()
      trace.append((0..<16).map { r[encoding: $0] } + [r.rip, r.rflags])
      guard case .budgetExhausted = exit else { break }
    }
    return (trace, translator)
  }

  /// The loop stopped after every budget, including budgets that end inside a block or at a
  /// register-live entry (which then writes back what the block before left unstored): the same
  /// registers, RIP and flags at every stop on the three engines.
  @Test(arguments: [[UInt64(1_000_000)], [37, 101, 13, 64, 5, 250, 1], [7], [11], [13], [50]])
  func everyStopInTheLoopHasTheSameState(budgets: [UInt64]) throws {
    let set = StaticTranslationSet(try StaticTestGuest.translation(of: Self.quietGuest).file)
    let (interp, _) = try Self.slicedRun(engine: "interp", set: nil, budgets: budgets)
    let (dbt, _) = try Self.slicedRun(engine: "dbt", set: nil, budgets: budgets)
    let (sbt, translator) = try Self.slicedRun(engine: "sbt", set: set, budgets: budgets)
    // 300 rounds of 10 to 13 instructions, the last stopped at its load.
    #expect(interp.last?[16] == StaticTestGuest.base + 0x23)
    #expect(dbt == interp)
    #expect(sbt == interp)
    let t = try #require(translator)
    #expect(t.statistics.registerLiveLinksPatched >= 5)
    #expect(t.statistics.staticTranslatedInstructions > 0)
  }
}

/// Guest code as the decoder reads it in tests: `code` at `StaticTestGuest.base`, the rest zero.
final class TestCodeMemory: PhysicalMemory {
  private let page: UnsafeMutableRawPointer
  private static let size = 0x2000

  /// Memory holding `code` at `StaticTestGuest.base`.
  init(_ code: [UInt8]) {
    page = .allocate(byteCount: Self.size, alignment: 4096)
    page.initializeMemory(as: UInt8.self, repeating: 0, count: Self.size)
    code.withUnsafeBytes { page.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
  }

  deinit { page.deallocate() }

  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    let base = StaticTestGuest.base
    guard !write, physical >= base, physical + UInt64(length) <= base + UInt64(Self.size) else { return nil }
    return page + Int(physical - base)
  }
}

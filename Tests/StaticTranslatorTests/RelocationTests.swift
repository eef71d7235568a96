import Testing
import VMM
import X86

@testable import StaticTranslator
@testable import Translator

/// Relocatable host code, resolved with a VM's values, is byte for byte what the dynamic
/// translator compiles for that VM.
struct RelocationTests {
  @Test func theFingerprintCompilesAWholeReferenceBlock() throws {
    let block = RelocatableBlock.referenceBlock()
    #expect(block.instructions.map(\.instruction.operation) == [.add, .mov, .mov, .push, .pop, .out, .cpuid])
    let layout = CPU(model: .host64, memory: ReadOnlyGuestMemory(try GuestMemory(ramSize: 1 << 20))).translationTables
    let r = try #require(RelocatableBlock.compile(block, user: false, layout: layout))
    // The callout's helper, its context and instruction, the port I/O helper, the TLB miss helper
    // and the tables all appear as relocations.
    let symbols = Set(r.relocations.map(\.symbol))
    #expect(symbols.isSuperset(of: [.calloutFunction, .context, .calloutInstruction, .portIO, .tlbMiss, .generation]))
    #expect(
      RelocatableBlock.backendFingerprint(layout: layout) == RelocatableBlock.backendFingerprint(layout: layout))
  }

  @Test func resolvedCodeEqualsDirectCompilation() throws {
    let memory = try GuestMemory(ramSize: 8 << 20)
    try memory.write(StaticTestGuest.base, bytes: StaticTestGuest.selfModifyingComputedJump)
    let cpu = CPU(model: .host64, memory: ReadOnlyGuestMemory(memory))
    let found = Discovery.discover(cpu: cpu, entries: [StaticTestGuest.base], mode: .long64, physical: { $0 })
    let tables = BlockCompiler.Tables(cpu.translationTables)
    let helpers = BlockCompiler.Helpers(
      function: 0x7F12_3456_0000, context: 0x7F00_DEAD_BEE0, instruction: 0x5555_1234_5670, tlbMiss: 0x7F12_3456_1000,
      portIO: 0x7F12_3456_2000, privilegeTransfer: 0x7F12_3456_3000)
    #expect(!found.blocks.isEmpty)
    for block in found.blocks {
      for user in [false, true] {
        // Generations that need a 32-bit immediate (the relocation's field: a small one gets the
        // same comparison in a longer encoding than direct compilation picks).
        for generation: UInt32 in [0x1234_5678, 0x8000_0001] {
          let r = try #require(RelocatableBlock.compile(block, user: user, layout: cpu.translationTables))
          let direct = BlockCompiler.compile(
            block, tables: tables, user: user, generation: generation, indirectTable: 0x7EEE_0000_0000,
            callout: helpers)
          let resolved = r.resolved(
            tables: tables, helpers: helpers, indirectTable: 0x7EEE_0000_0000, generation: generation)
          let firstDifference = zip(resolved.code, direct.code).enumerated().first { $0.element.0 != $0.element.1 }?
            .offset
          #expect(
            resolved.code.count == direct.code.count && firstDifference == nil,
            "block at \(block.startRIP) user \(user) generation \(generation): differs at \(firstDifference ?? -1)")
          #expect(resolved.chainEntry == direct.chainEntry && resolved.crossEntry == direct.crossEntry)
          #expect(r.isWellFormed)
        }
      }
    }
  }
}

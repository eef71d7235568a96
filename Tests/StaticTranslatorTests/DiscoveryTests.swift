import Testing
import Translator
import VMM
import X86

@testable import StaticTranslator

/// Code discovery on small hand-written images: direct and conditional branches, calls and their
/// return sites, an indirect jump (recorded, not followed), data after code (never decoded).
struct DiscoveryTests {
  /// Discovers `code` loaded at 0x10000 as 64-bit code from its first byte.
  static func discover(_ code: [UInt8]) throws -> Discovery.Result {
    let memory = try GuestMemory(ramSize: 1 << 20)
    try memory.write(0x10000, bytes: code)
    let cpu = CPU(model: .host64, memory: ReadOnlyGuestMemory(memory))
    return Discovery.discover(cpu: cpu, entries: [0x10000], mode: .long64, physical: { $0 })
  }

  @Test func followsBranchesCallsAndReturnSitesAndStopsAtData() throws {
    // 00 xor eax,eax; 02 test eax,eax; 04 jz 0D; 06 call 15; 0B jmp 1D; 0D jmp rax;
    // 0F-14 data; 15 mov eax,1; 1A ret; 1B-1C data; 1D hlt; 1E jmp 1D.
    let code: [UInt8] = [
      0x31, 0xC0, 0x85, 0xC0, 0x74, 0x07, 0xE8, 0x0A, 0x00, 0x00, 0x00, 0xEB, 0x10, 0xFF, 0xE0, 0xFF, 0xFF, 0xFF,
      0xFF, 0xFF, 0xFF, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3, 0xFF, 0xFF, 0xF4, 0xEB, 0xFD,
    ]
    let r = try Self.discover(code)
    let starts = Set(r.blocks.map { $0.startRIP - 0x10000 })
    #expect(starts == [0x00, 0x0B, 0x0D, 0x15, 0x1D, 0x1E])
    #expect(r.indirectSites == [0x1000D])
    // No discovered instruction covers a data byte.
    let data = Set(Array(0x0F...0x14) + [0x1B, 0x1C]).map { UInt64($0) + 0x10000 }
    for b in r.blocks {
      for g in b.instructions {
        for d in data { #expect(!(g.rip <= d && d < g.nextRIP), "instruction at \(g.rip) covers data \(d)") }
      }
    }
    #expect(r.stops.isEmpty)
  }

  @Test func stopsWhereNothingDecodes() throws {
    // 00 jz 04; 02 jmp 06 (one superblock with the JZ); 04 (0xFF 0xFF: does not decode); 06 ret.
    let r = try Self.discover([0x74, 0x02, 0xEB, 0x02, 0xFF, 0xFF, 0xC3])
    #expect(Set(r.blocks.map { $0.startRIP - 0x10000 }) == [0x00, 0x06])
    #expect(r.stops == [0x10004])
  }

  /// A switch as compilers emit it for position-independent code: bound check, LEA of the table,
  /// MOVSXD of the entry, ADD, JMP reg; three cases and a default.
  static let jumpTable: [UInt8] =
    [
      0x83, 0xFF, 0x02,  // 00 cmp edi, 2
      0x77, 0x22,  // 03 ja 27 (default)
      0x48, 0x8D, 0x0D, 0x24, 0x00, 0x00, 0x00,  // 05 lea rcx, [rip + 30]
      0x48, 0x63, 0x04, 0xB9,  // 0C movsxd rax, dword [rcx + rdi*4]
      0x48, 0x01, 0xC8,  // 10 add rax, rcx
      0xFF, 0xE0,  // 13 jmp rax
      0xB8, 0x00, 0x00, 0x00, 0x00, 0xC3,  // 15 case 0: mov eax, 0; ret
      0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3,  // 1B case 1
      0xB8, 0x02, 0x00, 0x00, 0x00, 0xC3,  // 21 case 2
      0xB8, 0xFF, 0xFF, 0xFF, 0xFF, 0xC3,  // 27 default: mov eax, -1; ret
      0xFF, 0xFF, 0xFF,  // 2D padding (data)
    ] + [-0x1B, -0x15, -0x0F].flatMap { (v: Int32) in withUnsafeBytes(of: v.littleEndian, Array.init) }  // 30 table

  @Test func followsARecognizedJumpTable() throws {
    let r = try Self.discover(Self.jumpTable)
    #expect(Set(r.blocks.map { $0.startRIP - 0x10000 }) == [0x00, 0x15, 0x1B, 0x21, 0x27])
    #expect(r.jumpTables == [0x10013])
    #expect(r.indirectSites.isEmpty)
  }

  @Test func aJumpTableWithoutABoundIsNotFollowed() throws {
    var code = Self.jumpTable
    code[3] = 0x90  // the JA made two NOPs: no bound
    code[4] = 0x90
    let r = try Self.discover(code)
    #expect(Set(r.blocks.map { $0.startRIP - 0x10000 }) == [0x00])
    #expect(r.indirectSites == [0x10013] && r.jumpTables.isEmpty)
  }

  @Test func restartPointsStartBlocksAfterInstructionsThatMaySideExit() throws {
    let memory = try GuestMemory(ramSize: 1 << 20)
    try memory.write(StaticTestGuest.base, bytes: StaticTestGuest.computedJumpOnly)
    let cpu = CPU(model: .host64, memory: ReadOnlyGuestMemory(memory))
    func starts(_ restartPoints: Bool) -> Set<UInt64> {
      Set(
        Discovery.discover(
          cpu: cpu, entries: [StaticTestGuest.base], mode: .long64, physical: { $0 }, restartPoints: restartPoints
        ).blocks.map { $0.startRIP - StaticTestGuest.base })
    }
    // The first OUT (0x07, port I/O: it may side-exit) is in the middle of the entry's block.
    #expect(!starts(false).contains(0x08))
    #expect(starts(true).contains(0x08))
    #expect(starts(true).isSuperset(of: starts(false)))
  }

  @Test func theTestGuestsComputedTargetIsNotDiscovered() throws {
    let report = try StaticTestGuest.translation(of: StaticTestGuest.selfModifyingComputedJump)
    let starts = Set(report.file.blocks.map { $0.linear - StaticTestGuest.base })
    #expect(starts.contains(0x00) && starts.contains(0x0F) && starts.contains(0x14) && starts.contains(0x4B))
    #expect(!starts.contains(0x3B) && !starts.contains(0x48))
    #expect(report.indirectSites == [StaticTestGuest.base + 0x35])
    // Kernel and user translations of every block; one page hashed.
    #expect(report.file.blocks.count == 2 * report.blocksDiscovered)
    #expect(report.file.pages.map(\.physical) == [StaticTestGuest.base])
  }
}

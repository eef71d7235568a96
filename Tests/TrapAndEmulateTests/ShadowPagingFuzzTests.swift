import Testing
import TrapAndEmulate
import VMM
import X86

/// A seeded random walk through everything a guest does to its paging — accesses of every kind at
/// both privileges, stores into its own page tables through self-maps, CR3 switches between two
/// address spaces sharing tables, CR0.WP toggles, INVLPG — run on the shadow page tables (with a
/// pool small enough to run out) and on the X86 model's page walker over an identical copy: every
/// access must end the same way, and the guests' memories (tables with their A/D bits, data) must
/// be identical at the end.
@Suite struct ShadowPagingFuzzTests {
  /// SplitMix64: a small seeded generator.
  struct Generator {
    var state: UInt64
    mutating func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
  }

  static let regions: [UInt64] = [0x0000_1000_0000_0000, 0x0000_1000_0020_0000, 0x0000_7FFF_C000_0000]

  /// Guest frames an entry may point at: data frames, and (for self-maps) the table frames.
  static func randomFrame(_ g: inout Generator) -> UInt64 {
    g.chance(25) ? 0x10000 + UInt64(g.below(12)) * 0x1000 : 0x8_0000 + UInt64(g.below(32)) * 0x1000
  }

  /// A random leaf: a frame and random P, R/W, U/S, A, D and XD bits (P usually set).
  static func randomLeaf(_ g: inout Generator) -> UInt64 {
    var entry = randomFrame(&g) | (g.chance(90) ? PTE.p : 0)
    if g.chance(60) { entry |= PTE.rw }
    if g.chance(60) { entry |= PTE.us }
    if g.chance(30) { entry |= PTE.a }
    if g.chance(20) { entry |= PTE.d }
    if g.chance(20) { entry |= PTE.xd }
    return entry
  }

  /// Builds both address spaces in `memory` from seed `seed`; returns the two roots and the pages.
  static func build(_ memory: GuestMemory, seed: UInt64) throws -> (UInt64, UInt64, [UInt64]) {
    var g = Generator(state: seed)
    let tables = try GuestTables(memory: memory, tableBase: 0x10000)
    var pages: [UInt64] = []
    for region in regions {
      for i in 0..<6 { pages.append(region + UInt64(i) * 0x1000) }
    }
    for page in pages {
      try tables.map(page, to: randomFrame(&g), leaf: randomLeaf(&g) & 0xFFF | randomLeaf(&g) & PTE.xd)
    }
    // The second root shares the first's lower tables: a copy of the root table.
    let second: UInt64 = 0x1_F000
    try memory.write(second, bytes: try memory.read(tables.root, count: 0x1000))
    return (tables.root, second, pages)
  }

  /// Each seed with the default write-flood threshold and with 1, where every emulated write
  /// unshadows its frame (the unshadowing must keep the shadows coherent too).
  @Test(arguments: [1, 2, 3, 4] as [UInt64], [3, 1])
  func randomPagingActivityMatchesTheModel(seed: UInt64, floodThreshold: Int) throws {
    let shadowMemory = try GuestMemory(ramSize: 1 << 20)
    let modelMemory = try GuestMemory(ramSize: 1 << 20)
    let (rootA, rootB, pages) = try Self.build(shadowMemory, seed: seed)
    _ = try Self.build(modelMemory, seed: seed)
    let shadows = try ShadowPageTables(
      memory: shadowMemory, pool: ShadowFramePool(range: 0xC_0000..<0xC_0000 + 12 * 0x1000), maximumContexts: 3,
      floodThreshold: floodThreshold)
    var g = Generator(state: seed &* 7919)
    var root = rootA
    var cpl = 0
    var wp = true
    var mismatches: [String] = []
    var accesses = 0
    func control() -> PagingControl { guestControl(root: root, wp: wp) }
    try shadows.activate(control: control(), mode: ShadowMode(guestCPL: cpl))
    for step in 0..<3000 {
      switch g.below(100) {
      case 0..<4:
        root = root == rootA ? rootB : rootA
      case 4..<10:
        cpl = cpl == 0 ? 3 : 0
      case 10..<12:
        wp.toggle()
      case 12..<15:
        shadows.invalidatePage(pages[g.below(pages.count)])
      default:
        // Half the offsets among the first entries, where a self-mapped table's live entries are.
        let linear = pages[g.below(pages.count)] + UInt64(g.chance(50) ? g.below(8) : g.below(512)) * 8
        let kind = [MemoryAccessKind.read, .write, .execute][g.below(3)]
        let value = Self.randomLeaf(&g)
        try shadows.activate(control: control(), mode: ShadowMode(guestCPL: cpl))
        let expected = modelAccess(linear, kind: kind, cpl: cpl, control: control(), memory: modelMemory)
        let actual = shadowAccess(linear, kind: kind, shadows: shadows, writeValue: value, store: true)
        accesses += 1
        if kind == .write, case .ok(let physical) = expected { try modelMemory.write(value, at: physical) }
        if expected != actual {
          mismatches.append(
            "step \(step): \(kind) 0x\(String(linear, radix: 16)) CPL\(cpl) WP=\(wp): model \(expected) shadow \(actual)"
          )
        }
      }
    }
    try shadows.activate(control: control(), mode: ShadowMode(guestCPL: cpl))
    #expect(accesses > 2000)
    let report = mismatches.prefix(10).joined(separator: "\n")
    #expect(mismatches.count == 0, Comment(rawValue: "\(mismatches.count) mismatches:\n\(report)"))
    #expect(try shadowMemory.read(0, count: 0xC_0000) == (try modelMemory.read(0, count: 0xC_0000)))
    #expect(shadows.statistics.pageTableWrites > 0, "the walk wrote into page tables")
    #expect(shadows.statistics.resyncs > 0)
    // (A seed with a single page-table store may drop the frame's last leaf by its resync alone.)
    if floodThreshold == 1 && shadows.statistics.pageTableWrites >= 10 {
      #expect(shadows.statistics.unshadowedFrames > 0)
    }
  }
}

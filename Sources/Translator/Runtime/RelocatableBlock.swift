import X86

/// A block's finished host code with the values that differ from one VM (or vCPU) to the next
/// left as relocation records: what static binary translation (`sbt`, docs/binary-translation.md)
/// stores in a translation file and installs at run time without compiling.
///
/// The back end embeds absolute host addresses (the CPU's host-page and code-page tables, the
/// helpers generated code calls and their context, the inline indirect-branch table, the
/// decoded instruction of a callout) and the code page's generation. `compileRelocatable`
/// compiles a block twice with two sets of placeholder values of the same encoding length and
/// finds where the two outputs differ: each difference must be exactly one placeholder (plus a
/// small addend) in both, or the block is not made relocatable (the dynamic translator takes it at
/// run time). Direct branches stay linkable as in `dbt` (`links`), patched when installed.
package struct RelocatableBlock: Equatable, Sendable {
  /// What a relocation puts into the code.
  package enum Symbol: UInt8, CaseIterable, Sendable {
    case hostWritePage, hostWritePointer, hostReadPage, hostReadPointer, pageHasCode, pageGeneration, epoch
    case calloutFunction, context, calloutInstruction, tlbMiss, portIO, privilegeTransfer, indirectTable
    /// The code page's generation (a 32-bit immediate; every other symbol is a 64-bit one).
    case generation

    /// Bytes the relocation writes.
    package var width: Int { self == .generation ? 4 : 8 }
  }

  /// One place in the code that gets a run-time value: `symbol`'s value plus `addend`.
  package struct Relocation: Equatable, Sendable {
    /// Offset of the field in `code`.
    package var offset: Int
    /// What goes there.
    package var symbol: Symbol
    /// Added to the symbol's value (an element of a table).
    package var addend: UInt32

    /// A relocation of `symbol` + `addend` at `offset`.
    package init(offset: Int, symbol: Symbol, addend: UInt32) {
      self.offset = offset
      self.symbol = symbol
      self.addend = addend
    }
  }

  /// A direct branch's rel32 field and its target RIP (linked when installed, as `dbt` links).
  package struct Link: Equatable, Sendable {
    /// Offset of the rel32 field in `code`.
    package var field: Int
    /// The guest RIP it branches to.
    package var target: UInt64

    /// A linkable branch at `field` to `target`.
    package init(field: Int, target: UInt64) {
      self.field = field
      self.target = target
    }
  }

  /// The host code, with the first placeholder set's values where relocations go.
  package var code: [UInt8]
  /// Every field that gets a run-time value.
  package var relocations: [Relocation]
  /// Offsets of the chained and cross-page entries (`BlockCompiler.Output`).
  package var chainEntry: Int
  /// Offset of the cross-page entry.
  package var crossEntry: Int
  /// Linkable direct branches.
  package var links: [Link]
  /// Guest instructions emitted as a constant.
  package var folded: Int
  /// Guest instructions in the block.
  package var length: Int
  /// Offset of the host-flags entry, when the block has one (`BlockCompiler.CrossBlockFlags`).
  package var hostFlagsEntry: Int? = nil
  /// Direct branches that may only be linked to their target's host-flags entry.
  package var hostFlagsLinks: [Link] = []
  /// Offset of the register-live entry, when the block has one (`BlockCompiler.RegisterRegion`).
  package var registerLiveEntry: Int? = nil
  /// Direct branches that may only be linked to their target's register-live entry.
  package var registerLiveLinks: [Link] = []
  /// Offset of the register-live host-flags entry, when the block has one.
  package var registerLiveHostFlagsEntry: Int? = nil
  /// Direct branches that may only be linked to their target's register-live host-flags entry.
  package var registerLiveHostFlagsLinks: [Link] = []
  /// Offset in the code page of the block's final instruction when it is a callout (the
  /// interpreter gets it decoded), else nil.
  package var calloutPageOffset: Int?

  /// A block with every field given (what a translation file's reader builds).
  package init(
    code: [UInt8], relocations: [Relocation], chainEntry: Int, crossEntry: Int, links: [Link], folded: Int,
    length: Int, calloutPageOffset: Int?, hostFlagsEntry: Int? = nil, hostFlagsLinks: [Link] = [],
    registerLiveEntry: Int? = nil, registerLiveLinks: [Link] = [], registerLiveHostFlagsEntry: Int? = nil,
    registerLiveHostFlagsLinks: [Link] = []
  ) {
    self.registerLiveHostFlagsEntry = registerLiveHostFlagsEntry
    self.registerLiveHostFlagsLinks = registerLiveHostFlagsLinks
    self.registerLiveEntry = registerLiveEntry
    self.registerLiveLinks = registerLiveLinks
    self.hostFlagsEntry = hostFlagsEntry
    self.hostFlagsLinks = hostFlagsLinks
    self.code = code
    self.relocations = relocations
    self.chainEntry = chainEntry
    self.crossEntry = crossEntry
    self.links = links
    self.folded = folded
    self.length = length
    self.calloutPageOffset = calloutPageOffset
  }

  /// The placeholder values of the two compiles: 64-bit values whose low 32 bits are zero (room for
  /// an addend) and whose bytes 4 and 5 differ between the sets; byte 6 names the symbol.
  static func placeholder(_ symbol: Symbol, set: Int) -> UInt64 {
    if symbol == .generation { return set == 0 ? 0x3C3C_3C3C : 0x4B4B_4B4B }
    let tag = UInt64(symbol.rawValue + 1) << 48
    return 0x1000_0000_0000_0000 | tag | (set == 0 ? 0x1111_0000_0000 : 0xEEEE_0000_0000)
  }

  /// `block` compiled for CPL 3 (`user`) or below with relocations instead of this VM's addresses;
  /// nil when the two compiles do not differ only in placeholders. `layout` gives the table
  /// layout (strides, offsets, slot counts: constants of this build); its addresses are not used.
  /// `crossBlock`: what the static translator knows of the blocks around it (nil: compiled as
  /// `dbt` would); `region`: the register region it belongs to (nil: none).
  package static func compile(
    _ block: GuestBlock, user: Bool, layout: TranslationTables, crossBlock: BlockCompiler.CrossBlockFlags? = nil,
    region: BlockCompiler.RegisterRegion? = nil
  ) -> RelocatableBlock? {
    let outputs = [0, 1].map { set in
      BlockCompiler.compile(
        block, tables: BlockCompiler.Tables(layout: layout, placeholderSet: set), user: user,
        generation: UInt32(placeholder(.generation, set: set)),
        indirectTable: placeholder(.indirectTable, set: set), callout: helpers(set: set), crossBlock: crossBlock,
        region: region)
    }
    let (a, b) = (outputs[0], outputs[1])
    guard a.code.count == b.code.count, a.chainEntry == b.chainEntry, a.crossEntry == b.crossEntry,
      a.links.count == b.links.count, zip(a.links, b.links).allSatisfy({ $0 == $1 }),
      a.hostFlagsEntry == b.hostFlagsEntry, a.hostFlagsLinks.count == b.hostFlagsLinks.count,
      zip(a.hostFlagsLinks, b.hostFlagsLinks).allSatisfy({ $0 == $1 }), a.registerLiveEntry == b.registerLiveEntry,
      a.registerLiveLinks.count == b.registerLiveLinks.count,
      zip(a.registerLiveLinks, b.registerLiveLinks).allSatisfy({ $0 == $1 }),
      a.registerLiveHostFlagsEntry == b.registerLiveHostFlagsEntry,
      a.registerLiveHostFlagsLinks.count == b.registerLiveHostFlagsLinks.count,
      zip(a.registerLiveHostFlagsLinks, b.registerLiveHostFlagsLinks).allSatisfy({ $0 == $1 })
    else { return nil }
    var relocations: [Relocation] = []
    var i = 0
    let x = a.code
    let y = b.code
    func read(_ c: [UInt8], _ at: Int, _ width: Int) -> UInt64 {
      var v: UInt64 = 0
      for k in 0..<width { v |= UInt64(c[at + k]) << (8 * UInt64(k)) }
      return v
    }
    while i < x.count {
      if x[i] == y[i] {
        i += 1
        continue
      }
      // A 64-bit placeholder differs first in its byte 4; the generation in its byte 0.
      if i >= 4, i + 4 <= x.count {
        let site = i - 4
        let u = read(x, site, 8)
        let v = read(y, site, 8)
        if let symbol = Symbol.allCases.first(where: {
          $0 != .generation && u & ~0xFFFF_FFFF == placeholder($0, set: 0)
            && v & ~0xFFFF_FFFF == placeholder($0, set: 1)
        }), u & 0xFFFF_FFFF == v & 0xFFFF_FFFF {
          relocations.append(Relocation(offset: site, symbol: symbol, addend: UInt32(truncatingIfNeeded: u)))
          i = site + 8
          continue
        }
      }
      if i + 4 <= x.count, read(x, i, 4) == placeholder(.generation, set: 0),
        read(y, i, 4) == placeholder(.generation, set: 1)
      {
        relocations.append(Relocation(offset: i, symbol: .generation, addend: 0))
        i += 4
        continue
      }
      return nil
    }
    var callout: Int? = nil
    if let last = block.instructions.last, last.form == .generic, last.special == nil {
      callout = Int((block.physicalStart & ~0xFFF | (last.rip & 0xFFF)) & 0xFFF)
    }
    return RelocatableBlock(
      code: a.code, relocations: relocations, chainEntry: a.chainEntry, crossEntry: a.crossEntry,
      links: a.links.map { Link(field: $0.field, target: $0.target) }, folded: a.folded,
      length: block.instructions.count, calloutPageOffset: callout, hostFlagsEntry: a.hostFlagsEntry,
      hostFlagsLinks: a.hostFlagsLinks.map { Link(field: $0.field, target: $0.target) },
      registerLiveEntry: a.registerLiveEntry,
      registerLiveLinks: a.registerLiveLinks.map { Link(field: $0.field, target: $0.target) },
      registerLiveHostFlagsEntry: a.registerLiveHostFlagsEntry,
      registerLiveHostFlagsLinks: a.registerLiveHostFlagsLinks.map { Link(field: $0.field, target: $0.target) })
  }

  static func helpers(set: Int) -> BlockCompiler.Helpers {
    BlockCompiler.Helpers(
      function: placeholder(.calloutFunction, set: set), context: placeholder(.context, set: set),
      instruction: placeholder(.calloutInstruction, set: set), tlbMiss: placeholder(.tlbMiss, set: set),
      portIO: placeholder(.portIO, set: set), privilegeTransfer: placeholder(.privilegeTransfer, set: set))
  }

  /// Checks that every relocation, link and entry lies inside the code and that relocations do
  /// not overlap: what a reader must know before installing code it did not compile.
  package var isWellFormed: Bool {
    let n = code.count
    guard chainEntry >= 0, chainEntry < n, crossEntry >= 0, crossEntry < n, length > 0 else { return false }
    if let e = hostFlagsEntry, e < 0 || e >= n { return false }
    if let e = registerLiveEntry, e < 0 || e >= n { return false }
    if let e = registerLiveHostFlagsEntry, e < 0 || e >= n { return false }
    var covered = [Bool](repeating: false, count: n)
    for r in relocations {
      guard r.offset >= 0, r.offset + r.symbol.width <= n else { return false }
      for k in r.offset..<(r.offset + r.symbol.width) {
        if covered[k] { return false }
        covered[k] = true
      }
    }
    for l in links + hostFlagsLinks + registerLiveLinks + registerLiveHostFlagsLinks {
      guard l.field >= 0, l.field + 4 <= n else { return false }
      for k in l.field..<(l.field + 4) {
        if covered[k] { return false }
        covered[k] = true
      }
    }
    return true
  }

  /// The code with this VM's values written in (`BlockCompiler.Output`, ready for the code buffer).
  func resolved(
    tables: BlockCompiler.Tables, helpers: BlockCompiler.Helpers, indirectTable: UInt64, generation: UInt32
  ) -> BlockCompiler.Output {
    var out = code
    for r in relocations {
      let base: UInt64
      switch r.symbol {
      case .hostWritePage: base = tables.hostWritePage
      case .hostWritePointer: base = tables.hostWritePointer
      case .hostReadPage: base = tables.hostReadPage
      case .hostReadPointer: base = tables.hostReadPointer
      case .pageHasCode: base = tables.pageHasCode
      case .pageGeneration: base = tables.pageGeneration
      case .epoch: base = tables.epoch
      case .calloutFunction: base = helpers.function
      case .context: base = helpers.context
      case .calloutInstruction: base = helpers.instruction
      case .tlbMiss: base = helpers.tlbMiss
      case .portIO: base = helpers.portIO
      case .privilegeTransfer: base = helpers.privilegeTransfer
      case .indirectTable: base = indirectTable
      case .generation: base = UInt64(generation)
      }
      let value = base &+ UInt64(r.addend)
      for k in 0..<r.symbol.width { out[r.offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
    }
    return BlockCompiler.Output(
      code: out, chainEntry: chainEntry, crossEntry: crossEntry, links: links.map { ($0.field, $0.target) },
      folded: folded, hostFlagsEntry: hostFlagsEntry, hostFlagsLinks: hostFlagsLinks.map { ($0.field, $0.target) },
      registerLiveEntry: registerLiveEntry, registerLiveLinks: registerLiveLinks.map { ($0.field, $0.target) },
      registerLiveHostFlagsEntry: registerLiveHostFlagsEntry,
      registerLiveHostFlagsLinks: registerLiveHostFlagsLinks.map { ($0.field, $0.target) })
  }

  /// What a translation file must match to be installed by this build: the translator's layout
  /// constants (state page, TLB entries, table slots), a version of the back end's conventions and
  /// the relocatable code of a reference block, folded into 64 bits (FNV-1a). A file made by
  /// another build is refused.
  package static func backendFingerprint(layout t: TranslationTables) -> UInt64 {
    let layout = t
    let values: [Int] = [
      backendVersion, t.entryStride, t.tagOffset, t.ramTagOffset, t.addendOffset, t.physicalPageOffset,
      t.hostPageSlots, t.codePageSlots, CPUStateLayout.gprs, CPUStateLayout.rip, CPUStateLayout.rflags,
      CPUStateLayout.translatorExit, CPUStateLayout.translatorBudget, CPUStateLayout.translatorBudgetLeft,
      CPUStateLayout.translatorScratch, CPUStateLayout.translatorReadGroups, CPUStateLayout.translatorIndirectHits,
      CPUStateLayout.translatorIndirectMisses, CPUStateLayout.pagingTLB, IndirectBranchTable.slots,
      GuestBlock.maximumLength, GuestBlock.maximumBranchExits,
    ]
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    func fold(_ byte: UInt8) {
      h ^= UInt64(byte)
      h &*= 0x100_0000_01B3
    }
    for v in values {
      for k in 0..<8 { fold(UInt8(truncatingIfNeeded: v >> (8 * k))) }
    }
    // What the back end makes of a reference block (ALU, a read, a store, PUSH/POP, port I/O, a
    // callout), both privilege classes: a change in the shape of generated code changes this.
    let block = referenceBlock()
    for user in [false, true] {
      guard let r = compile(block, user: user, layout: layout) else {
        fold(0xFF)
        continue
      }
      for b in r.code { fold(b) }
      for x in r.relocations {
        for k in 0..<4 { fold(UInt8(truncatingIfNeeded: x.offset >> (8 * k))) }
        fold(x.symbol.rawValue)
      }
    }
    return h
  }

  /// The block the fingerprint compiles: ADD, a read, a store, PUSH, POP, OUT and CPUID (a
  /// callout) in 64-bit code.
  package static func referenceBlock() -> GuestBlock {
    let cpu = CPU(model: .host64, memory: ReferenceCodeMemory())
    return GuestBlock.read(from: cpu, rip: ReferenceCodeMemory.base, physical: ReferenceCodeMemory.base, mode: .long64)
  }

  /// Bumped whenever the back end's output changes shape in a way the layout constants do not show.
  package static let backendVersion = 2
}

extension BlockCompiler.Tables {
  /// `layout`'s strides, offsets and slot counts with placeholder addresses (set 0 or 1).
  init(layout t: TranslationTables, placeholderSet set: Int) {
    typealias S = RelocatableBlock.Symbol
    hostWritePage = RelocatableBlock.placeholder(S.hostWritePage, set: set)
    hostWritePointer = RelocatableBlock.placeholder(S.hostWritePointer, set: set)
    hostReadPage = RelocatableBlock.placeholder(S.hostReadPage, set: set)
    hostReadPointer = RelocatableBlock.placeholder(S.hostReadPointer, set: set)
    pageHasCode = RelocatableBlock.placeholder(S.pageHasCode, set: set)
    pageGeneration = RelocatableBlock.placeholder(S.pageGeneration, set: set)
    epoch = RelocatableBlock.placeholder(S.epoch, set: set)
    entryStride = t.entryStride
    tagOffset = t.tagOffset
    ramTagOffset = t.ramTagOffset
    addendOffset = t.addendOffset
    physicalPageOffset = t.physicalPageOffset
    hostPageSlots = t.hostPageSlots
    codePageSlots = t.codePageSlots
  }
}

/// Translations made ahead of time that a `DynamicTranslator` installs instead of compiling
/// (`sbt`): asked before every translation; nil leaves the block to the dynamic translator.
package protocol StaticBlockSource: AnyObject {
  /// The block at `rip` (physical `physical`) of `mode` code at CPL 3 (`user`) or below, when
  /// the source has one and the code page holds what it was made from (`cpu`'s memory).
  func block(
    for cpu: CPU, rip: UInt64, physical: UInt64, user: Bool, mode: TranslatedCodeMode
  ) -> RelocatableBlock?
  /// The source's blocks in the same linear page as `rip` (same physical page, privilege class
  /// and code mode), by RIP: asked right after `block(for:...)` answered for `rip`, so the page's
  /// content was checked. Those the block reaches by direct branches within the page are
  /// installed at once, so that the branches are linked before any of them runs (link-time
  /// resolution).
  func pageBlocks(
    for cpu: CPU, rip: UInt64, physical: UInt64, user: Bool, mode: TranslatedCodeMode
  ) -> [UInt64: RelocatableBlock]
  /// Counters for `--stats`.
  var counters: [(name: String, value: UInt64, description: String)] { get }
}

/// One page of guest code the back-end fingerprint compiles (`backendFingerprint`).
private final class ReferenceCodeMemory: PhysicalMemory {
  /// Its physical (and linear) address.
  static let base: UInt64 = 0x1000
  /// ADD RAX, RBX; MOV RCX, [RBX]; MOV [RBX+8], RCX; PUSH RBX; POP RBX; OUT 0x80, AL; CPUID.
  static let code: [UInt8] = [
    0x48, 0x01, 0xD8, 0x48, 0x8B, 0x0B, 0x48, 0x89, 0x4B, 0x08, 0x53, 0x5B, 0xE6, 0x80, 0x0F, 0xA2,
  ]
  private let page: UnsafeMutableRawPointer

  init() {
    page = .allocate(byteCount: 4096, alignment: 4096)
    page.initializeMemory(as: UInt8.self, repeating: 0xCC, count: 4096)
    Self.code.withUnsafeBytes { page.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
  }

  deinit { page.deallocate() }

  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    guard !write, physical >= Self.base, physical + UInt64(length) <= Self.base + 4096 else { return nil }
    return page + Int(physical - Self.base)
  }
}

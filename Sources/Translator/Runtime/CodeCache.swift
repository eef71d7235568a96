import X86

/// Lookup, the first stage: translated blocks by what decides a translation. A block's host code
/// embeds its linear addresses (branch targets, RIP-relative operands, return addresses) and the
/// TLB tables of one privilege class, and reads guest code from one physical page, so the key is
/// (linear RIP, physical RIP, user or supervisor) and a hit must also match the code page's current
/// generation (a write to the page or a cache flush changes it). The key also holds the kind of
/// code (`TranslatedCodeMode`): how it decodes, its stack and branch widths and how it reaches
/// memory are compiled in.
package struct CodeCache {
  package struct Key: Hashable {
    package var linear: UInt64
    /// Physical address with bit 63 set for CPL 3 and the code mode in bits 61-62.
    package var physicalAndLevel: UInt64

    /// The bits of `physicalAndLevel` above the physical address.
    package static func classBits(user: Bool, mode: TranslatedCodeMode) -> UInt64 {
      (user ? 1 << 63 : 0) | mode.rawValue << 61
    }
  }

  /// A translated block (or a marker that the code at the key cannot be translated).
  package struct Block {
    /// The host entry point; nil when the first instruction is not translatable.
    package var entry: UnsafeRawPointer?
    /// Guest instructions in the block.
    package var length: Int
    /// The code page's generation when it was translated.
    package var generation: UInt32
    /// The chained entry's offset in the code buffer.
    package var chainEntry: Int? = nil
    /// The cross-page entry's offset in the code buffer.
    package var crossEntry: Int? = nil
    /// Installed from a translation file (`sbt`), not compiled here.
    package var fromFile = false
    /// The host-flags entry's offset in the code buffer (file blocks whose flags are dead at
    /// their start: `BlockCompiler.CrossBlockFlags`).
    package var hostFlagsEntry: Int? = nil
    /// The register-live entry's offset in the code buffer (file blocks of a register region that
    /// another block of the region branches to: `BlockCompiler.RegisterRegion`).
    package var registerLiveEntry: Int? = nil
    /// The register-live host-flags entry's offset in the code buffer (such a block whose flags
    /// are also dead at its start).
    package var registerLiveHostFlagsEntry: Int? = nil
  }

  /// Every block, by key.
  private var blocks: [Key: Block] = [:]
  /// A direct-mapped table in front of `blocks`: most lookups are one index and two compares,
  /// without hashing. Empty slots hold a non-canonical RIP, which no lookup asks for.
  private static let recentSlots = 4096
  private var recentKeys: [Key]
  private var recentBlocks: [Block]

  package init() {
    recentKeys = Array(repeating: Key(linear: .max, physicalAndLevel: 0), count: Self.recentSlots)
    recentBlocks = Array(repeating: Block(entry: nil, length: 0, generation: 0), count: Self.recentSlots)
  }

  package var count: Int { blocks.count }

  @inline(__always) private static func slot(_ key: Key) -> Int {
    Int(truncatingIfNeeded: (key.linear ^ (key.linear >> 12) ^ (key.physicalAndLevel >> 63)) & UInt64(recentSlots - 1))
  }

  package mutating func lookup(_ key: Key) -> Block? {
    let i = Self.slot(key)
    if recentKeys[i] == key { return recentBlocks[i] }
    guard let b = blocks[key] else { return nil }
    recentKeys[i] = key
    recentBlocks[i] = b
    return b
  }

  package mutating func insert(_ block: Block, for key: Key) {
    blocks[key] = block
    let i = Self.slot(key)
    recentKeys[i] = key
    recentBlocks[i] = block
  }

  /// Forgets every block (the code buffer was reset).
  package mutating func removeAll() {
    blocks.removeAll(keepingCapacity: true)
    for i in 0..<Self.recentSlots { recentKeys[i] = Key(linear: .max, physicalAndLevel: 0) }
  }
}

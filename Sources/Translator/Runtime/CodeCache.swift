/// Lookup, the first stage: translated blocks by what decides a translation. A block's host code
/// embeds its linear addresses (branch targets, RIP-relative operands, return addresses) and the
/// TLB tables of one privilege class, and reads guest code from one physical page, so the key is
/// (linear RIP, physical RIP, user or supervisor) and a hit must also match the code page's current
/// generation (a write to the page or a cache flush changes it). 64-bit mode with paging is implied:
/// nothing else is translated.
package struct CodeCache {
  package struct Key: Hashable {
    package var linear: UInt64
    /// Physical address with bit 63 set for CPL 3.
    package var physicalAndLevel: UInt64
  }

  /// A translated block (or a marker that the code at the key cannot be translated).
  package struct Block {
    /// The host entry point; nil when the first instruction is not translatable.
    package var entry: UnsafeRawPointer?
    /// Guest instructions in the block.
    package var length: Int
    /// The code page's generation when it was translated.
    package var generation: UInt32
  }

  private var blocks: [Key: Block] = [:]

  package init() {}

  package var count: Int { blocks.count }

  package func lookup(_ key: Key) -> Block? { blocks[key] }

  package mutating func insert(_ block: Block, for key: Key) { blocks[key] = block }

  /// Forgets every block (the code buffer was reset).
  package mutating func removeAll() { blocks.removeAll(keepingCapacity: true) }
}

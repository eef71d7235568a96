/// The inline lookup table for indirect branches (RET): direct mapped, `slots` entries of 16
/// bytes, (guest RIP, host address of the block's cross-page entry), one table per privilege
/// class. Generated code hashes the target RIP, compares and jumps; a miss returns to the
/// dispatcher. An entry may point at an old translation: the cross-page entry's checks (mapping,
/// code generation, budget) send control back to the dispatcher then, so a stale entry costs time,
/// never correctness. Filled when blocks are translated; emptied with the code buffer.
package final class IndirectBranchTable {
  /// Entries per table (a power of two).
  package static let slots = 4096
  /// The hash: `(rip ^ (rip >> shift)) & (slots - 1)` on the low 32 bits.
  package static let shift = 12

  private let storage: UnsafeMutablePointer<UInt64>

  package init() {
    storage = .allocate(capacity: 2 * Self.slots * 2)
    clear()
  }

  deinit { storage.deallocate() }

  package static func slot(_ rip: UInt64) -> Int {
    let low = UInt32(truncatingIfNeeded: rip)
    return Int((low ^ (low >> UInt32(shift))) & UInt32(slots - 1))
  }

  /// The address of the table generated code at CPL 3 (`user`) or below reads.
  package func base(user: Bool) -> UInt64 {
    UInt64(UInt(bitPattern: storage + (user ? 2 * Self.slots : 0)))
  }

  /// Makes `rip` jump to `entry` from generated code of that privilege class.
  package func insert(rip: UInt64, entry: UnsafeRawPointer, user: Bool) {
    let p = storage + (user ? 2 * Self.slots : 0) + 2 * Self.slot(rip)
    p[0] = rip
    p[1] = UInt64(UInt(bitPattern: entry))
  }

  /// Forgets every entry (a non-canonical RIP matches no target).
  package func clear() {
    for i in 0..<(2 * Self.slots) {
      storage[2 * i] = .max
      storage[2 * i + 1] = 0
    }
  }
}

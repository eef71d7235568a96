import X86

/// The inline lookup table for indirect branches (RET): direct mapped, `slots` entries of 16
/// bytes, (guest RIP, host address of the block's cross-page entry), one table per privilege
/// class and code mode (`TranslatedCodeMode`). Generated code hashes the target RIP, compares and jumps; a miss returns to the
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
    storage = .allocate(capacity: Self.tables * Self.slots * 2)
    clear()
  }

  deinit { storage.deallocate() }

  package static func slot(_ rip: UInt64) -> Int {
    let low = UInt32(truncatingIfNeeded: rip)
    return Int((low ^ (low >> UInt32(shift))) & UInt32(slots - 1))
  }

  /// Tables: two privilege classes per code mode.
  private static let tables = 2 * 3

  private func table(user: Bool, mode: TranslatedCodeMode) -> UnsafeMutablePointer<UInt64> {
    storage + (2 * Int(mode.rawValue) + (user ? 1 : 0)) * 2 * Self.slots
  }

  /// The address of the table generated code of `mode` at CPL 3 (`user`) or below reads.
  package func base(user: Bool, mode: TranslatedCodeMode) -> UInt64 {
    UInt64(UInt(bitPattern: table(user: user, mode: mode)))
  }

  /// Makes `rip` jump to `entry` from generated code of that privilege class and mode.
  package func insert(rip: UInt64, entry: UnsafeRawPointer, user: Bool, mode: TranslatedCodeMode) {
    let p = table(user: user, mode: mode) + 2 * Self.slot(rip)
    p[0] = rip
    p[1] = UInt64(UInt(bitPattern: entry))
  }

  /// Forgets every entry (a non-canonical RIP matches no target).
  package func clear() {
    for i in 0..<(Self.tables * Self.slots) {
      storage[2 * i] = .max
      storage[2 * i + 1] = 0
    }
  }
}

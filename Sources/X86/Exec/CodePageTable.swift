import Synchronization

/// The per-page write stamps a decode cache checks for self- and cross-modifying code: for each of
/// `DecodeCache.pageSlots` slots (guest-physical page number modulo the slot count), a generation
/// and a flag saying the page holds cached code. A write to a flagged page bumps its generation,
/// which invalidates every instruction decoded from it.
///
/// An embedder with several CPUs, or with writers of its own (devices, loaders), passes one table
/// to every `CPU` so they share it (the VMM's `CodeWriteTracker` owns such a table); a CPU made
/// without one allocates its own.
/// The stamps are atomics (relaxed), so CPUs on several host threads may share one table.
public struct CodePageTable {
  /// `DecodeCache.pageSlots` generations.
  public let generation: UnsafeMutablePointer<Atomic<UInt32>>
  /// `DecodeCache.pageSlots` "holds cached code" flags.
  public let hasCode: UnsafeMutablePointer<Atomic<Bool>>
  /// Slots a shared table must have.
  public static var slotCount: Int { DecodeCache.pageSlots }

  /// A view of an embedder's arrays of `slotCount` elements each (they must outlive every CPU
  /// that uses them).
  public init(generation: UnsafeMutablePointer<Atomic<UInt32>>, hasCode: UnsafeMutablePointer<Atomic<Bool>>) {
    self.generation = generation
    self.hasCode = hasCode
  }

  /// A zeroed table of its own (freed with `deallocate`).
  static func allocate() -> CodePageTable {
    let g = UnsafeMutablePointer<Atomic<UInt32>>.allocate(capacity: slotCount)
    let h = UnsafeMutablePointer<Atomic<Bool>>.allocate(capacity: slotCount)
    for i in 0..<slotCount {
      (g + i).initialize(to: Atomic(0))
      (h + i).initialize(to: Atomic(false))
    }
    return CodePageTable(generation: g, hasCode: h)
  }

  func deallocate() {
    generation.deinitialize(count: Self.slotCount)
    hasCode.deinitialize(count: Self.slotCount)
    generation.deallocate()
    hasCode.deallocate()
  }
}

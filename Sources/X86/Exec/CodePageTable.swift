/// The per-page write stamps a decode cache checks for self- and cross-modifying code: for each of
/// `DecodeCache.pageSlots` slots (guest-physical page number modulo the slot count), a generation
/// and a flag saying the page holds cached code. A write to a flagged page bumps its generation,
/// which invalidates every instruction decoded from it.
///
/// An embedder with several CPUs, or with writers of its own (devices, loaders), passes one table
/// to every `CPU` so they share it (the VMM's `CodeWriteTracker` owns such a table); a CPU made
/// without one allocates its own.
public struct CodePageTable {
  /// `DecodeCache.pageSlots` generations.
  public let generation: UnsafeMutablePointer<UInt32>
  /// `DecodeCache.pageSlots` "holds cached code" flags.
  public let hasCode: UnsafeMutablePointer<Bool>
  /// Slots a shared table must have.
  public static var slotCount: Int { DecodeCache.pageSlots }

  /// A view of an embedder's arrays of `slotCount` elements each (they must outlive every CPU
  /// that uses them).
  public init(generation: UnsafeMutablePointer<UInt32>, hasCode: UnsafeMutablePointer<Bool>) {
    self.generation = generation
    self.hasCode = hasCode
  }

  /// A zeroed table of its own (freed with `deallocate`).
  static func allocate() -> CodePageTable {
    let g = UnsafeMutablePointer<UInt32>.allocate(capacity: slotCount)
    g.initialize(repeating: 0, count: slotCount)
    let h = UnsafeMutablePointer<Bool>.allocate(capacity: slotCount)
    h.initialize(repeating: false, count: slotCount)
    return CodePageTable(generation: g, hasCode: h)
  }

  func deallocate() {
    generation.deallocate()
    hasCode.deallocate()
  }
}

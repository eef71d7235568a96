import Synchronization

/// The one write-stamp table per guest-physical page that the software engines share (Bochs'
/// approach to self-modifying and cross-modifying code): a page that holds decoded or translated
/// code is marked; a write to a marked page bumps its generation, and every decode cache or code
/// cache compares the generation it filled an entry under with the page's current one.
///
/// It belongs to the machine's guest memory (`GuestMemory.codeWrites`), not to an engine, because
/// writes reach code from everywhere: another vCPU, a device, a loader. `GuestMemory`'s own writes
/// note themselves here; engines write through host pointers and note their writes themselves
/// (the interpreter's X86 model shares these two arrays, `generations` and `hasCode`).
///
/// The table is direct-mapped (`pageSlots` slots by page number), so two pages sharing a slot only
/// cause extra, safe invalidations. Threading: the stamps are relaxed atomics, so vCPU threads and
/// the VMM may update them concurrently. A write is noted before it lands, so a vCPU that decodes
/// the page meanwhile may keep the old bytes until the next write there: cross-modifying code
/// needs the synchronization x86 asks for anyway (the writer signals after writing).
public final class CodeWriteTracker: @unchecked Sendable {
  /// Slots in the table (pages are mapped to slots by their low bits).
  public static let pageSlots = 1 << 16
  /// The generation of each slot: bumped by a write to a page marked as holding code.
  public let generations: UnsafeMutablePointer<Atomic<UInt32>>
  /// Whether the page in each slot holds cached code (set by engines when they cache code).
  public let hasCode: UnsafeMutablePointer<Atomic<Bool>>

  /// A table with no page marked.
  public init() {
    generations = .allocate(capacity: Self.pageSlots)
    hasCode = .allocate(capacity: Self.pageSlots)
    for i in 0..<Self.pageSlots {
      (generations + i).initialize(to: Atomic(0))
      (hasCode + i).initialize(to: Atomic(false))
    }
  }

  deinit {
    generations.deinitialize(count: Self.pageSlots)
    hasCode.deinitialize(count: Self.pageSlots)
    generations.deallocate()
    hasCode.deallocate()
  }

  /// The slot of guest-physical page `page` (address >> 12).
  @inline(__always)
  public static func slot(page: UInt64) -> Int { Int(truncatingIfNeeded: page & UInt64(pageSlots - 1)) }

  /// The current generation of the page holding guest-physical `address`.
  public func generation(ofPageHolding address: UInt64) -> UInt32 {
    generations[Self.slot(page: address >> 12)].load(ordering: .relaxed)
  }

  /// Marks guest-physical page `page` as holding cached code.
  public func markCode(page: UInt64) { hasCode[Self.slot(page: page)].store(true, ordering: .relaxed) }

  /// A write to `length` bytes at guest-physical `address`: every marked page in the range gets a
  /// new generation and is unmarked.
  public func noteWrite(physical address: UInt64, length: UInt64) {
    guard length > 0 else { return }
    let last = (address &+ (length - 1)) >> 12
    var page = address >> 12
    while true {
      let s = Self.slot(page: page)
      if hasCode[s].load(ordering: .relaxed) {
        generations[s].wrappingAdd(1, ordering: .relaxed)
        hasCode[s].store(false, ordering: .relaxed)
      }
      if page >= last { break }
      page += 1
    }
  }
}

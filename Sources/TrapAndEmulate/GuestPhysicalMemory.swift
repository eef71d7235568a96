import VMM
import X86

/// The guest's physical memory as the X86 model reads it: page-table entries for `PageWalker` and
/// host pointers for the model's MMU (the emulator's reads and writes of descriptor tables, stacks
/// and memory operands through the guest's own page tables).
///
/// Every range handed out for writing is logged (`writtenRanges`), so the monitor can tell the
/// shadow page tables about writes its emulation made to guest page-table pages
/// (`ShadowPageTables.noteGuestWrites`): those bypass the write protection a guest store meets.
public final class GuestPhysicalMemory: PhysicalMemory, PageTableMemory {
  /// The VMM's guest memory.
  public let memory: GuestMemory
  /// Whether writes are logged in `writtenRanges`.
  public let logsWrites: Bool
  /// The guest-physical ranges handed out for writing since the last `takeWrittenRanges()`.
  public private(set) var writtenRanges: [Range<UInt64>] = []

  /// An adapter over `memory`; `logWrites` records every range handed out for writing.
  public init(_ memory: GuestMemory, logWrites: Bool = false) {
    self.memory = memory
    self.logsWrites = logWrites
  }

  /// A host pointer to `length` bytes at `physical`, nil outside RAM (and for writes to ROM).
  public func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    guard let region = memory.region(containing: physical, length: UInt64(length)) else { return nil }
    if write {
      guard region.kind == .ram else { return nil }
      if logsWrites { writtenRanges.append(physical..<physical + UInt64(length)) }
    }
    return region.host + Int(physical - region.guestAddress)
  }

  /// A plain load: the trap engine's monitor runs one vCPU's emulation at a time.
  public func atomicLoad(at pointer: UnsafeMutableRawPointer, size: Int) -> UInt64 {
    switch size {
    case 1: return UInt64(pointer.load(as: UInt8.self))
    case 2: return UInt64(pointer.loadUnaligned(as: UInt16.self))
    case 4: return UInt64(pointer.loadUnaligned(as: UInt32.self))
    default: return pointer.loadUnaligned(as: UInt64.self)
    }
  }

  /// The 4- or 8-byte page-table entry at `physical`, nil outside RAM.
  public func readEntry(_ physical: UInt64, size: Int) -> UInt64? {
    guard let p = hostPointer(physical: physical, length: size, write: false) else { return nil }
    return size == 4 ? UInt64(p.loadUnaligned(as: UInt32.self)) : p.loadUnaligned(as: UInt64.self)
  }

  /// Stores a page-table entry (accessed and dirty updates of the walker).
  public func writeEntry(_ physical: UInt64, value: UInt64, size: Int) {
    guard let p = hostPointer(physical: physical, length: size, write: true) else { return }
    if size == 4 {
      p.storeBytes(of: UInt32(truncatingIfNeeded: value), as: UInt32.self)
    } else {
      p.storeBytes(of: value, as: UInt64.self)
    }
  }

  /// The logged write ranges, emptying the log.
  public func takeWrittenRanges() -> [Range<UInt64>] {
    defer { writtenRanges.removeAll(keepingCapacity: true) }
    return writtenRanges
  }
}

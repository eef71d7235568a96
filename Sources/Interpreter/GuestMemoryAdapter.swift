import CAtomics
import VMM
import X86

/// Presents the VMM's guest memory to the CPU model: RAM is handed out as host pointers, ROM only
/// for reads, and everything else (MMIO, holes) as nil so the model turns the access into an exit.
final class GuestMemoryAdapter: PhysicalMemory {
  private let memory: GuestMemory
  /// The regions, copied once: the layout does not change while a guest runs.
  private let regions: [MemoryRegion]

  init(_ memory: GuestMemory) {
    self.memory = memory
    self.regions = memory.regions
  }

  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    for r in regions where r.contains(physical, length: UInt64(length)) {
      if write && r.kind == .rom { return nil }
      return r.host + Int(physical - r.guestAddress)
    }
    return nil
  }

  /// A host compare-and-exchange: other vCPU threads see the update whole.
  func compareExchange(at pointer: UnsafeMutableRawPointer, size: Int, expected: UInt64, desired: UInt64) -> Bool {
    ca_compare_exchange(pointer, Int32(size), expected, desired)
  }

  /// A host atomic load.
  func atomicLoad(at pointer: UnsafeMutableRawPointer, size: Int) -> UInt64 { ca_load(pointer, Int32(size)) }
}

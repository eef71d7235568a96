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
}

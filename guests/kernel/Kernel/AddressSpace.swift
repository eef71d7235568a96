/// A task's address space: its own PML4 whose entry 0 shares the kernel half (the identity map of
/// the first 1 GiB, supervisor-only except the user-text pages), and whose entry 1 leads through
/// one PDPT and one PD to the page table of the task's 2 MiB user window.
struct AddressSpace {
  static let userPageFlags: UInt64 = 0x7  // present, writable, user
  static let tableFlags: UInt64 = 0x7
  static let clockPageFlags: UInt64 = 0x5  // present, user, read-only
  static let presentBit: UInt64 = 0x1
  static let frameMask: UInt64 = 0x000F_FFFF_FFFF_F000
  /// mmap refuses more than this many pages per task.
  static let pageLimit = 256

  /// Physical address of the PML4 (the CR3 value).
  private(set) var root: UInt64
  private var pdpt: UInt64
  private var pd: UInt64
  private var pageTable: UInt64
  private(set) var mappedPages = 0

  /// A new address space, or nil when the frame pool is exhausted.
  static func create() -> AddressSpace? {
    guard let root = FrameAllocator.allocate() else { return nil }
    guard let pdpt = FrameAllocator.allocate() else {
      FrameAllocator.release(root)
      return nil
    }
    guard let pd = FrameAllocator.allocate() else {
      FrameAllocator.release(root)
      FrameAllocator.release(pdpt)
      return nil
    }
    guard let pageTable = FrameAllocator.allocate() else {
      FrameAllocator.release(root)
      FrameAllocator.release(pdpt)
      FrameAllocator.release(pd)
      return nil
    }
    let kernelRoot = table(KernelLayout.kernelPML4)
    Platform.setPageTableEntry(table(root), kernelRoot.pointee)
    Platform.setPageTableEntry(table(root) + 1, pdpt | tableFlags)
    Platform.setPageTableEntry(table(pdpt), pd | tableFlags)
    Platform.setPageTableEntry(table(pd), pageTable | tableFlags)
    let space = AddressSpace(root: root, pdpt: pdpt, pd: pd, pageTable: pageTable)
    Platform.setPageTableEntry(space.entry(UserWindow.clockPage), KernelLayout.clockPage | clockPageFlags)
    return space
  }

  static func isInWindow(_ address: UInt64) -> Bool {
    address >= UserWindow.base && address < UserWindow.base + UserWindow.size
  }

  /// The page-table entry for a user-window address.
  private func entry(_ address: UInt64) -> UnsafeMutablePointer<UInt64> {
    Self.table(pageTable) + Int((address - UserWindow.base) / UserWindow.pageSize)
  }

  func isMapped(_ address: UInt64) -> Bool {
    Self.isInWindow(address) && entry(address).pointee & Self.presentBit != 0
  }

  /// Whether every byte of [address, address + length) is readable by this task.
  func isReadable(_ address: UInt64, length: UInt64) -> Bool {
    guard length > 0 else { return true }
    let (end, overflow) = address.addingReportingOverflow(length)
    guard !overflow else { return false }
    if address >= KernelLayout.userTextStart && end <= KernelLayout.userTextEnd { return true }
    guard Self.isInWindow(address), end <= UserWindow.base + UserWindow.size else { return false }
    var page = address & ~(UserWindow.pageSize - 1)
    while page < end {
      if !isMapped(page) { return false }
      page += UserWindow.pageSize
    }
    return true
  }

  /// Maps a zeroed page at a page-aligned user-window address; false when out of memory.
  mutating func map(_ address: UInt64) -> Bool {
    guard mappedPages < Self.pageLimit, let frame = FrameAllocator.allocate() else { return false }
    Platform.setPageTableEntry(entry(address), frame | Self.userPageFlags)
    mappedPages += 1
    return true
  }

  /// Unmaps a mapped page and frees its frame; the caller is running in this address space.
  mutating func unmap(_ address: UInt64) {
    let pte = entry(address)
    let frame = pte.pointee & Self.frameMask
    Platform.setPageTableEntry(pte, 0)
    Platform.invalidatePage(address)
    // Another CPU that ran this task may still have the root loaded (and the page cached).
    TLBShootdown.releaseAddressSpace(root)
    FrameAllocator.release(frame)
    mappedPages -= 1
  }

  /// Frees every page and table (the clock page stays the kernel's); the CPU must not be using
  /// this address space. Scans the page
  /// table from both ends (mmap pages sit low, the stack high) only until every mapped page is
  /// found, and clears what it touched so the tables go back to the pool already zero.
  mutating func destroy() {
    Platform.retireAddressSpace(root)  // paravirtual: the tables become ordinary pages again
    let entries = Self.table(pageTable)
    entry(UserWindow.clockPage).pointee = 0  // the kernel's page, not the pool's
    var low = 0
    var high = 511
    while mappedPages > 0 && low <= high {
      releaseEntry(entries + low)
      if high != low { releaseEntry(entries + high) }
      low += 1
      high -= 1
    }
    Self.table(pd).pointee = 0
    Self.table(pdpt).pointee = 0
    Self.table(root).pointee = 0
    (Self.table(root) + 1).pointee = 0
    FrameAllocator.release(pageTable, isZero: true)
    FrameAllocator.release(pd, isZero: true)
    FrameAllocator.release(pdpt, isZero: true)
    FrameAllocator.release(root, isZero: true)
    root = 0
  }

  private mutating func releaseEntry(_ entry: UnsafeMutablePointer<UInt64>) {
    let value = entry.pointee
    guard value & Self.presentBit != 0 else { return }
    FrameAllocator.release(value & Self.frameMask)
    entry.pointee = 0
    mappedPages -= 1
  }

  /// The page-table entry of a mapped page, for the PTE-update benchmark.
  func pageTableEntry(_ address: UInt64) -> UnsafeMutablePointer<UInt64> { entry(address) }

  private static func table(_ physical: UInt64) -> UnsafeMutablePointer<UInt64> {
    UnsafeMutablePointer(bitPattern: UInt(physical))!
  }
}

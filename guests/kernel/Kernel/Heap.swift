/// The allocator the embedded Swift runtime links against. The kernel keeps its state in static
/// storage and never frees, so a bump allocator (`free` is a no-op in Arch/cpu.S) over a fixed
/// 64 KiB region is enough. Its first three words hold the ticket lock that makes it safe on every
/// CPU; the boot CPU's first allocation (before any AP runs) sets it up.
private var heapNext: UInt64 = 0
private var heapLock: TicketLock? = nil

@_cdecl("posix_memalign")
func posix_memalign(
  _ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int
) -> Int32 {
  if heapNext == 0 {
    let storage = UnsafeMutablePointer<UInt64>(bitPattern: UInt(KernelLayout.heapStart))!
    storage.initialize(repeating: 0, count: 3)
    heapLock = TicketLock(storage: storage)
    heapNext = KernelLayout.heapStart + 24
  }
  let lock = heapLock!
  lock.acquire()
  defer { lock.release() }
  let align = UInt64(max(alignment, 16))
  let start = (heapNext + align - 1) & ~(align - 1)
  guard start + UInt64(size) <= KernelLayout.heapEnd else { return 12 }  // ENOMEM
  heapNext = start + UInt64(size)
  result.pointee = UnsafeMutableRawPointer(bitPattern: UInt(start))
  return 0
}

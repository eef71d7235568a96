/// The allocator the embedded Swift runtime links against. The kernel keeps its state in static
/// storage and never frees, so a bump allocator (`free` is a no-op in Arch/cpu.S) over a fixed 64 KiB region is enough.
private var heapNext: UInt64 = 0

@_cdecl("posix_memalign")
func posix_memalign(
  _ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int
) -> Int32 {
  if heapNext == 0 { heapNext = KernelLayout.heapStart }
  let align = UInt64(max(alignment, 16))
  let start = (heapNext + align - 1) & ~(align - 1)
  guard start + UInt64(size) <= KernelLayout.heapEnd else { return 12 }  // ENOMEM
  heapNext = start + UInt64(size)
  result.pointee = UnsafeMutableRawPointer(bitPattern: UInt(start))
  return 0
}

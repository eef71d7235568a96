@_extern(c, "memset") func kernel_memset(_ destination: UInt64, _ value: Int32, _ count: Int) -> UInt64

/// Physical 4 KiB pages from the frame pool: a bump pointer plus a stack of freed pages linked
/// through their first word. Pages come back zeroed.
enum FrameAllocator {
  private static var next: UInt64 = 0
  private static var freeList: UInt64 = 0
  private(set) static var framesInUse = 0

  static func allocate() -> UInt64? {
    var frame: UInt64
    if freeList != 0 {
      frame = freeList
      freeList = UnsafeMutablePointer<UInt64>(bitPattern: UInt(frame))!.pointee
    } else {
      if next == 0 { next = KernelLayout.framePoolStart }
      guard next < KernelLayout.framePoolEnd else { return nil }
      frame = next
      next += UserWindow.pageSize
    }
    _ = kernel_memset(frame, 0, Int(UserWindow.pageSize))
    framesInUse += 1
    return frame
  }

  static func release(_ frame: UInt64) {
    UnsafeMutablePointer<UInt64>(bitPattern: UInt(frame))!.pointee = freeList
    freeList = frame
    framesInUse -= 1
  }
}

@_extern(c, "memset") func kernel_memset(_ destination: UInt64, _ value: Int32, _ count: Int) -> UInt64

/// Physical 4 KiB pages from the frame pool, handed out zeroed. Freed pages go on one of two stacks
/// linked through their first word: `clean` pages are zero but for that link (page tables whose
/// entries were cleared on release), `dirty` ones need a full clear. Zeroing 4 KiB in ring 0 is the
/// expensive part on engines that emulate ring 0, so clean pages skip it. A lock makes it safe on
/// every CPU (the zeroing happens outside it).
enum FrameAllocator {
  private static var next: UInt64 = 0
  private static var cleanList: UInt64 = 0
  private static var dirtyList: UInt64 = 0
  private(set) static var framesInUse = 0
  private static var lock: TicketLock! = nil

  static func initialize() { lock = TicketLock() }

  static func allocate() -> UInt64? {
    lock.acquire()
    let frame: UInt64
    var needsClearing = false
    if cleanList != 0 {
      frame = cleanList
      cleanList = link(frame).pointee
      link(frame).pointee = 0
    } else if dirtyList != 0 {
      frame = dirtyList
      dirtyList = link(frame).pointee
      needsClearing = true
    } else {
      if next == 0 { next = KernelLayout.framePoolStart }
      guard next < KernelLayout.framePoolEnd else {
        lock.release()
        return nil
      }
      frame = next
      next += UserWindow.pageSize
      needsClearing = true  // the loader may have left data here
    }
    framesInUse += 1
    lock.release()
    if needsClearing { _ = kernel_memset(frame, 0, Int(UserWindow.pageSize)) }
    return frame
  }

  /// Returns a page; `isZero` promises every byte of it is 0.
  static func release(_ frame: UInt64, isZero: Bool = false) {
    lock.acquire()
    defer { lock.release() }
    if isZero {
      link(frame).pointee = cleanList
      cleanList = frame
    } else {
      link(frame).pointee = dirtyList
      dirtyList = frame
    }
    framesInUse -= 1
  }

  private static func link(_ frame: UInt64) -> UnsafeMutablePointer<UInt64> {
    UnsafeMutablePointer(bitPattern: UInt(frame))!
  }
}

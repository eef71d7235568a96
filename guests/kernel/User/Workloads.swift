/// CPU-bound ring-3 work shared by the self-test and the benchmarks. Plain loops over memory the
/// task maps itself (user code never allocates).
enum Workloads {
  /// Maps `pages` consecutive pages at the start of the mmap area.
  static func mapBuffer(pages: Int) -> UnsafeMutablePointer<UInt32>? {
    for page in 0..<pages {
      let address = UserWindow.base + UInt64(page + 1) * UserWindow.pageSize
      guard Kernel.mmap(address) == Int(address) else { return nil }
    }
    return Kernel.memory(UserWindow.base + UserWindow.pageSize)
  }

  /// A xorshift sequence.
  static func fill(_ buffer: UnsafeMutablePointer<UInt32>, count: Int, seed: UInt32) {
    var state = seed | 1
    for index in 0..<count {
      state ^= state << 13
      state ^= state >> 17
      state ^= state << 5
      buffer[index] = state
    }
  }

  /// FNV-1a over the bytes of `count` words.
  static func hash(_ buffer: UnsafeMutablePointer<UInt32>, count: Int) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    let bytes = UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: UInt8.self)
    for index in 0..<(count * 4) {
      hash ^= UInt64(bytes[index])
      hash = hash &* 0x100_0000_01B3
    }
    return hash
  }

  /// Heap sort, ascending.
  static func sort<Element: Comparable>(_ buffer: UnsafeMutablePointer<Element>, count: Int) {
    guard count > 1 else { return }
    var start = count / 2
    while start > 0 {
      start -= 1
      siftDown(buffer, start, count)
    }
    var end = count - 1
    while end > 0 {
      let top = buffer[0]
      buffer[0] = buffer[end]
      buffer[end] = top
      siftDown(buffer, 0, end)
      end -= 1
    }
  }

  private static func siftDown<Element: Comparable>(
    _ buffer: UnsafeMutablePointer<Element>, _ start: Int, _ end: Int
  ) {
    var root = start
    while 2 * root + 1 < end {
      var child = 2 * root + 1
      if child + 1 < end && buffer[child] < buffer[child + 1] { child += 1 }
      guard buffer[root] < buffer[child] else { return }
      let value = buffer[root]
      buffer[root] = buffer[child]
      buffer[child] = value
      root = child
    }
  }

  /// product = a x b for size x size matrices, wrapping arithmetic.
  static func multiply(
    _ a: UnsafeMutablePointer<UInt32>, _ b: UnsafeMutablePointer<UInt32>, into product: UnsafeMutablePointer<UInt32>,
    size: Int
  ) {
    for row in 0..<size {
      for column in 0..<size {
        var sum: UInt32 = 0
        for k in 0..<size { sum = sum &+ a[row * size + k] &* b[k * size + column] }
        product[row * size + column] = sum
      }
    }
  }
}

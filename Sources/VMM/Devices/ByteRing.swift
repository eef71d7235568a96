/// A growable FIFO of bytes with O(1) append and pop (a ring buffer that doubles when full).
struct ByteRing {
  private var storage: [UInt8]
  private var head = 0
  private(set) var count = 0

  init(capacity: Int) {
    storage = [UInt8](repeating: 0, count: max(1, capacity))
  }

  var isEmpty: Bool { count == 0 }

  mutating func append(_ byte: UInt8) {
    if count == storage.count { grow() }
    storage[(head + count) % storage.count] = byte
    count += 1
  }

  mutating func append(contentsOf bytes: some Sequence<UInt8>) {
    for b in bytes { append(b) }
  }

  mutating func popFirst() -> UInt8? {
    guard count > 0 else { return nil }
    let b = storage[head]
    head = (head + 1) % storage.count
    count -= 1
    return b
  }

  /// Removes and returns up to `limit` bytes in order.
  mutating func removeFirst(upTo limit: Int) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(min(limit, count))
    while out.count < limit, let b = popFirst() { out.append(b) }
    return out
  }

  mutating func removeAll() {
    head = 0
    count = 0
  }

  private mutating func grow() {
    var bigger = [UInt8](repeating: 0, count: storage.count * 2)
    for i in 0..<count { bigger[i] = storage[(head + i) % storage.count] }
    storage = bigger
    head = 0
  }
}

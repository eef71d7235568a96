/// One split virtqueue (virtio 1.x, "Split Virtqueues"): the descriptor table, the driver's
/// available ring and the device's used ring, all in guest memory at addresses the driver chose.
///
/// Everything read from guest memory is checked before use, because the driver is the guest:
/// ring and buffer addresses must lie in guest RAM (`GuestMemory.isBacked`, so never in MMIO or
/// outside the guest), an available index may not run more than the queue size ahead, a head or
/// next index must be inside the table, a chain may not be longer than the table (which also ends
/// loops), an indirect table must be a whole number of descriptors and may not nest. A violation
/// is a `Virtqueue.Broken` error: the transport then sets DEVICE_NEEDS_RESET and stops using the
/// queue, as the specification allows; the VMM never reads or writes outside guest RAM.
final class Virtqueue {
  /// Descriptor flags.
  enum Flag {
    static let next: UInt16 = 1
    static let write: UInt16 = 2
    static let indirect: UInt16 = 4
  }

  /// The largest queue size this VMM offers.
  static let maximumSize: UInt16 = 256

  /// Queue size (a power of two, at most `maximumSize`), as the driver set it.
  var size: UInt16 = Virtqueue.maximumSize
  /// MSI-X vector for used-buffer notifications (0xFFFF: none).
  var msixVector: UInt16 = 0xFFFF
  /// Whether the driver enabled the queue.
  var enabled = false
  /// Guest addresses of the descriptor table, the available ring and the used ring.
  var descriptorTable: UInt64 = 0
  var availableRing: UInt64 = 0
  var usedRing: UInt64 = 0
  /// The next available-ring entry the device will take, and the used index it will write next.
  private(set) var lastAvailable: UInt16 = 0
  private(set) var nextUsed: UInt16 = 0
  /// Whether indirect descriptors were negotiated.
  var indirectDescriptors = false

  /// A driver error that makes the queue unusable.
  struct Broken: Error, CustomStringConvertible {
    /// What was wrong, for logs and tests.
    let description: String
  }

  /// One buffer of a chain: guest address and length, and whether the device writes it.
  struct Buffer: Equatable {
    var address: UInt64
    var length: UInt32
    var deviceWrites: Bool
  }

  /// A descriptor chain taken from the available ring.
  struct Chain {
    /// The head index, which the used ring reports back.
    var head: UInt16
    /// Its buffers in order: by the specification the device-readable ones come first.
    var buffers: [Buffer]
  }

  /// Back to the reset state (driver reset or device reset).
  func reset() {
    size = Virtqueue.maximumSize
    msixVector = 0xFFFF
    enabled = false
    descriptorTable = 0
    availableRing = 0
    usedRing = 0
    lastAvailable = 0
    nextUsed = 0
    indirectDescriptors = false
  }

  /// Checks the rings' placement when the driver enables the queue.
  func validate(in memory: GuestMemory) throws(Broken) {
    let n = UInt64(size)
    guard size > 0, size <= Virtqueue.maximumSize, size & (size - 1) == 0 else {
      throw Broken(description: "queue size \(size) is not a power of two up to \(Virtqueue.maximumSize)")
    }
    try requireRAM(memory, descriptorTable, 16 * n, "descriptor table")
    try requireRAM(memory, availableRing, 6 + 2 * n, "available ring")
    try requireRAM(memory, usedRing, 6 + 8 * n, "used ring")
  }

  private func requireRAM(_ memory: GuestMemory, _ address: UInt64, _ length: UInt64, _ what: String) throws(Broken) {
    guard address &+ length >= address, memory.isBacked(address, length: length) else {
      throw Broken(description: "\(what) at 0x\(String(address, radix: 16)) (+\(length)) is not in guest RAM")
    }
  }

  private func read<T: FixedWidthInteger>(_ memory: GuestMemory, _ type: T.Type, _ address: UInt64) throws(Broken) -> T
  {
    do throws(MemoryError) {
      return try memory.read(T.self, at: address)
    } catch {
      throw Broken(description: "read of guest 0x\(String(address, radix: 16)) failed: \(error)")
    }
  }

  private func write<T: FixedWidthInteger>(_ memory: GuestMemory, _ value: T, _ address: UInt64) throws(Broken) {
    do throws(MemoryError) {
      try memory.write(value, at: address)
    } catch {
      throw Broken(description: "write of guest 0x\(String(address, radix: 16)) failed: \(error)")
    }
  }

  /// The next chain the driver made available, or nil when there is none.
  func popAvailable(_ memory: GuestMemory) throws(Broken) -> Chain? {
    guard enabled else { return nil }
    let availableIndex = try read(memory, UInt16.self, availableRing + 2)
    guard availableIndex != lastAvailable else { return nil }
    guard availableIndex &- lastAvailable <= size else {
      throw Broken(description: "available index \(availableIndex) is more than \(size) ahead of \(lastAvailable)")
    }
    let head = try read(memory, UInt16.self, availableRing + 4 + 2 * UInt64(lastAvailable % size))
    lastAvailable &+= 1
    return Chain(head: head, buffers: try walk(memory, head: head))
  }

  /// The buffers of the chain starting at descriptor `head`.
  private func walk(_ memory: GuestMemory, head: UInt16) throws(Broken) -> [Buffer] {
    var buffers: [Buffer] = []
    var table = descriptorTable
    var tableSize = UInt32(size)
    var index = UInt32(head)
    var indirect = false
    var steps: UInt32 = 0
    while true {
      guard index < tableSize else {
        throw Broken(description: "descriptor index \(index) outside a table of \(tableSize)")
      }
      steps += 1
      guard steps <= tableSize else { throw Broken(description: "descriptor chain longer than its table (a loop?)") }
      let d = table + 16 * UInt64(index)
      let address = try read(memory, UInt64.self, d)
      let length = try read(memory, UInt32.self, d + 8)
      let flags = try read(memory, UInt16.self, d + 12)
      let next = try read(memory, UInt16.self, d + 14)
      if flags & Flag.indirect != 0 {
        guard indirectDescriptors, !indirect else {
          throw Broken(description: indirect ? "nested indirect descriptor" : "indirect descriptor not negotiated")
        }
        guard length > 0, length % 16 == 0, length / 16 <= 0xFFFF else {
          throw Broken(description: "indirect table of \(length) bytes")
        }
        try requireRAM(memory, address, UInt64(length), "indirect table")
        table = address
        tableSize = length / 16
        index = 0
        indirect = true
        steps = 0
        continue
      }
      try requireRAM(memory, address, UInt64(length), "buffer")
      buffers.append(Buffer(address: address, length: length, deviceWrites: flags & Flag.write != 0))
      guard flags & Flag.next != 0 else { return buffers }
      index = UInt32(next)
    }
  }

  /// Returns chain `head` to the driver with `written` bytes written into its buffers.
  func pushUsed(_ memory: GuestMemory, head: UInt16, written: UInt32) throws(Broken) {
    let slot = usedRing + 4 + 8 * UInt64(nextUsed % size)
    try write(memory, UInt32(head), slot)
    try write(memory, written, slot + 4)
    nextUsed &+= 1
    // The element is in place before the index that publishes it (x86 keeps stores in order).
    try write(memory, nextUsed, usedRing + 2)
  }

  /// Whether the driver asked not to be interrupted for used buffers (VIRTQ_AVAIL_F_NO_INTERRUPT).
  func interruptsSuppressed(_ memory: GuestMemory) -> Bool {
    ((try? read(memory, UInt16.self, availableRing)) ?? 0) & 1 != 0
  }
}

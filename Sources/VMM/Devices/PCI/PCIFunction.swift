/// One function of a device on the VMM's PCI bus (bus 0), reached through the host bridge's
/// configuration mechanism #1 (`PCIHostBridge`). Configuration accesses (through the bridge), port
/// accesses and BAR accesses (through `PCIMemoryWindow`) all come on a vCPU thread under the
/// machine's device lock (docs/design/machine.md), so a function's state has one user at a time.
public protocol PCIFunction: AnyObject {
  /// `size` (1, 2 or 4) bytes of configuration space at `offset` (0-255, aligned to `size`).
  func readConfiguration(offset: Int, size: Int) -> UInt32
  /// Writes `size` bytes at `offset`; read-only bits keep their values.
  func writeConfiguration(offset: Int, size: Int, value: UInt32)
  /// Back to the power-on state (a machine reset).
  func resetConfiguration()
}

/// A type-0 configuration space header and what the guest may change in it: 256 bytes, each
/// with a mask of its writable bits. A function builds it once with its identity and applies
/// guest writes through the mask.
public struct PCIConfigurationSpace {
  private var bytes = [UInt8](repeating: 0, count: 256)
  private var writable = [UInt8](repeating: 0, count: 256)
  /// Where the next capability goes (`addCapability`), and the previous one's next pointer.
  private var nextCapability = 0x40
  private var lastCapabilityLink = 0x34

  /// A header with the given identity: vendor and device IDs, class code (class, subclass,
  /// programming interface), revision and subsystem IDs. The command register's I/O space, memory
  /// space, bus master and interrupt-disable bits and the interrupt line (0x3C) are writable.
  public init(
    vendor: UInt16, device: UInt16, classCode: UInt32, revision: UInt8 = 0, subsystemVendor: UInt16 = 0,
    subsystem: UInt16 = 0, interruptPin: UInt8 = 0
  ) {
    set16(0x00, vendor)
    set16(0x02, device)
    bytes[0x08] = revision
    bytes[0x09] = UInt8(truncatingIfNeeded: classCode)
    bytes[0x0A] = UInt8(truncatingIfNeeded: classCode >> 8)
    bytes[0x0B] = UInt8(truncatingIfNeeded: classCode >> 16)
    set16(0x2C, subsystemVendor)
    set16(0x2E, subsystem)
    bytes[0x3D] = interruptPin
    writable[0x04] = 0x07  // I/O space, memory space, bus master
    writable[0x05] = 0x04  // interrupt disable
    writable[0x3C] = 0xFF  // interrupt line (firmware's note to the OS)
  }

  /// Sets a 16-bit value (device setup, not a guest write).
  public mutating func set16(_ offset: Int, _ value: UInt16) {
    bytes[offset] = UInt8(truncatingIfNeeded: value)
    bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
  }

  /// Sets a byte (device setup, not a guest write).
  public mutating func set8(_ offset: Int, _ value: UInt8) { bytes[offset] = value }

  /// Makes bits of a byte writable by the guest.
  public mutating func allowWrites(_ offset: Int, mask: UInt8) { writable[offset] = mask }

  /// The byte at `offset`.
  public func byte(_ offset: Int) -> UInt8 { bytes[offset] }

  /// Declares BAR `index` (0-5) a 32-bit memory BAR of `size` bytes (a power of two, at least 16)
  /// at `base`: its address bits are writable, so a guest sizes it the usual way (write all ones,
  /// read back the size mask) and moves it where it likes.
  public mutating func addMemoryBAR(_ index: Int, size: UInt32, base: UInt32 = 0) {
    precondition((0...5).contains(index) && size >= 16 && size & (size - 1) == 0, "a BAR is a power of two >= 16")
    let offset = 0x10 + 4 * index
    let addressMask = ~(size - 1)
    let value = base & addressMask
    for i in 0..<4 {
      bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))
      writable[offset + i] = UInt8(truncatingIfNeeded: addressMask >> (8 * UInt32(i))) & (i == 0 ? 0xF0 : 0xFF)
    }
  }

  /// The guest address memory BAR `index` decodes at, or nil while memory decoding is off
  /// (command bit 1) or the BAR holds 0 (unassigned).
  public func memoryBAR(_ index: Int) -> UInt64? {
    guard bytes[0x04] & 0x02 != 0 else { return nil }
    let base = UInt64(read(offset: 0x10 + 4 * index, size: 4) & 0xFFFF_FFF0)
    return base == 0 ? nil : base
  }

  /// Appends a capability with `id` and `body` (the bytes after the ID and next pointer) to the
  /// list at 0x34, with `writableMask` over the body (missing bytes read-only); returns the
  /// capability's offset.
  @discardableResult
  public mutating func addCapability(id: UInt8, body: [UInt8], writableMask: [UInt8] = []) -> Int {
    let offset = nextCapability
    precondition(offset + 2 + body.count <= 256, "capabilities overflow the configuration space")
    bytes[offset] = id
    bytes[offset + 1] = 0
    for (i, b) in body.enumerated() {
      bytes[offset + 2 + i] = b
      writable[offset + 2 + i] = i < writableMask.count ? writableMask[i] : 0
    }
    bytes[lastCapabilityLink] = UInt8(offset)
    lastCapabilityLink = offset + 1
    bytes[0x06] |= 0x10  // status: capabilities list
    nextCapability = (offset + 2 + body.count + 3) & ~3
    return offset
  }

  /// `size` bytes at `offset`, little-endian; bytes past 255 read as zero.
  public func read(offset: Int, size: Int) -> UInt32 {
    var value: UInt32 = 0
    for i in 0..<size where (0..<256).contains(offset + i) { value |= UInt32(bytes[offset + i]) << (8 * i) }
    return value
  }

  /// A guest write of `size` bytes at `offset`: only writable bits change.
  public mutating func write(offset: Int, size: Int, value: UInt32) {
    for i in 0..<size where (0..<256).contains(offset + i) {
      let m = writable[offset + i]
      let v = UInt8(truncatingIfNeeded: value >> (8 * i))
      bytes[offset + i] = (bytes[offset + i] & ~m) | (v & m)
    }
  }
}

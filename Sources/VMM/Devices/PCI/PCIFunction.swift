/// One function of a device on the VMM's PCI bus (bus 0), reached through the host bridge's
/// configuration mechanism #1 (`PCIHostBridge`). The bridge holds the lock of its port range while
/// it calls these (docs/design/machine.md): a function's configuration space has one writer at a
/// time. Registers a function also exposes on ports or MMIO are guarded by that device's own lock,
/// so state shared between the two sides must be safe on its own.
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

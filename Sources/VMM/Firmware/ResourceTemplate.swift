/// ACPI resource descriptors, the contents of a `ResourceTemplate()` buffer such as a PCI host
/// bridge's `_CRS` (ACPI specification, "Resource Data Types for ACPI"). Each function returns one
/// descriptor's bytes; `template` ends the list with the End Tag.
enum ResourceTemplate {
  /// The descriptors followed by the End Tag (0x79, checksum 0: "treat as correct").
  static func template(_ descriptors: [[UInt8]]) -> [UInt8] { descriptors.flatMap { $0 } + [0x79, 0x00] }

  /// A fixed-range 16-bit I/O port descriptor (small type 0x47): `length` ports at `base`.
  static func io(base: UInt16, length: UInt8) -> [UInt8] {
    [0x47, 0x01] + le16(base) + le16(base) + [0x01, length]
  }

  /// A Word Address Space descriptor (large type 0x88) the bridge produces: bus numbers
  /// (`resourceType` 2) or I/O ports (1, entire ISA/non-ISA range), `[minimum, maximum]`.
  static func wordAddressSpace(resourceType: UInt8, minimum: UInt16, maximum: UInt16) -> [UInt8] {
    let typeFlags: UInt8 = resourceType == 1 ? 0x03 : 0x00
    return [0x88, 0x0D, 0x00, resourceType, 0x0C, typeFlags] + le16(0) + le16(minimum) + le16(maximum) + le16(0)
      + le16(maximum &- minimum &+ 1)
  }

  /// A DWord memory range descriptor (large type 0x87) the bridge produces: read-write,
  /// non-cacheable, `[minimum, maximum]`.
  static func dwordMemory(minimum: UInt32, maximum: UInt32) -> [UInt8] {
    [0x87, 0x17, 0x00, 0x00, 0x0C, 0x01] + le32(0) + le32(minimum) + le32(maximum) + le32(0)
      + le32(maximum &- minimum &+ 1)
  }

  /// An Extended Interrupt descriptor (large type 0x89) the device consumes: the global system
  /// interrupt `gsi`, level-triggered, active high, shared (what a PCI interrupt link routes to).
  static func sharedLevelInterrupt(gsi: UInt32) -> [UInt8] {
    // Flags: consumer (bit 0), level (bit 1 clear), active high (bit 2 clear), shared (bit 3).
    [0x89, 0x06, 0x00, 0x09, 0x01] + le32(gsi)
  }

  private static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
  private static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

/// The command block registers of one ATA channel (ports base+1 to base+6), written by the host to
/// both devices at once, as on a real cable. For 48-bit commands the features, sector count and
/// LBA registers are two deep: a write pushes the previous value into the "previous" half, which
/// reads back while the device control register's HOB bit is set.
struct ATATaskFile {
  /// Registers 1-5 by port offset (features, sector count, LBA low/mid/high), current values and
  /// the values they held before the last write (index 0 unused).
  private var current = [UInt8](repeating: 0, count: 6)
  private var previous = [UInt8](repeating: 0, count: 6)
  /// Device/head (base+6): bit 4 selects device 1, bit 6 LBA addressing, bits 0-3 the head or
  /// LBA bits 24-27.
  var device: UInt8 = 0

  /// A host write of register `offset` (1-5): the old value becomes the previous one.
  mutating func write(_ offset: Int, _ byte: UInt8) {
    previous[offset] = current[offset]
    current[offset] = byte
  }

  /// Register `offset` (1-5) as the host reads it: the previous value while `hob` is set.
  func read(_ offset: Int, hob: Bool) -> UInt8 { hob ? previous[offset] : current[offset] }

  /// Features (base+1), current and previous.
  var features: UInt8 { current[1] }
  /// Sector count (base+2).
  var count: UInt8 {
    get { current[2] }
    set { current[2] = newValue }
  }
  var previousCount: UInt8 { previous[2] }
  /// LBA bits 0-7 / CHS sector number (base+3).
  var lbaLow: UInt8 {
    get { current[3] }
    set { current[3] = newValue }
  }
  /// LBA bits 8-15 / cylinder low (base+4).
  var lbaMid: UInt8 {
    get { current[4] }
    set { current[4] = newValue }
  }
  /// LBA bits 16-23 / cylinder high (base+5).
  var lbaHigh: UInt8 {
    get { current[5] }
    set { current[5] = newValue }
  }

  /// The selected device (0 or 1).
  var selectedDevice: Int { device & 0x10 != 0 ? 1 : 0 }
  /// Whether the command addresses sectors by LBA (else by cylinder, head and sector).
  var usesLBA: Bool { device & 0x40 != 0 }

  /// The 28-bit LBA (LBA mode).
  var lba28: UInt64 {
    UInt64(device & 0x0F) << 24 | UInt64(lbaHigh) << 16 | UInt64(lbaMid) << 8 | UInt64(lbaLow)
  }

  /// The 48-bit LBA.
  var lba48: UInt64 {
    UInt64(previous[5]) << 40 | UInt64(previous[4]) << 32 | UInt64(previous[3]) << 24
      | UInt64(lbaHigh) << 16 | UInt64(lbaMid) << 8 | UInt64(lbaLow)
  }

  /// The sector count of a 28-bit command (0 means 256).
  var count28: Int { count == 0 ? 256 : Int(count) }

  /// The sector count of a 48-bit command (0 means 65,536).
  var count48: Int {
    let n = Int(previous[2]) << 8 | Int(count)
    return n == 0 ? 65536 : n
  }

  /// Puts a 28-bit LBA back into the registers (the failing sector of a command that ends in
  /// error).
  mutating func setLBA28(_ lba: UInt64) {
    lbaLow = UInt8(truncatingIfNeeded: lba)
    lbaMid = UInt8(truncatingIfNeeded: lba >> 8)
    lbaHigh = UInt8(truncatingIfNeeded: lba >> 16)
    device = (device & 0xF0) | UInt8(truncatingIfNeeded: lba >> 24) & 0x0F
  }

  /// Puts a 48-bit LBA back into the registers.
  mutating func setLBA48(_ lba: UInt64) {
    lbaLow = UInt8(truncatingIfNeeded: lba)
    lbaMid = UInt8(truncatingIfNeeded: lba >> 8)
    lbaHigh = UInt8(truncatingIfNeeded: lba >> 16)
    previous[3] = UInt8(truncatingIfNeeded: lba >> 24)
    previous[4] = UInt8(truncatingIfNeeded: lba >> 32)
    previous[5] = UInt8(truncatingIfNeeded: lba >> 40)
  }

  /// The signature a device leaves after a reset or EXECUTE DEVICE DIAGNOSTIC: an ATA (not
  /// ATAPI) device, sector count and LBA low 1, LBA mid and high 0, device 0 selected.
  mutating func setSignature() {
    count = 1
    lbaLow = 1
    lbaMid = 0
    lbaHigh = 0
    device = 0
  }
}

/// The ACPI PM1a event register block at I/O port 0x600 (`PlatformDescription.pm1EventBlock`,
/// 4 bytes, as the FADT's PM1a_EVT_BLK describes it): the 16-bit PM1 status register at 0x600
/// and the 16-bit PM1 enable register at 0x602.
///
/// ACPI requires the block on every platform that is not hardware-reduced, and Linux's ACPI
/// core reads and writes it while it starts (it clears the status bits and disables the fixed
/// events) before it will use `\_S5` to power off; unclaimed ports would read as all ones.
/// No fixed event exists here (no PM timer overflow, no power or sleep button, no RTC alarm, no
/// wake), so status always reads 0 and writes (write-one-to-clear) change nothing; the enable
/// register keeps the defined enable bits (TMR_EN 0, GBL_EN 5, PWRBTN_EN 8, SLPBTN_EN 9,
/// RTC_EN 10) and reads them back. No SCI is ever raised.
///
/// Register it for ports 0x600...0x603, next to `PowerOffDevice` at 0x604.
public final class PM1EventBlock: PortIODevice, ResettableDevice {
  /// The enable bits the register keeps.
  public static let enableMask: UInt16 = 0x0721
  private var enable: UInt16 = 0

  /// The block in its power-on state (nothing enabled).
  public init() {}

  /// Every enable bit clear (`ResettableDevice`).
  public func reset() { enable = 0 }

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    // The block as one little-endian dword: status (always 0) in bytes 0-1, enable in bytes 2-3.
    let image = UInt32(enable) << 16
    let offset = UInt32(port &- PlatformDescription.pm1EventBlock) & 3
    return image >> (8 * offset)
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    let offset = Int(port &- PlatformDescription.pm1EventBlock) & 3
    // Merge the written bytes into the block's image, then keep the enable half.
    var image = UInt32(enable) << 16
    for i in 0..<max(1, min(size, 4 - offset)) {
      let shift = UInt32(8 * (offset + i))
      image = (image & ~(0xFF << shift)) | (((value >> UInt32(8 * i)) & 0xFF) << shift)
    }
    enable = UInt16(image >> 16) & Self.enableMask
  }
}

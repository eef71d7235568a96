/// The clean power-off: an ACPI PM1a control register at port 0x604 in the style of QEMU's
/// PIIX4/`isa-pm` devices, without ACPI tables.
///
/// A 16-bit (or 32-bit) write with SLP_EN (bit 13) set, i.e. `outw(0x604, 0x2000)` as Linux's
/// ACPI poweroff and QEMU-aware test guests do, sets `poweredOff`; the run loop then ends the VM
/// with exit status 0. That is the one documented way for a guest to stop with status 0.
/// Byte writes and writes without SLP_EN are stored (SLP_TYP and SCI_EN read back) but do
/// nothing; SLP_EN itself is write-only and reads as zero.
public final class PowerOffDevice: PortIODevice {
  /// The guest requested power-off.
  public private(set) var poweredOff = false
  private var control: UInt16 = 0
  /// The PM1 control register's SLP_EN bit.
  public static let sleepEnable: UInt16 = 0x2000

  /// The device in its power-on state.
  public init() {}

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    // A byte read of the high half (0x605) sees the upper byte.
    UInt32(port & 1 == 0 ? control : control >> 8)
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    guard size >= 2, port & 1 == 0 else { return }
    let v = UInt16(truncatingIfNeeded: value)
    control = v & ~Self.sleepEnable
    if v & Self.sleepEnable != 0 { poweredOff = true }
  }
}

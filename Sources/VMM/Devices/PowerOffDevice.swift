/// The clean power-off: an ACPI PM1a control register at port 0x604 in the style of QEMU's
/// PIIX4/`isa-pm` devices, without ACPI tables.
///
/// A 16-bit (or 32-bit) write with SLP_EN (bit 13) set, i.e. `outw(0x604, 0x2000)` as Linux's
/// ACPI poweroff and QEMU-aware test guests do, stops the machine (`StopReason.powerOff`) with
/// exit status 0. That is the one documented way for a guest to stop with status 0.
/// Byte writes and writes without SLP_EN are stored (SLP_TYP and SCI_EN read back) but do
/// nothing; SLP_EN itself is write-only and reads as zero.
public final class PowerOffDevice: PortIODevice, ResettableDevice {
  private var register: UInt16 = 0
  private let control: MachineControl
  /// The PM1 control register's SLP_EN bit.
  public static let sleepEnable: UInt16 = 0x2000

  /// The device in its power-on state; the power-off goes to `control`.
  public init(control: MachineControl = MachineControl()) { self.control = control }

  /// The PM1 control register cleared (`ResettableDevice`).
  public func reset() { register = 0 }

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    // A byte read of the high half (0x605) sees the upper byte.
    UInt32(port & 1 == 0 ? register : register >> 8)
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    guard size >= 2, port & 1 == 0 else { return }
    let v = UInt16(truncatingIfNeeded: value)
    register = v & ~Self.sleepEnable
    if v & Self.sleepEnable != 0 { control.requestStop(.powerOff) }
  }
}

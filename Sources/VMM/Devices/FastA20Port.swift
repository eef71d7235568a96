/// System control port A (port 0x92, "fast A20"): bit 1 gates address line 20, writing bit 0 as 1
/// requests a fast reset.
///
/// `a20Enabled` records what the guest asked for. On a PC the effective A20 is this bit OR the
/// keyboard controller's output port bit (`MachineControl.setA20`); the runner passes changes to
/// the vCPU (`VirtualCPU.setA20Gate`): the interpreter then wraps unpaged addresses at 1 MiB, KVM
/// cannot and keeps the gate open. After reset the port reads 0: A20 is then enabled through the
/// keyboard controller, as on QEMU.
public final class FastA20Port: PortIODevice, ResettableDevice {
  private var value: UInt8 = 0
  /// Bit 1 of port 0x92.
  public var a20Enabled: Bool { value & 0x02 != 0 }
  private let control: MachineControl

  /// The device in its power-on state; reset requests and the A20 bit go to `control`.
  public init(control: MachineControl = MachineControl()) { self.control = control }

  /// Port 0x92 reads 0 again (`ResettableDevice`).
  public func reset() { value = 0 }

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 { UInt32(value) }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    let byte = UInt8(truncatingIfNeeded: value)
    if byte & 0x01 != 0 { control.requestReset(.fastResetPort) }
    self.value = byte & 0x02
    control.setA20(.fastA20Port, enabled: byte & 0x02 != 0)
  }
}

/// QEMU's `isa-debug-exit` device at port 0xF4: a guest test harness writes a value to end the VM
/// with a chosen exit status.
///
/// A write of `v` (any size) stops the machine with `StopReason.debugExit(value: v)`, whose exit
/// status is `(v << 1) | 1`, so a guest can never produce status 0 this way (that is reserved for
/// the clean power-off, `PowerOffDevice`). The first write wins. Reads return 0.
public final class DebugExitDevice: PortIODevice {
  private let control: MachineControl

  /// The device in its power-on state; the stop goes to `control`.
  public init(control: MachineControl = MachineControl()) { self.control = control }

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 { 0 }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    // The first request wins (MachineControl keeps the first stop): a guest that keeps writing
    // does not change its verdict.
    control.requestStop(.debugExit(value: value & 0x7FFF_FFFF))
  }
}

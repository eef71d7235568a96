/// QEMU's `isa-debug-exit` device at port 0xF4: a guest test harness writes a value to end the VM
/// with a chosen exit status.
///
/// A write of `v` (any size) sets `requestedExitStatus = (v << 1) | 1`, so a guest can never
/// produce status 0 this way (that is reserved for the clean power-off, `PowerOffDevice`). The
/// run loop checks `requestedExitStatus` after port writes and stops the VM. Reads return 0.
public final class DebugExitDevice: PortIODevice {
  /// The exit status the guest asked for, or nil while it has not asked.
  public private(set) var requestedExitStatus: UInt32?

  /// The device in its power-on state.
  public init() {}

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 { 0 }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    // The first request wins: a guest that keeps writing does not change its verdict.
    if requestedExitStatus == nil { requestedExitStatus = (value << 1) | 1 }
  }
}

/// The Bochs/QEMU debug console ("port E9 hack"), at port 0xE9 and SeaBIOS's debug port 0x402.
///
/// Every byte written (the low byte of wider writes) goes to `output`. Reads return 0xE9 on
/// either port, which is how guests detect that the console is there.
public final class DebugConsole: PortIODevice {
  /// Receives every byte the guest writes.
  public let output: ([UInt8]) -> Void

  /// A debug console handing every byte written to `output`.
  public init(output: @escaping ([UInt8]) -> Void) {
    self.output = output
  }

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 { 0xE9 }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    output([UInt8(truncatingIfNeeded: value)])
  }
}

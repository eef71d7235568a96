/// The POST diagnostic port 0x80: firmware writes progress codes there and Linux writes to it as
/// an I/O delay. The last value written reads back; `writeCount` counts the writes. (Driven from
/// one vCPU at a time under the device lock: no dynamic exclusivity checks on this hot path.)
public final class DiagnosticPort: PortIODevice {
  /// The last POST code written.
  @exclusivity(unchecked) public private(set) var lastCode: UInt8 = 0
  /// Writes seen (Linux uses the port as an I/O delay, so this grows fast).
  @exclusivity(unchecked) public private(set) var writeCount: UInt64 = 0

  /// The device in its power-on state.
  public init() {}

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 { UInt32(lastCode) }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    lastCode = UInt8(truncatingIfNeeded: value)
    writeCount &+= 1
  }

  /// Reads and writes only keep the code: lightweight (`PortIODevice`).
  public func isLightweight(port: UInt16, isWrite: Bool) -> Bool { true }
}

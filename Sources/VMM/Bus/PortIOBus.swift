/// Dispatches port I/O by port range to devices. Unclaimed ports read as all ones and ignore
/// writes, like an ISA bus with nothing on it.
public final class PortIOBus {
  /// One device's port range.
  public struct Mapping {
    /// The ports the device answers.
    public let ports: ClosedRange<UInt16>
    /// The device.
    public let device: any PortIODevice
  }
  /// A registration the bus refuses.
  public enum BusError: Error, CustomStringConvertible {
    case overlap(ClosedRange<UInt16>)
    /// The problem in one line.
    public var description: String {
      switch self {
      case .overlap(let r):
        return "port range 0x\(String(r.lowerBound, radix: 16))-0x\(String(r.upperBound, radix: 16)) is already claimed"
      }
    }
  }

  /// The registered ranges, in registration order.
  public private(set) var mappings: [Mapping] = []
  /// Accesses to ports no device claims (for diagnostics).
  public private(set) var unclaimedAccesses: UInt64 = 0

  /// An empty bus.
  public init() {}

  /// Maps `device` at `ports`; throws when a port is already taken.
  public func register(_ device: any PortIODevice, ports: ClosedRange<UInt16>) throws(BusError) {
    if mappings.contains(where: { $0.ports.overlaps(ports) }) { throw .overlap(ports) }
    mappings.append(Mapping(ports: ports, device: device))
  }

  /// The device answering `port`, if any.
  @inline(__always)
  public func device(for port: UInt16) -> (any PortIODevice)? {
    for m in mappings where m.ports.contains(port) { return m.device }
    return nil
  }

  /// An IN of `size` bytes (all ones where no device answers). Called on the vCPU thread.
  public func read(port: UInt16, size: Int) -> UInt32 {
    let mask: UInt32 = size >= 4 ? .max : (1 << (UInt32(size) * 8)) - 1
    guard let d = device(for: port) else {
      unclaimedAccesses += 1
      return mask
    }
    return d.read(port: port, size: size) & mask
  }

  /// An OUT of `size` bytes (dropped where no device answers). Called on the vCPU thread.
  public func write(port: UInt16, size: Int, value: UInt32) {
    let mask: UInt32 = size >= 4 ? .max : (1 << (UInt32(size) * 8)) - 1
    guard let d = device(for: port) else {
      unclaimedAccesses += 1
      return
    }
    d.write(port: port, size: size, value: value & mask)
  }
}

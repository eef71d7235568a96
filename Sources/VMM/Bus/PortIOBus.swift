/// Dispatches port I/O by port range to devices. Unclaimed ports read as all ones and ignore
/// writes, like an ISA bus with nothing on it.
public final class PortIOBus {
  public struct Mapping {
    public let ports: ClosedRange<UInt16>
    public let device: any PortIODevice
  }
  public enum BusError: Error, CustomStringConvertible {
    case overlap(ClosedRange<UInt16>)
    public var description: String {
      switch self {
      case .overlap(let r):
        return "port range 0x\(String(r.lowerBound, radix: 16))-0x\(String(r.upperBound, radix: 16)) is already claimed"
      }
    }
  }

  public private(set) var mappings: [Mapping] = []
  /// Accesses to ports no device claims (for diagnostics).
  public private(set) var unclaimedAccesses: UInt64 = 0

  public init() {}

  public func register(_ device: any PortIODevice, ports: ClosedRange<UInt16>) throws(BusError) {
    if mappings.contains(where: { $0.ports.overlaps(ports) }) { throw .overlap(ports) }
    mappings.append(Mapping(ports: ports, device: device))
  }

  @inline(__always)
  public func device(for port: UInt16) -> (any PortIODevice)? {
    for m in mappings where m.ports.contains(port) { return m.device }
    return nil
  }

  public func read(port: UInt16, size: Int) -> UInt32 {
    let mask: UInt32 = size >= 4 ? .max : (1 << (UInt32(size) * 8)) - 1
    guard let d = device(for: port) else {
      unclaimedAccesses += 1
      return mask
    }
    return d.read(port: port, size: size) & mask
  }

  public func write(port: UInt16, size: Int, value: UInt32) {
    let mask: UInt32 = size >= 4 ? .max : (1 << (UInt32(size) * 8)) - 1
    guard let d = device(for: port) else {
      unclaimedAccesses += 1
      return
    }
    d.write(port: port, size: size, value: value & mask)
  }
}

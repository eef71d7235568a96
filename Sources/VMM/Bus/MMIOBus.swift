/// Dispatches MMIO by guest-physical range to devices. Unclaimed addresses read as all ones and
/// ignore writes.
public final class MMIOBus {
  public struct Mapping {
    public let base: UInt64
    public let size: UInt64
    public let device: any MMIODevice
    public func contains(_ a: UInt64) -> Bool { a >= base && a - base < size }
  }
  public enum BusError: Error, CustomStringConvertible {
    case overlap(base: UInt64, size: UInt64)
    case empty
    public var description: String {
      switch self {
      case .overlap(let b, let s):
        return "MMIO range 0x\(String(b, radix: 16))+0x\(String(s, radix: 16)) is already claimed"
      case .empty: return "MMIO range must not be empty"
      }
    }
  }

  public private(set) var mappings: [Mapping] = []
  public private(set) var unclaimedAccesses: UInt64 = 0

  public init() {}

  public func register(_ device: any MMIODevice, base: UInt64, size: UInt64) throws(BusError) {
    guard size > 0, base &+ size > base else { throw .empty }
    if mappings.contains(where: { base < $0.base + $0.size && $0.base < base + size }) {
      throw .overlap(base: base, size: size)
    }
    mappings.append(Mapping(base: base, size: size, device: device))
  }

  public func read(address: UInt64, size: Int) -> UInt64 {
    let mask: UInt64 = size >= 8 ? .max : (1 << (UInt64(size) * 8)) - 1
    for m in mappings where m.contains(address) {
      return m.device.read(offset: address - m.base, size: size) & mask
    }
    unclaimedAccesses += 1
    return mask
  }

  public func write(address: UInt64, size: Int, value: UInt64) {
    let mask: UInt64 = size >= 8 ? .max : (1 << (UInt64(size) * 8)) - 1
    for m in mappings where m.contains(address) {
      m.device.write(offset: address - m.base, size: size, value: value & mask)
      return
    }
    unclaimedAccesses += 1
  }
}

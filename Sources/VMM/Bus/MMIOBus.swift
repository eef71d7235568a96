/// Dispatches MMIO by guest-physical range to devices. Unclaimed addresses read as all ones and
/// ignore writes. Locking model: as `PortIOBus` (frozen at start; the lock order written there).
public final class MMIOBus {
  /// One device's guest-physical address range.
  public struct Mapping {
    /// The first address.
    public let base: UInt64
    /// The length in bytes.
    public let size: UInt64
    /// The device that answers there.
    public let device: any MMIODevice
    /// Whether `a` falls in the range.
    public func contains(_ a: UInt64) -> Bool { a >= base && a - base < size }
  }
  /// A registration the bus refuses.
  public enum BusError: Error, CustomStringConvertible {
    /// The range overlaps one already registered.
    case overlap(base: UInt64, size: UInt64)
    /// The range is empty or wraps around.
    case empty
    /// The machine is running: the bus no longer takes registrations.
    case frozen
    /// The problem in one line.
    public var description: String {
      switch self {
      case .overlap(let b, let s):
        return "MMIO range 0x\(String(b, radix: 16))+0x\(String(s, radix: 16)) is already claimed"
      case .empty: return "MMIO range must not be empty"
      case .frozen: return "the machine is running: devices must be registered before it starts"
      }
    }
  }

  /// The registered ranges, in registration order.
  public private(set) var mappings: [Mapping] = []
  /// Accesses no device claimed (reads answered all ones, writes dropped).
  public private(set) var unclaimedAccesses: UInt64 = 0

  /// True once the machine has started: registrations are refused and lookups need no lock.
  public private(set) var isFrozen = false

  /// An empty bus.
  public init() {}

  /// Refuses further registrations (the machine calls it when it starts running).
  public func freeze() { isFrozen = true }

  /// Maps `device` at `[base, base + size)`; throws when the range is empty, wraps or overlaps
  /// another, or the bus is frozen.
  public func register(_ device: any MMIODevice, base: UInt64, size: UInt64) throws(BusError) {
    guard !isFrozen else { throw .frozen }
    guard size > 0, base &+ size > base else { throw .empty }
    if mappings.contains(where: { base < $0.base + $0.size && $0.base < base + size }) {
      throw .overlap(base: base, size: size)
    }
    mappings.append(Mapping(base: base, size: size, device: device))
  }

  /// A read of `size` bytes at `address` (all ones where no device answers). Called on the vCPU thread.
  public func read(address: UInt64, size: Int) -> UInt64 {
    let mask: UInt64 = size >= 8 ? .max : (1 << (UInt64(size) * 8)) - 1
    for m in mappings where m.contains(address) {
      return m.device.read(offset: address - m.base, size: size) & mask
    }
    unclaimedAccesses += 1
    return mask
  }

  /// A write of `size` bytes at `address` (dropped where no device answers). Called on the vCPU thread.
  public func write(address: UInt64, size: Int, value: UInt64) {
    let mask: UInt64 = size >= 8 ? .max : (1 << (UInt64(size) * 8)) - 1
    for m in mappings where m.contains(address) {
      m.device.write(offset: address - m.base, size: size, value: value & mask)
      return
    }
    unclaimedAccesses += 1
  }
}

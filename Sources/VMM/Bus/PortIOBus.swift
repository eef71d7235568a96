/// Dispatches port I/O by port range to devices. Unclaimed ports read as all ones and ignore
/// writes, like an ISA bus with nothing on it.
///
/// # Locking model (both buses, docs/design/machine.md)
///
/// Registrations happen on the main thread before `Machine.run()`; the machine then freezes the
/// buses (`freeze()`), so lookups take no lock and a late `register` throws `.frozen`.
///
/// Which thread reaches a device today: every port and MMIO access comes from the vCPU runner
/// thread that took the exit; the deadline timer thread only kicks vCPUs; the stdin reader only
/// fills `HostInputQueue` (its own lock), which the runner hands to the UART; the signal watcher
/// only calls `MachineControl`. So a device's registers have one thread and need no lock.
///
/// With several vCPU threads (SMP) each device gets its own lock, taken by the bus around `read`
/// and `write`, and locks are taken only in this order (released in reverse):
/// 1. `MachineControl` (reset and pause hold it while they quiesce the runners; its request
///    methods never take another lock while holding it)
/// 2. one device's lock
/// 3. the interrupt router's lock (PIC, IOAPIC)
/// 4. one local APIC's lock (an IPI to several targets takes them one at a time)
/// A device raising an interrupt holds (2) and takes (3), then (4). A runner acknowledging an
/// interrupt holds (4) and must release it before taking (3) for an ExtINT vector.
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
    /// The range overlaps one already registered.
    case overlap(ClosedRange<UInt16>)
    /// The machine is running: the bus no longer takes registrations.
    case frozen
    /// The problem in one line.
    public var description: String {
      switch self {
      case .overlap(let r):
        return "port range 0x\(String(r.lowerBound, radix: 16))-0x\(String(r.upperBound, radix: 16)) is already claimed"
      case .frozen:
        return "the machine is running: devices must be registered before it starts"
      }
    }
  }

  /// The registered ranges, in registration order.
  @exclusivity(unchecked) public private(set) var mappings: [Mapping] = []
  /// For each port, 1 + the index in `mappings` of the device answering it (0: none).
  @exclusivity(unchecked) private var mappingOfPort = [UInt16](repeating: 0, count: 0x10000)
  /// For each port, whether a read (bit 0) and a write (bit 1) may be lightweight exits (asked of
  /// the device once, when it is registered; unclaimed ports: both).
  @exclusivity(unchecked) private var lightweightOfPort = [UInt8](repeating: 3, count: 0x10000)
  /// Accesses to ports no device claims (for diagnostics).
  @exclusivity(unchecked) public private(set) var unclaimedAccesses: UInt64 = 0

  /// True once the machine has started: registrations are refused and lookups need no lock.
  public private(set) var isFrozen = false

  /// An empty bus.
  public init() {}

  /// Refuses further registrations (the machine calls it when it starts running).
  public func freeze() { isFrozen = true }

  /// Maps `device` at `ports`; throws when a port is already taken or the bus is frozen.
  public func register(_ device: any PortIODevice, ports: ClosedRange<UInt16>) throws(BusError) {
    guard !isFrozen else { throw .frozen }
    if mappings.contains(where: { $0.ports.overlaps(ports) }) { throw .overlap(ports) }
    mappings.append(Mapping(ports: ports, device: device))
    for port in ports {
      mappingOfPort[Int(port)] = UInt16(mappings.count)
      lightweightOfPort[Int(port)] =
        (device.isLightweight(port: port, isWrite: false) ? 1 : 0)
        | (device.isLightweight(port: port, isWrite: true) ? 2 : 0)
    }
  }

  /// The device answering `port`, if any.
  @inline(__always)
  public func device(for port: UInt16) -> (any PortIODevice)? {
    let m = Int(mappingOfPort[Int(port)])
    return m == 0 ? nil : mappings[m - 1].device
  }

  /// Carries out `access` if it may be a lightweight exit (`PortIODevice.isLightweight`; unclaimed
  /// ports always may): the value read (0 for a write), or nil, doing nothing, when the access
  /// must take the run loop. Called on the vCPU thread under the machine's device lock.
  public func lightweightAccess(_ access: PortAccess) -> UInt32? {
    guard lightweightOfPort[Int(access.port)] & (access.isWrite ? 2 : 1) != 0 else { return nil }
    guard access.isWrite else { return read(port: access.port, size: access.size) }
    write(port: access.port, size: access.size, value: access.value)
    return 0
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

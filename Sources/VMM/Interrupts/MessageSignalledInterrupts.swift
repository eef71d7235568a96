/// Where PCI devices' MSI and MSI-X writes go: the machine's interrupt router, set once the
/// machine has its vCPUs (devices are built before them). A write outside the message address
/// range (0xFEE00000-0xFEEFFFFF), which on a PC would be an ordinary memory write, is dropped and
/// counted; the VMM never writes guest memory on a device's behalf through this path.
public final class MessageSignalledInterrupts {
  /// Delivers one message; nil until the machine sets it.
  var route: ((InterProcessorInterrupt) -> Void)?
  /// Messages dropped for an address outside the message range.
  public private(set) var misaddressed: UInt64 = 0

  /// A router with nothing attached yet.
  public init() {}

  /// A device's message write: `address` and `data` as the device's MSI-X table entry holds them.
  public func send(address: UInt64, data: UInt32) {
    guard InterProcessorInterrupt.isMessageAddress(address) else {
      misaddressed &+= 1
      return
    }
    route?(InterProcessorInterrupt(messageAddress: address, data: data))
  }
}

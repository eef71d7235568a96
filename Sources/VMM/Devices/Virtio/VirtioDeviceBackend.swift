/// The device-type half of a virtio device (block, console, network...): its ID, features,
/// configuration space and what it does with the buffers a driver offers. The transport
/// (`VirtioPCIFunction`) owns everything common: feature negotiation, device status, the queues'
/// registers and rings, notifications and interrupts.
///
/// Called on a vCPU thread under the machine's device lock (docs/design/machine.md).
protocol VirtioDeviceBackend: AnyObject {
  /// The virtio device ID (1 network, 2 block, 3 console, ...).
  var deviceID: UInt16 { get }
  /// The PCI class code the function shows (class, subclass, programming interface).
  var pciClassCode: UInt32 { get }
  /// Device-specific feature bits (0-23 and above 41); the transport adds its own.
  var deviceFeatures: UInt64 { get }
  /// How many virtqueues the device has.
  var queueCount: Int { get }
  /// The device configuration space's length in bytes.
  var configurationLength: Int { get }

  /// `size` bytes of device configuration space at `offset` (inside `configurationLength`).
  func readConfiguration(offset: Int, size: Int) -> UInt64
  /// A driver write to the device configuration space.
  func writeConfiguration(offset: Int, size: Int, value: UInt64)
  /// The driver finished initialization (DRIVER_OK) with `features` accepted.
  func activate(features: UInt64)
  /// Handles every chain available on `queue` (index `index`) in `memory`: takes them, does the
  /// work, returns them used. Returns whether any was used (the transport then interrupts).
  func process(queue: Virtqueue, index: Int, memory: GuestMemory) throws(Virtqueue.Broken) -> Bool
  /// Back to the state before the driver touched the device (a device reset).
  func reset()
  /// Set by the transport: the device calls it with a queue index when it has work of its own
  /// for that queue (host input for a receive queue); the transport then runs `process` for it,
  /// if the driver is ready, and interrupts as for a notification.
  var requestService: ((Int) -> Void)? { get set }
}

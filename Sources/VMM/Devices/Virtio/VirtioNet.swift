/// virtio-net (device ID 1) over an `EthernetBackend`: one receive queue (0) and one transmit
/// queue (1), features MAC and STATUS (link always up), no offloads, no control queue, no
/// mergeable receive buffers.
///
/// Every buffer starts with the 12-byte `virtio_net_hdr` of virtio 1.x (flags, gso_type, hdr_len,
/// gso_size, csum_start, csum_offset, num_buffers). Transmit: the device reads a chain's readable
/// buffers, drops the header and hands the frame to the backend; a chain shorter than the header or
/// with a frame longer than `maximumFrame` breaks the queue (`Virtqueue.Broken`: the transport's
/// DEVICE_NEEDS_RESET). Receive: frames the backend queued in its `FrameInbox` are copied,
/// behind a zeroed header with num_buffers 1, into the chains the driver posts; a frame that does
/// not fit its chain is dropped and counted and the chain returned empty. Frames wait in the inbox
/// while the driver has posted no buffers (bounded there: beyond its limit they are dropped).
///
/// Linux's virtio_net without MRG_RXBUF or GUEST_TSO posts header-plus-1518-byte buffers, which
/// every frame of a 1500-byte MTU fits.
final class VirtioNet: VirtioDeviceBackend {
  /// Queue indices.
  enum Queue {
    static let receive = 0
    static let transmit = 1
  }

  /// Feature bits.
  enum Feature {
    static let mac: UInt64 = 1 << 5
    static let status: UInt64 = 1 << 16
  }

  /// The header before every frame (virtio 1.x: num_buffers is always there).
  static let headerLength = 12
  /// The longest frame the device takes from the guest (a 64 KiB GSO frame plus its Ethernet
  /// header, which is more than any frame without offloads can be).
  static let maximumFrame = 65550
  /// QEMU's default MAC address, which guest images configured for QEMU expect.
  static let defaultMAC: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]

  let backend: any EthernetBackend
  /// The card's MAC address.
  let mac: [UInt8]
  /// A frame taken from the inbox that no posted chain has taken yet.
  private var held: [UInt8]?

  /// Frames and bytes (without the virtio header) the guest transmitted.
  private(set) var framesSent: UInt64 = 0
  private(set) var bytesSent: UInt64 = 0
  /// Frames and bytes delivered to the guest.
  private(set) var framesReceived: UInt64 = 0
  private(set) var bytesReceived: UInt64 = 0
  /// Frames for the guest dropped because they did not fit the chain the driver posted.
  private(set) var framesTooLong: UInt64 = 0

  /// Asks the transport to run `process` for a queue (set by `VirtioPCIFunction`).
  var requestService: ((Int) -> Void)?

  init(backend: any EthernetBackend, mac: [UInt8] = VirtioNet.defaultMAC) {
    self.backend = backend
    self.mac = mac.count == 6 ? mac : VirtioNet.defaultMAC
  }

  var deviceID: UInt16 { 1 }
  var pciClassCode: UInt32 { 0x02_00_00 }  // network controller, Ethernet
  var queueCount: Int { 2 }
  var configurationLength: Int { 10 }
  var deviceFeatures: UInt64 { Feature.mac | Feature.status }

  /// mac[6], status (VIRTIO_NET_S_LINK_UP), max_virtqueue_pairs (1).
  func readConfiguration(offset: Int, size: Int) -> UInt64 {
    var c = TableBytes()
    c.raw(mac)
    c.u16(1)
    c.u16(1)
    return c.read(at: offset, size: size)
  }

  /// The MAC is read-only in virtio 1.x (VIRTIO_NET_F_CTRL_MAC_ADDR is not offered).
  func writeConfiguration(offset: Int, size: Int, value: UInt64) {}
  func activate(features: UInt64) {}

  func reset() {
    held = nil
    backend.inbox.removeAll()
  }

  /// Frames wait for the guest: have the transport run the receive queue (vCPU thread, under the
  /// device lock). The machine calls this when the backend wakes it.
  func pollBackend() {
    if held != nil || !backend.inbox.isEmpty { requestService?(Queue.receive) }
  }

  /// Frames dropped on the way to the guest: no buffer posted in time (inbox full) or too long.
  var framesDropped: UInt64 { backend.inbox.dropped &+ framesTooLong }

  func process(queue: Virtqueue, index: Int, memory: GuestMemory) throws(Virtqueue.Broken) -> Bool {
    index == Queue.transmit ? try transmit(queue, memory) : try receive(queue, memory)
  }

  private func transmit(_ queue: Virtqueue, _ memory: GuestMemory) throws(Virtqueue.Broken) -> Bool {
    var used = false
    while let chain = try queue.popAvailable(memory) {
      let readable = chain.buffers.filter { !$0.deviceWrites }
      let total = readable.reduce(UInt64(0)) { $0 + UInt64($1.length) }
      guard total >= UInt64(VirtioNet.headerLength) else {
        throw Virtqueue.Broken(description: "virtio-net transmit chain of \(total) bytes has no 12-byte header")
      }
      guard total - UInt64(VirtioNet.headerLength) <= UInt64(VirtioNet.maximumFrame) else {
        throw Virtqueue.Broken(
          description: "virtio-net transmit frame of \(total - UInt64(VirtioNet.headerLength)) bytes "
            + "(the most is \(VirtioNet.maximumFrame))")
      }
      var bytes: [UInt8] = []
      bytes.reserveCapacity(Int(total))
      for b in readable where b.length > 0 {
        do throws(MemoryError) {
          bytes += try memory.read(b.address, count: Int(b.length))
        } catch {
          throw Virtqueue.Broken(description: "virtio-net buffer at 0x\(String(b.address, radix: 16)): \(error)")
        }
      }
      let frame = Array(bytes.dropFirst(VirtioNet.headerLength))
      try queue.pushUsed(memory, head: chain.head, written: 0)
      used = true
      framesSent &+= 1
      bytesSent &+= UInt64(frame.count)
      backend.send(frame)
    }
    return used
  }

  private func receive(_ queue: Virtqueue, _ memory: GuestMemory) throws(Virtqueue.Broken) -> Bool {
    var used = false
    while let frame = held ?? backend.inbox.pop() {
      guard let chain = try queue.popAvailable(memory) else {
        held = frame
        return used
      }
      held = nil
      let writable = chain.buffers.filter { $0.deviceWrites }
      let room = writable.reduce(UInt64(0)) { $0 + UInt64($1.length) }
      var written: UInt32 = 0
      if room >= UInt64(VirtioNet.headerLength + frame.count) {
        var header = [UInt8](repeating: 0, count: VirtioNet.headerLength)
        header[10] = 1  // num_buffers
        try scatter(header + frame, into: writable, memory)
        written = UInt32(VirtioNet.headerLength + frame.count)
        framesReceived &+= 1
        bytesReceived &+= UInt64(frame.count)
      } else {
        framesTooLong &+= 1
      }
      try queue.pushUsed(memory, head: chain.head, written: written)
      used = true
    }
    return used
  }

  /// Writes `bytes` across `buffers` in order (their total length is at least `bytes.count`).
  private func scatter(_ bytes: [UInt8], into buffers: [Virtqueue.Buffer], _ memory: GuestMemory)
    throws(Virtqueue.Broken)
  {
    var offset = 0
    for b in buffers where offset < bytes.count {
      let n = min(Int(b.length), bytes.count - offset)
      do throws(MemoryError) {
        try memory.write(b.address, bytes: Array(bytes[offset..<(offset + n)]))
      } catch {
        throw Virtqueue.Broken(description: "virtio-net buffer at 0x\(String(b.address, radix: 16)): \(error)")
      }
      offset += n
    }
  }
}

/// virtio-console (device ID 3) with one port: what the guest writes to its transmit queue goes to
/// the machine's console output (where COM1's goes), and host input (`receive`) fills the buffers
/// the guest posts on its receive queue. Feature EMERG_WRITE: a byte written to the configuration
/// space's emergency-write register is output at once (early boot, before the queues exist).
///
/// Host input that arrives while the guest has no receive buffer waits, up to
/// `maximumPending` bytes (more is dropped and counted), and is delivered when the guest posts
/// buffers (it notifies the receive queue).
final class VirtioConsole: VirtioDeviceBackend {
  /// Queue indices.
  enum Queue {
    static let receive = 0
    static let transmit = 1
  }

  /// The emergency-write feature bit.
  static let emergencyWrite: UInt64 = 1 << 2
  /// Host input held for the guest at most.
  static let maximumPending = 64 * 1024

  private let output: ([UInt8]) -> Void
  private var pending: [UInt8] = []
  /// Host input bytes dropped because the guest did not take them.
  private(set) var droppedInput: UInt64 = 0
  /// Asks the transport to run `process` for a queue (set by `VirtioPCIFunction`).
  var requestService: ((Int) -> Void)?

  init(output: @escaping ([UInt8]) -> Void) { self.output = output }

  var deviceID: UInt16 { 3 }
  var pciClassCode: UInt32 { 0x07_80_00 }  // communication controller, other
  var queueCount: Int { 2 }
  var configurationLength: Int { 12 }
  var deviceFeatures: UInt64 { VirtioConsole.emergencyWrite }

  /// cols, rows (0: unknown), max_nr_ports (1), emerg_wr (reads 0).
  func readConfiguration(offset: Int, size: Int) -> UInt64 {
    var c = TableBytes()
    c.u16(0)
    c.u16(0)
    c.u32(1)
    c.u32(0)
    return c.read(at: offset, size: size)
  }

  func writeConfiguration(offset: Int, size: Int, value: UInt64) {
    if offset == 8 { output([UInt8(truncatingIfNeeded: value)]) }
  }

  func activate(features: UInt64) {}

  func reset() { pending.removeAll() }

  /// Host input for the guest (vCPU thread, under the device lock).
  func receive(_ bytes: [UInt8]) {
    let room = VirtioConsole.maximumPending - pending.count
    pending += bytes.prefix(max(room, 0))
    if bytes.count > room { droppedInput &+= UInt64(bytes.count - max(room, 0)) }
    requestService?(Queue.receive)
  }

  func process(queue: Virtqueue, index: Int, memory: GuestMemory) throws(Virtqueue.Broken) -> Bool {
    var used = false
    if index == Queue.transmit {
      while let chain = try queue.popAvailable(memory) {
        for b in chain.buffers where !b.deviceWrites && b.length > 0 {
          do throws(MemoryError) {
            output(try memory.read(b.address, count: Int(b.length)))
          } catch {
            throw Virtqueue.Broken(description: "virtio-console buffer at 0x\(String(b.address, radix: 16)): \(error)")
          }
        }
        try queue.pushUsed(memory, head: chain.head, written: 0)
        used = true
      }
      return used
    }
    // Receive: fill posted buffers while input waits.
    while !pending.isEmpty, let chain = try queue.popAvailable(memory) {
      var written = 0
      for b in chain.buffers where b.deviceWrites && written < pending.count {
        let n = min(Int(b.length), pending.count - written)
        do throws(MemoryError) {
          try memory.write(b.address, bytes: Array(pending[written..<(written + n)]))
        } catch {
          throw Virtqueue.Broken(description: "virtio-console buffer at 0x\(String(b.address, radix: 16)): \(error)")
        }
        written += n
      }
      pending.removeFirst(written)
      try queue.pushUsed(memory, head: chain.head, written: UInt32(written))
      used = true
    }
    return used
  }
}

/// virtio-blk (device ID 2) over a raw image (`DiskImage`): one request queue; requests IN
/// (read), OUT (write), FLUSH and GET_ID; features SEG_MAX, BLK_SIZE (512), FLUSH and, for a
/// read-only image, RO.
///
/// A request is a chain of a 16-byte header the device reads (type, reserved, sector), the data
/// buffers, and one status byte the device writes last; the header and data may be split over
/// buffers any way the driver likes. Requests outside the disk, with a length that is not a whole
/// number of sectors (a read's buffers must each be whole sectors), or writing a read-only disk
/// complete with VIRTIO_BLK_S_IOERR; unknown types
/// with VIRTIO_BLK_S_UNSUPP. A chain without a writable status byte or a readable header breaks
/// the queue (`Virtqueue.Broken`). Transfers go straight between guest RAM and the file.
final class VirtioBlock: VirtioDeviceBackend {
  /// Request types and status values.
  enum Request {
    static let read: UInt32 = 0
    static let write: UInt32 = 1
    static let flush: UInt32 = 4
    static let getID: UInt32 = 8
    static let ok: UInt8 = 0
    static let ioError: UInt8 = 1
    static let unsupported: UInt8 = 2
  }

  /// Feature bits.
  enum Feature {
    static let segmentMaximum: UInt64 = 1 << 2
    static let readOnly: UInt64 = 1 << 5
    static let blockSize: UInt64 = 1 << 6
    static let flush: UInt64 = 1 << 9
  }

  let image: DiskImage
  /// The identifier GET_ID returns (at most 20 bytes).
  let serial: String
  /// Sectors read and written for the guest.
  private(set) var sectorsRead: UInt64 = 0
  private(set) var sectorsWritten: UInt64 = 0

  /// Unused: the block device only works when notified.
  var requestService: ((Int) -> Void)?

  init(image: DiskImage, serial: String) {
    self.image = image
    self.serial = serial
  }

  var deviceID: UInt16 { 2 }
  var pciClassCode: UInt32 { 0x01_80_00 }  // mass storage, other
  var queueCount: Int { 1 }
  var configurationLength: Int { 0x24 }
  var deviceFeatures: UInt64 {
    Feature.segmentMaximum | Feature.blockSize | Feature.flush | (image.isReadOnly ? Feature.readOnly : 0)
  }

  /// capacity (512-byte sectors), size_max (not offered), seg_max, geometry (not offered),
  /// blk_size, then zeros.
  func readConfiguration(offset: Int, size: Int) -> UInt64 {
    var c = TableBytes()
    c.u64(image.sectorCount)
    c.u32(0)
    c.u32(UInt32(Virtqueue.maximumSize - 2))
    c.u32(0)
    c.u32(512)
    c.zeros(configurationLength - c.count)
    return c.read(at: offset, size: size)
  }

  func writeConfiguration(offset: Int, size: Int, value: UInt64) {}
  func activate(features: UInt64) {}
  func reset() {}

  func process(queue: Virtqueue, index: Int, memory: GuestMemory) throws(Virtqueue.Broken) -> Bool {
    var used = false
    while let chain = try queue.popAvailable(memory) {
      let written = try serve(chain, memory)
      try queue.pushUsed(memory, head: chain.head, written: written)
      used = true
    }
    return used
  }

  /// Carries out one request; returns the bytes written into the chain (data and status).
  private func serve(_ chain: Virtqueue.Chain, _ memory: GuestMemory) throws(Virtqueue.Broken) -> UInt32 {
    let readable = chain.buffers.filter { !$0.deviceWrites }
    var writable = chain.buffers.filter { $0.deviceWrites }
    // The status byte is the last byte of the last writable buffer.
    guard let last = writable.last, last.length > 0 else {
      throw Virtqueue.Broken(description: "virtio-blk request without a status byte")
    }
    let statusAddress = last.address + UInt64(last.length) - 1
    writable[writable.count - 1].length -= 1
    var header = [UInt8](repeating: 0, count: 16)
    var payload = try copyOut(readable, memory, into: &header)
    guard payload.count >= 0, header.count == 16 else {
      throw Virtqueue.Broken(description: "virtio-blk request without a 16-byte header")
    }
    let type = UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24
    var sector: UInt64 = 0
    for i in 0..<8 { sector |= UInt64(header[8 + i]) << (8 * UInt64(i)) }
    var status = Request.ok
    var dataWritten: UInt32 = 0
    switch type {
    case Request.read:
      let total = writable.reduce(UInt64(0)) { $0 + UInt64($1.length) }
      if writable.contains(where: { $0.length % 512 != 0 }) {
        status = Request.ioError
      } else if let count = sectors(total, from: sector) {
        var at = sector
        for b in writable where b.length > 0 {
          guard let p = memory.hostPointer(b.address, length: UInt64(b.length)) else { status = Request.ioError; break }
          do throws(DiskImage.IOError) {
            try image.read(
              sector: at, count: Int(b.length) / 512,
              into: UnsafeMutableRawBufferPointer(start: p, count: Int(b.length)))
          } catch {
            status = Request.ioError
            break
          }
          at += UInt64(b.length) / 512
          dataWritten += b.length
        }
        if status == Request.ok { sectorsRead &+= count }
      } else {
        status = Request.ioError
      }
    case Request.write:
      if image.isReadOnly {
        status = Request.ioError
      } else if let count = sectors(UInt64(payload.count), from: sector) {
        let ok = payload.withUnsafeBytes { b in
          do throws(DiskImage.IOError) {
            try image.write(sector: sector, count: Int(count), from: b)
            return true
          } catch { return false }
        }
        if ok { sectorsWritten &+= count } else { status = Request.ioError }
      } else {
        status = Request.ioError
      }
    case Request.flush:
      status = image.flush() ? Request.ok : Request.ioError
    case Request.getID:
      let id = Array(serial.utf8.prefix(20)) + [0]
      var left = id[...]
      for b in writable where !left.isEmpty {
        let n = min(Int(b.length), left.count)
        try write(memory, Array(left.prefix(n)), at: b.address)
        left = left.dropFirst(n)
        dataWritten += UInt32(n)
      }
    default:
      status = Request.unsupported
    }
    payload.removeAll()
    try write(memory, [status], at: statusAddress)
    return dataWritten + 1
  }

  /// The sector count a transfer of `bytes` at `sector` covers, or nil when it is not whole
  /// sectors or leaves the disk.
  private func sectors(_ bytes: UInt64, from sector: UInt64) -> UInt64? {
    guard bytes % 512 == 0 else { return nil }
    let count = bytes / 512
    guard sector <= image.sectorCount, count <= image.sectorCount - sector else { return nil }
    return count
  }

  /// Copies the readable buffers: the first 16 bytes into `header`, the rest returned (the data
  /// of a write). `header` is shortened when the buffers hold fewer than 16 bytes.
  private func copyOut(
    _ buffers: [Virtqueue.Buffer], _ memory: GuestMemory, into header: inout [UInt8]
  ) throws(Virtqueue.Broken) -> [UInt8] {
    var all: [UInt8] = []
    for b in buffers where b.length > 0 {
      do throws(MemoryError) {
        all += try memory.read(b.address, count: Int(b.length))
      } catch {
        throw Virtqueue.Broken(description: "virtio-blk buffer at 0x\(String(b.address, radix: 16)): \(error)")
      }
    }
    header = Array(all.prefix(16))
    return Array(all.dropFirst(16))
  }

  private func write(_ memory: GuestMemory, _ bytes: [UInt8], at address: UInt64) throws(Virtqueue.Broken) {
    do throws(MemoryError) {
      try memory.write(address, bytes: bytes)
    } catch {
      throw Virtqueue.Broken(description: "virtio-blk write to 0x\(String(address, radix: 16)): \(error)")
    }
  }
}

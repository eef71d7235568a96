import Foundation
import Testing

@testable import VMM

/// A virtio driver written against the specification, driving a `VirtioPCIFunction` through its
/// configuration space and BAR 0 the way a guest's driver does, with the rings in guest memory.
final class VirtioDriverDouble {
  let memory: GuestMemory
  let function: VirtioPCIFunction
  let sink = RecordingSink()
  let messages = MessageSignalledInterrupts()
  /// MSI-X messages delivered, in order.
  private(set) var delivered: [InterProcessorInterrupt] = []
  /// Offsets in BAR 0 of the structures, read from the capabilities.
  var common: UInt64 = 0
  var isr: UInt64 = 0
  var device: UInt64 = 0
  var notify: UInt64 = 0
  var notifyMultiplier: UInt64 = 0
  var pciCfgCapability = 0
  var msixCapability = 0
  /// The ring layout: descriptor table, available and used rings of queue 0 (size 16).
  let queueSize: UInt16 = 16
  let descriptors: UInt64 = 0x10_0000
  let available: UInt64 = 0x10_1000
  let used: UInt64 = 0x10_2000

  convenience init(image: DiskImage, msix: Bool = true) throws {
    try self.init(backend: VirtioBlock(image: image, serial: "test-serial-0123456789xyz"), msix: msix)
  }

  init(backend: any VirtioDeviceBackend, msix: Bool = true) throws {
    memory = try GuestMemory(ramSize: 16 << 20)
    function = VirtioPCIFunction(
      backend: backend, memory: memory, bar: 0xFE00_0000,
      intx: InterruptLine(sink: sink, line: 10), interruptLine: 10,
      sendMSI: msix ? { [messages] address, data in messages.send(address: address, data: data) } : nil)
    messages.route = { [unowned self] in self.delivered.append($0) }
    findCapabilities()
  }

  func config(_ offset: Int, _ size: Int = 4) -> UInt32 { function.readConfiguration(offset: offset, size: size) }
  func setConfig(_ offset: Int, _ size: Int, _ value: UInt32) {
    function.writeConfiguration(offset: offset, size: size, value: value)
  }
  func bar(_ offset: UInt64, _ size: Int) -> UInt64 { function.readMemoryBAR(offset: offset, size: size) }
  func setBAR(_ offset: UInt64, _ size: Int, _ value: UInt64) {
    function.writeMemoryBAR(offset: offset, size: size, value: value)
  }

  private func findCapabilities() {
    var at = Int(config(0x34, 1))
    while at != 0 {
      let id = config(at, 1)
      if id == 0x11 { msixCapability = at }
      if id == 0x09 {
        let type = config(at + 3, 1)
        let offset = UInt64(config(at + 8))
        switch type {
        case 1: common = offset
        case 2:
          notify = offset
          notifyMultiplier = UInt64(config(at + 16))
        case 3: isr = offset
        case 4: device = offset
        case 5: pciCfgCapability = at
        default: break
        }
      }
      at = Int(config(at + 1, 1))
    }
  }

  var status: UInt8 { UInt8(bar(common + 0x14, 1)) }
  func setStatus(_ s: UInt8) { setBAR(common + 0x14, 1, UInt64(s)) }

  /// The offered features (both halves).
  var offeredFeatures: UInt64 {
    setBAR(common + 0x00, 4, 0)
    let low = bar(common + 0x04, 4)
    setBAR(common + 0x00, 4, 1)
    return low | bar(common + 0x04, 4) << 32
  }

  /// Initializes the device (specification 3.1.1) with `features`, queue 0 at the rings above,
  /// MSI-X vector 1 for the queue (when `msix`); returns the status after FEATURES_OK.
  @discardableResult
  func initialize(features: UInt64? = nil, msix: Bool = true, queues: Int = 1) -> UInt8 {
    setStatus(0)
    availableIndices = [0, 0]
    setStatus(1)
    setStatus(1 | 2)
    let accepted = features ?? offeredFeatures
    setBAR(common + 0x08, 4, 0)
    setBAR(common + 0x0C, 4, accepted & 0xFFFF_FFFF)
    setBAR(common + 0x08, 4, 1)
    setBAR(common + 0x0C, 4, accepted >> 32)
    setStatus(1 | 2 | 8)
    let s = status
    guard s & 8 != 0 else { return s }
    if msix && msixCapability != 0 {
      setConfig(msixCapability + 2, 2, 0x8000)  // MSI-X enable
      for v in 0..<2 {
        let entry = UInt64(0x4000 + 16 * v)
        setBAR(entry, 4, 0xFEE0_0000)
        setBAR(entry + 4, 4, 0)
        setBAR(entry + 8, 4, UInt64(0x40 + v))
        setBAR(entry + 12, 4, 0)
      }
      setBAR(common + 0x10, 2, 0)  // configuration changes: vector 0
    }
    for q in 0..<queues {
      // Queue q's rings sit 0x10000 after queue 0's.
      let shift = UInt64(q) * 0x1_0000
      setBAR(common + 0x16, 2, UInt64(q))
      setBAR(common + 0x18, 2, UInt64(queueSize))
      if msix { setBAR(common + 0x1A, 2, 1) }
      setBAR(common + 0x20, 8, descriptors + shift)
      setBAR(common + 0x28, 4, available + shift)  // 32-bit halves work too
      setBAR(common + 0x2C, 4, 0)
      setBAR(common + 0x30, 8, used + shift)
      setBAR(common + 0x1C, 2, 1)
    }
    setStatus(1 | 2 | 8 | 4)
    return s
  }

  /// Writes descriptor `i`.
  func descriptor(_ i: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16 = 0, table: UInt64? = nil)
    throws
  {
    let d = (table ?? descriptors) + 16 * UInt64(i)
    try memory.write(address, at: d)
    try memory.write(length, at: d + 8)
    try memory.write(flags, at: d + 12)
    try memory.write(next, at: d + 14)
  }

  private var availableIndices: [UInt16] = [0, 0]

  /// Makes chain `head` available on `queue` and notifies it.
  func submit(_ head: UInt16, queue: Int = 0, notifyDevice: Bool = true) throws {
    let ring = available + UInt64(queue) * 0x1_0000
    try memory.write(head, at: ring + 4 + 2 * UInt64(availableIndices[queue] % queueSize))
    availableIndices[queue] &+= 1
    try memory.write(availableIndices[queue], at: ring + 2)
    if notifyDevice { setBAR(notify + UInt64(queue) * notifyMultiplier, 2, 0) }
  }

  /// The used ring's index and its last element, of `queue`.
  func lastUsed(queue: Int = 0) throws -> (index: UInt16, id: UInt32, length: UInt32) {
    let ring = used + UInt64(queue) * 0x1_0000
    let index = try memory.read(UInt16.self, at: ring + 2)
    let slot = ring + 4 + 8 * UInt64((index &- 1) % queueSize)
    return (index, try memory.read(UInt32.self, at: slot), try memory.read(UInt32.self, at: slot + 4))
  }

  /// Sends one block request (header, optional data buffers, status) as a three-part chain
  /// starting at descriptor 0; returns the status byte and the used length.
  func request(type: UInt32, sector: UInt64, data: [(address: UInt64, length: UInt32)] = [], deviceWrites: Bool)
    throws -> (status: UInt8, written: UInt32)
  {
    let header: UInt64 = 0x20_0000
    let statusByte: UInt64 = 0x20_1000
    try memory.write(type, at: header)
    try memory.write(UInt32(0), at: header + 4)
    try memory.write(sector, at: header + 8)
    try memory.write(UInt8(0xEE), at: statusByte)
    var i: UInt16 = 0
    try descriptor(i, address: header, length: 16, flags: 1, next: 1)
    for d in data {
      i += 1
      try descriptor(i, address: d.address, length: d.length, flags: 1 | (deviceWrites ? 2 : 0), next: i + 1)
    }
    i += 1
    try descriptor(i, address: statusByte, length: 1, flags: 2)
    try submit(0)
    return (try memory.read(UInt8.self, at: statusByte), try lastUsed().length)
  }
}

/// virtio-blk over the virtio 1.x PCI transport, driven by `VirtioDriverDouble`.
@Suite struct VirtioBlockTests {
  @Test func thePCIFunctionDescribesAModernVirtioBlockDevice() throws {
    let file = try TemporaryDiskImage(sectors: 64)
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path))
    #expect(d.config(0x00) == 0x1042_1AF4)
    #expect(d.config(0x08, 1) == 1, "revision 1: a modern-only device")
    #expect(d.config(0x06, 2) & 0x10 != 0, "capabilities list")
    #expect(d.common == 0 && d.isr == 0x1000 && d.device == 0x2000 && d.notify == 0x3000)
    #expect(d.notifyMultiplier == 4 && d.msixCapability != 0 && d.pciCfgCapability != 0)
    // BAR sizing: all ones reads back the 32 KiB size mask.
    d.setConfig(0x10, 4, 0xFFFF_FFFF)
    #expect(d.config(0x10) == 0xFFFF_8000)
    d.setConfig(0x10, 4, 0xFEBF_8000)
    #expect(d.function.decodedMemoryBAR == nil, "memory decoding is off until the command register says so")
    d.setConfig(0x04, 2, 0x0002)
    #expect(d.function.decodedMemoryBAR?.base == 0xFEBF_8000)
    #expect(d.function.decodedMemoryBAR?.size == 0x8000)
    let features = d.offeredFeatures
    #expect(features & (1 << 32) != 0, "VERSION_1")
    #expect(features & (1 << 28) != 0, "indirect descriptors")
    #expect(features & (1 << 9) != 0 && features & (1 << 6) != 0 && features & (1 << 2) != 0)
    #expect(features & (1 << 5) == 0, "writable image: not RO")
    #expect(d.bar(d.device, 8) == 64, "capacity in sectors")
    #expect(d.bar(d.device + 0x14, 4) == 512, "block size")
    #expect(d.bar(d.common + 0x12, 2) == 1, "one queue")
    // The PCI_CFG window reaches BAR 0 from configuration space.
    d.setConfig(d.pciCfgCapability + 4, 1, 0)
    d.setConfig(d.pciCfgCapability + 8, 4, 0x2000)
    d.setConfig(d.pciCfgCapability + 12, 4, 4)
    #expect(d.config(d.pciCfgCapability + 16) == 64)
  }

  @Test func readsWritesFlushesAndIdentifies() throws {
    let file = try TemporaryDiskImage(sectors: 64)
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path))
    #expect(d.initialize() & 8 != 0)
    // Read sectors 5-7 into two buffers (2 + 1 sectors).
    var r = try d.request(type: 0, sector: 5, data: [(0x30_0000, 1024), (0x31_0000, 512)], deviceWrites: true)
    #expect(r.status == 0 && r.written == 1537)
    #expect(try d.memory.read(UInt64.self, at: 0x30_0000) == 5)
    #expect(try d.memory.read(UInt64.self, at: 0x30_0200) == 6)
    #expect(try d.memory.read(UInt64.self, at: 0x31_0000) == 7)
    #expect(d.delivered.last?.vector == 0x41, "the queue's MSI-X vector 1")
    // Write sector 9, flush, read it back.
    try d.memory.write(0x32_0000, bytes: Array(repeating: UInt8(0x5A), count: 512))
    r = try d.request(type: 1, sector: 9, data: [(0x32_0000, 512)], deviceWrites: false)
    #expect(r.status == 0 && r.written == 1)
    #expect(try d.request(type: 4, sector: 0, deviceWrites: false).status == 0)
    #expect(try file.contents()[9 * 512 + 100] == 0x5A)
    // GET_ID: 20 bytes of the serial.
    r = try d.request(type: 8, sector: 0, data: [(0x33_0000, 20)], deviceWrites: true)
    #expect(r.status == 0)
    #expect(String(decoding: try d.memory.read(0x33_0000, count: 20), as: UTF8.self) == "test-serial-01234567")
    #expect(try d.lastUsed().index == 4)
    #expect((d.function.backend as? VirtioBlock)?.sectorsRead == 3)
    #expect((d.function.backend as? VirtioBlock)?.sectorsWritten == 1)
  }

  @Test func badRequestsCompleteWithAnErrorStatus() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    let before = try file.contents()
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path, readOnly: true))
    #expect(d.offeredFeatures & (1 << 5) != 0, "RO offered for a read-only image")
    d.initialize()
    #expect(try d.request(type: 0, sector: 15, data: [(0x30_0000, 1024)], deviceWrites: true).status == 1)
    #expect(try d.request(type: 0, sector: 0, data: [(0x30_0000, 100)], deviceWrites: true).status == 1)
    #expect(try d.request(type: 1, sector: 0, data: [(0x30_0000, 512)], deviceWrites: false).status == 1)
    #expect(try d.request(type: 0xDEAD, sector: 0, deviceWrites: false).status == 2)
    #expect(try d.request(type: 0, sector: .max, data: [(0x30_0000, 512)], deviceWrites: true).status == 1)
    #expect(try file.contents() == before)
    #expect(d.status & 0x40 == 0, "errors in requests do not break the queue")
  }

  @Test func indirectDescriptorsCarryARequest() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path))
    d.initialize()
    let table: UInt64 = 0x40_0000
    try d.memory.write(UInt32(0), at: 0x20_0000)
    try d.memory.write(UInt64(3), at: 0x20_0008)
    try d.descriptor(0, address: 0x20_0000, length: 16, flags: 1, next: 1, table: table)
    try d.descriptor(1, address: 0x30_0000, length: 512, flags: 1 | 2, next: 2, table: table)
    try d.descriptor(2, address: 0x20_1000, length: 1, flags: 2, table: table)
    try d.descriptor(0, address: table, length: 48, flags: 4)
    try d.submit(0)
    #expect(try d.memory.read(UInt8.self, at: 0x20_1000) == 0)
    #expect(try d.memory.read(UInt64.self, at: 0x30_0000) == 3)
  }

  @Test(arguments: ["outside RAM", "loop", "index jump", "nested indirect", "no status"])
  func aBrokenQueueNeedsAResetAndNothingElseHappens(_ breakage: String) throws {
    let file = try TemporaryDiskImage(sectors: 16)
    let before = try file.contents()
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path))
    d.initialize()
    switch breakage {
    case "outside RAM":
      try d.descriptor(0, address: 0x20_0000, length: 16, flags: 1, next: 1)
      try d.descriptor(1, address: 0xFFFF_F000, length: 0x2000, flags: 1, next: 2)
      try d.descriptor(2, address: 0x20_1000, length: 1, flags: 2)
      try d.submit(0)
    case "loop":
      try d.descriptor(0, address: 0x20_0000, length: 16, flags: 1, next: 1)
      try d.descriptor(1, address: 0x30_0000, length: 512, flags: 1, next: 0)
      try d.submit(0)
    case "index jump":
      try d.memory.write(UInt16(1000), at: d.available + 2)
      d.setBAR(d.notify, 2, 0)
    case "nested indirect":
      try d.descriptor(0, address: 0x40_0000, length: 16, flags: 4, table: 0x40_0000)
      try d.descriptor(0, address: 0x40_0000, length: 16, flags: 4)
      try d.submit(0)
    default:
      try d.descriptor(0, address: 0x20_0000, length: 16, flags: 0)
      try d.submit(0)
    }
    #expect(d.status & 0x40 != 0, "DEVICE_NEEDS_RESET")
    #expect(d.function.brokenReason != nil)
    #expect(d.delivered.last?.vector == 0x40, "a configuration-change interrupt")
    // Further notifications are ignored; a reset brings the device back.
    d.setBAR(d.notify, 2, 0)
    #expect(try file.contents() == before)
    #expect(d.initialize() & 8 != 0)
    #expect(d.status & 0x40 == 0)
    #expect(try d.request(type: 0, sector: 1, data: [(0x30_0000, 512)], deviceWrites: true).status == 0)
  }

  @Test func queuesOutsideRAMAreRefusedWhenEnabled() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path))
    d.initialize()
    d.setStatus(0)
    d.setStatus(1 | 2)
    d.setBAR(d.common + 0x08, 4, 1)
    d.setBAR(d.common + 0x0C, 4, 1)
    d.setStatus(1 | 2 | 8)
    d.setBAR(d.common + 0x18, 2, 16)
    d.setBAR(d.common + 0x20, 8, 0xFEE0_0000)  // the local APIC page, not RAM
    d.setBAR(d.common + 0x1C, 2, 1)
    #expect(d.bar(d.common + 0x1C, 2) == 0)
    #expect(d.status & 0x40 != 0)
    d.setStatus(0)
    d.setBAR(d.common + 0x18, 2, 3)  // not a power of two
    d.setBAR(d.common + 0x1C, 2, 1)
    #expect(d.bar(d.common + 0x1C, 2) == 0)
  }

  @Test func featureNegotiationRefusesWhatWasNotOffered() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path))
    #expect(d.initialize(features: 0) & 8 == 0, "a driver without VERSION_1")
    #expect(d.initialize(features: (1 << 32) | (1 << 40)) & 8 == 0, "a feature never offered")
    #expect(d.initialize(features: 1 << 32) & 8 != 0)
  }

  @Test func interruptsFollowMSIXMasksOrTheISRAndINTx() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path))
    d.initialize()
    // Mask vector 1: the interrupt waits in the pending bits and goes out on unmask.
    d.setBAR(0x4000 + 16 + 12, 4, 1)
    _ = try d.request(type: 0, sector: 1, data: [(0x30_0000, 512)], deviceWrites: true)
    #expect(d.delivered.isEmpty)
    #expect(d.bar(0x5000, 8) == 0b10)
    d.setBAR(0x4000 + 16 + 12, 4, 0)
    #expect(d.delivered.map(\.vector) == [0x41])
    #expect(d.bar(0x5000, 8) == 0)
    // MSI-X off: the ISR and the INTx line.
    d.setConfig(d.msixCapability + 2, 2, 0)
    _ = try d.request(type: 0, sector: 2, data: [(0x30_0000, 512)], deviceWrites: true)
    #expect(d.sink.levels[10])
    #expect(d.bar(d.isr, 1) == 1)
    #expect(!d.sink.levels[10], "reading the ISR lowers the line")
    #expect(d.bar(d.isr, 1) == 0)
    #expect(d.delivered.count == 1)
  }

  @Test func withoutMessageSignalledInterruptsThereIsNoMSIXCapability() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path), msix: false)
    #expect(d.msixCapability == 0)
    d.initialize(msix: false)
    _ = try d.request(type: 0, sector: 2, data: [(0x30_0000, 512)], deviceWrites: true)
    #expect(d.sink.levels[10])
  }

  @Test func theMemoryWindowFollowsTheBARWherever() throws {
    let file = try TemporaryDiskImage(sectors: 16)
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path))
    let window = PCIMemoryWindow()
    window.add(d.function)
    func at(_ address: UInt64) -> UInt64 { address - PCIMemoryWindow.base }
    #expect(window.read(offset: at(0xFE00_2000), size: 8) == ~0, "memory decoding off")
    d.setConfig(0x04, 2, 0x0002)
    #expect(window.read(offset: at(0xFE00_2000), size: 8) == 16)
    d.setConfig(0x10, 4, 0xD000_0000)
    #expect(window.read(offset: at(0xFE00_2000), size: 8) == ~0)
    #expect(window.read(offset: at(0xD000_2000), size: 8) == 16)
    #expect(window.read(offset: at(0xD000_7FFE), size: 4) == ~0, "an access crossing the BAR's end")
  }

  @Test func randomDriverTrafficNeverCrashes() throws {
    let file = try TemporaryDiskImage(sectors: 32)
    let size = try file.contents().count
    let d = try VirtioDriverDouble(image: try DiskImage(path: file.path))
    var rng = SplitMix64(seed: 15)
    for round in 0..<2_000 {
      if round % 50 == 0 { d.initialize() }
      // Random ring and descriptor contents, then random register traffic.
      for _ in 0..<8 {
        let address =
          [d.descriptors, d.available, d.used, 0x20_0000].randomElement(using: &rng)!
          + rng.next() % 256
        try d.memory.write(UInt8(truncatingIfNeeded: rng.next()), at: address)
      }
      let offset = [
        d.common + rng.next() % 0x40, d.notify, d.isr, d.device + rng.next() % 0x30, 0x4000 + rng.next() % 48,
      ]
      .randomElement(using: &rng)!
      let width = [1, 2, 4, 8].randomElement(using: &rng)!
      if rng.next() & 1 == 0 {
        d.setBAR(offset, width, rng.next())
      } else {
        _ = d.bar(offset, width)
      }
      if rng.next() % 4 == 0 { d.setBAR(d.notify, 2, 0) }
    }
    #expect(try file.contents().count == size)
  }
}

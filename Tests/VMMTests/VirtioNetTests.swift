import Foundation
import Testing

@testable import VMM

/// virtio-net through the PCI transport, driven by `VirtioDriverDouble`, over a backend that
/// records what the guest sends: identity, features and configuration, both directions, frames
/// waiting for buffers, drops, and broken chains.
@Suite struct VirtioNetTests {
  func make(postBuffers: Bool = true, inboxLimit: Int = 256) throws -> (VirtioNetHarness, RecordingEthernetBackend) {
    let backend = RecordingEthernetBackend(inboxLimit: inboxLimit)
    return (try VirtioNetHarness(backend: backend, postBuffers: postBuffers), backend)
  }

  @Test func theFunctionIsAVirtioNetworkCardWithMACAndLinkStatus() throws {
    let backend = RecordingEthernetBackend()
    let d = try VirtioDriverDouble(backend: VirtioNet(backend: backend))
    #expect(d.config(0x00) == 0x1041_1AF4, "1AF4:1041, virtio device ID 1")
    #expect(d.config(0x08) >> 8 == 0x02_00_00, "class: Ethernet controller")
    let offered = d.offeredFeatures
    #expect(offered & VirtioNet.Feature.mac != 0 && offered & VirtioNet.Feature.status != 0)
    #expect(offered & VirtioPCIFunction.Feature.version1 != 0)
    #expect(offered & (1 << 15) == 0, "no MRG_RXBUF")
    #expect(offered & (1 << 17) == 0, "no control queue")
    #expect(offered & 0x7 == 0, "no checksum offload")
    #expect(d.initialize(features: offered, queues: 2) & 8 != 0, "FEATURES_OK with everything offered")
    #expect(d.bar(d.common + 0x12, 2) == 2, "two queues: receive and transmit")
    let mac = (0..<6).map { UInt8(d.bar(d.device + UInt64($0), 1)) }
    #expect(mac == [0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
    #expect(d.bar(d.device, 4) == 0x1200_5452, "a 4-byte read of the MAC")
    #expect(d.bar(d.device + 6, 2) == 1, "status: link up")
    #expect(d.bar(d.device + 8, 2) == 1, "one queue pair")
    d.setBAR(d.device, 1, 0xAA)
    #expect(d.bar(d.device, 1) == 0x52, "the MAC is read-only")
    // A driver accepting a feature that was not offered (GUEST_TSO4) does not get FEATURES_OK.
    #expect(d.initialize(features: offered | 1 << 7, queues: 2) & 8 == 0)
  }

  @Test func transmittedFramesReachTheBackendWithoutTheHeader() throws {
    let (h, backend) = try make()
    let frame = EthernetPackets.ethernet(
      to: EthernetPackets.broadcastMAC, from: VirtioNetHarness.guestMAC, type: 0x88B5, Array(0..<100))
    try h.transmit(frame)
    #expect(backend.sent == [frame])
    #expect(try h.driver.lastUsed(queue: 1).index == 1)
    // Header and frame split over three buffers, the split inside the header.
    let table = h.driver.descriptors + 0x1_0000
    try h.memory.write(0x60_0000, bytes: [0, 0, 0, 0, 0])
    try h.memory.write(0x60_1000, bytes: [UInt8](repeating: 0, count: 7) + frame.prefix(20))
    try h.memory.write(0x60_2000, bytes: Array(frame.dropFirst(20)))
    try h.driver.descriptor(5, address: 0x60_0000, length: 5, flags: 1, next: 6, table: table)
    try h.driver.descriptor(6, address: 0x60_1000, length: 27, flags: 1, next: 7, table: table)
    try h.driver.descriptor(7, address: 0x60_2000, length: UInt32(frame.count - 20), flags: 0, table: table)
    try h.driver.submit(5, queue: 1)
    #expect(backend.sent.last == frame)
    #expect(h.card.framesSent == 2 && h.card.bytesSent == UInt64(2 * frame.count))
  }

  @Test func framesWaitForReceiveBuffersThenArriveBehindAHeader() throws {
    let (h, backend) = try make(postBuffers: false)
    let frames = (0..<3).map { i in
      EthernetPackets.ethernet(
        to: VirtioNetHarness.guestMAC, from: [2, 0, 0, 0, 0, 1], type: 0x88B5, [UInt8](repeating: UInt8(i), count: 60))
    }
    for f in frames { backend.inbox.push(f) }
    #expect(try h.collect().isEmpty, "no buffers posted: nothing delivered")
    #expect(backend.inbox.count == 2, "one frame held by the card, two in the inbox")
    try h.postReceiveBuffer(0)
    try h.postReceiveBuffer(1)
    #expect(try h.collect().map(\.bytes) == Array(frames[0..<2]), "delivered when the buffers came")
    try h.postReceiveBuffer(2)
    #expect(try h.collect().map(\.bytes).last == frames[2])
    #expect(h.card.framesReceived == 3 && h.card.bytesReceived == UInt64(3 * frames[0].count))
    #expect(h.card.framesDropped == 0)
  }

  @Test func aFrameIntoBuffersSplitInsideTheHeader() throws {
    let (h, backend) = try make(postBuffers: false)
    try h.driver.descriptor(0, address: 0x40_0000, length: 8, flags: 3, next: 1)
    try h.driver.descriptor(1, address: 0x41_0000, length: 1600, flags: 2)
    try h.driver.submit(0, queue: 0)
    let frame = [UInt8](repeating: 0x5A, count: 64)
    backend.inbox.push(frame)
    h.card.pollBackend()
    #expect(try h.driver.lastUsed(queue: 0).length == UInt32(12 + 64))
    #expect(
      try h.memory.read(0x41_0000, count: 6) == [0, 0, 1, 0, 0x5A, 0x5A],
      "the header's last four bytes (csum_offset, num_buffers 1), then the frame")
  }

  @Test func aFrameLongerThanItsBufferIsDroppedAndCounted() throws {
    let (h, backend) = try make(postBuffers: false)
    try h.postReceiveBuffer(0, length: 100)
    backend.inbox.push([UInt8](repeating: 1, count: 200))
    h.card.pollBackend()
    let used = try h.driver.lastUsed(queue: 0)
    #expect(used.index == 1 && used.length == 0, "the buffer comes back empty")
    #expect(h.card.framesTooLong == 1 && h.card.framesDropped == 1 && h.card.framesReceived == 0)
    #expect(h.driver.status & 0x40 == 0, "a small buffer is the driver's right, not an error")
  }

  @Test func framesBeyondTheInboxLimitAreDroppedAndCounted() throws {
    let (h, backend) = try make(postBuffers: false, inboxLimit: 4)
    for i in 0..<10 { backend.inbox.push([UInt8(i)] + [UInt8](repeating: 0, count: 59)) }
    #expect(backend.inbox.count == 4 && backend.inbox.dropped == 6)
    #expect(h.card.framesDropped == 6)
    for i in 0..<4 { try h.postReceiveBuffer(UInt16(i)) }
    #expect(try h.collect().map { $0.bytes[0] } == [0, 1, 2, 3], "the oldest four, in order")
  }

  @Test func aTransmitFrameLongerThanTheCapBreaksTheQueue() throws {
    let (h, backend) = try make()
    let length = UInt32(VirtioNet.headerLength + VirtioNet.maximumFrame + 1)
    try h.driver.descriptor(0, address: 0x60_0000, length: length, flags: 0, table: h.driver.descriptors + 0x1_0000)
    try h.driver.submit(0, queue: 1)
    #expect(h.driver.status & 0x40 != 0, "DEVICE_NEEDS_RESET")
    #expect(h.driver.function.brokenReason?.contains("65551 bytes") == true)
    #expect(backend.sent.isEmpty)
    // The largest allowed frame still goes through after a reset.
    let h2 = try VirtioNetHarness(backend: backend)
    try h2.driver.descriptor(
      0, address: 0x60_0000, length: length - 1, flags: 0, table: h2.driver.descriptors + 0x1_0000)
    try h2.driver.submit(0, queue: 1)
    #expect(h2.driver.status & 0x40 == 0)
    #expect(backend.sent.count == 1 && backend.sent[0].count == VirtioNet.maximumFrame)
  }

  @Test func aTransmitChainShorterThanTheHeaderBreaksTheQueue() throws {
    let (h, backend) = try make()
    try h.driver.descriptor(0, address: 0x60_0000, length: 11, flags: 0, table: h.driver.descriptors + 0x1_0000)
    try h.driver.submit(0, queue: 1)
    #expect(h.driver.status & 0x40 != 0)
    #expect(backend.sent.isEmpty)
  }

  @Test func chainsOutsideRAMBreakTheQueueAndAResetRecovers() throws {
    let (h, backend) = try make(postBuffers: false)
    // Transmit: a buffer past the end of RAM.
    try h.driver.descriptor(0, address: 0xFFF_F000, length: 0x2000, flags: 0, table: h.driver.descriptors + 0x1_0000)
    try h.driver.submit(0, queue: 1)
    #expect(h.driver.status & 0x40 != 0)
    #expect(backend.sent.isEmpty)
    // Receive: a buffer in the MMIO hole, with a frame waiting.
    let h2 = try VirtioNetHarness(backend: backend, postBuffers: false)
    try h2.driver.descriptor(0, address: 0xFEC0_0000, length: 2048, flags: 2)
    try h2.driver.submit(0, queue: 0)
    backend.inbox.push([UInt8](repeating: 7, count: 60))
    h2.card.pollBackend()
    #expect(h2.driver.status & 0x40 != 0)
    #expect(h2.card.framesReceived == 0)
    // Reset (status 0) and initialize again: the card works.
    h2.driver.initialize(queues: 2)
    #expect(h2.driver.status & 0x40 == 0)
    backend.inbox.push([UInt8](repeating: 8, count: 60))
    try h2.driver.descriptor(0, address: h2.receiveBuffer(0), length: 2048, flags: 2)
    try h2.driver.submit(0, queue: 0)
    h2.card.pollBackend()
    #expect(h2.card.framesReceived == 1)
    #expect(try h2.memory.read(UInt8.self, at: h2.receiveBuffer(0) + 12) == 8)
  }

  @Test func randomDriverTrafficAndFramesNeverCrash() throws {
    let (h, backend) = try make(inboxLimit: 8)
    let d = h.driver
    var rng = SplitMix64(seed: 1041)
    for round in 0..<2_000 {
      if round % 50 == 0 { d.initialize(queues: 2) }
      // Random descriptor and ring bytes on both queues, frames of any length for the guest, then
      // random register traffic and notifications.
      for _ in 0..<8 {
        let base = [d.descriptors, d.available, d.used].randomElement(using: &rng)!
        let address = base + (rng.next() & 1) * 0x1_0000 + rng.next() % 256
        try d.memory.write(UInt8(truncatingIfNeeded: rng.next()), at: address)
      }
      if rng.next() % 3 == 0 {
        backend.inbox.push([UInt8](repeating: 0xAB, count: Int(rng.next() % 3000)))
      }
      let offset = [d.common + rng.next() % 0x40, d.device + rng.next() % 12, 0x4000 + rng.next() % 48]
        .randomElement(using: &rng)!
      let width = [1, 2, 4, 8].randomElement(using: &rng)!
      if rng.next() & 1 == 0 {
        d.setBAR(offset, width, rng.next())
      } else {
        _ = d.bar(offset, width)
      }
      if rng.next() % 4 == 0 { d.setBAR(d.notify + (rng.next() & 1) * d.notifyMultiplier, 2, 0) }
      h.card.pollBackend()
    }
    #expect(backend.sent.allSatisfy { $0.count <= VirtioNet.maximumFrame })
    #expect(backend.inbox.count <= 8)
  }
}

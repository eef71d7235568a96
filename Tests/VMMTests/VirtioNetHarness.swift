import Foundation
import Testing

@testable import VMM

/// A guest's virtio-net driver in miniature, on `VirtioDriverDouble`: it initializes the card with
/// both queues, keeps 16 receive buffers of 2 KiB posted on queue 0 (re-posting each one it takes
/// back), transmits frames on queue 1, answers ARP requests for the guest's address as a guest's
/// stack would, and waits for what it expects under a watchdog.
///
/// The test's thread plays the vCPU: it alone touches the card, and it does what the machine does
/// when the backend wakes it (`VirtioNet.pollBackend`).
final class VirtioNetHarness {
  let driver: VirtioDriverDouble
  let card: VirtioNet
  let backend: any EthernetBackend
  /// Signalled when frames arrive for the guest.
  private let woken = DispatchSemaphore(value: 0)
  /// The next receive-queue used entry to take, and the next transmit descriptor.
  private var nextUsed: UInt16 = 0
  private var nextTransmit: UInt16 = 0
  /// Every frame received so far, in order.
  private(set) var received: [EthernetPackets.Frame] = []
  /// Whether to answer ARP requests for 10.0.2.15.
  var answersARP = true

  static let guestMAC = VirtioNet.defaultMAC
  static let receiveBufferLength: UInt32 = 2048
  /// How long a test waits for anything before it fails (never reached when all is well).
  static let watchdogSeconds: Double = 20

  init(backend: any EthernetBackend, postBuffers: Bool = true) throws {
    self.backend = backend
    card = VirtioNet(backend: backend)
    driver = try VirtioDriverDouble(backend: card)
    let status = driver.initialize(queues: 2)
    #expect(status & 8 != 0, "FEATURES_OK")
    backend.inbox.wake = { [woken] in woken.signal() }
    if postBuffers {
      for i in 0..<driver.queueSize { try postReceiveBuffer(i) }
    }
  }

  deinit { backend.inbox.wake = nil }

  var memory: GuestMemory { driver.memory }
  func receiveBuffer(_ i: UInt16) -> UInt64 { 0x40_0000 + UInt64(i) * 0x1000 }

  /// Posts receive buffer `i` (descriptor `i` of queue 0).
  func postReceiveBuffer(_ i: UInt16, length: UInt32 = VirtioNetHarness.receiveBufferLength) throws {
    try driver.descriptor(i, address: receiveBuffer(i), length: length, flags: 2)
    try driver.submit(i, queue: 0)
  }

  /// Transmits `frame` behind a zeroed header as a one-buffer chain on queue 1.
  func transmit(_ frame: [UInt8]) throws {
    let slot = nextTransmit % driver.queueSize
    nextTransmit &+= 1
    let address = 0x50_0000 + UInt64(slot) * 0x1000
    try memory.write(address, bytes: [UInt8](repeating: 0, count: VirtioNet.headerLength) + frame)
    try driver.descriptor(
      slot, address: address, length: UInt32(VirtioNet.headerLength + frame.count), flags: 0,
      table: driver.descriptors + 0x1_0000)
    try driver.submit(slot, queue: 1)
  }

  /// Takes the frames the card delivered since the last call (after letting it take what its
  /// backend queued), re-posting their buffers.
  @discardableResult
  func collect() throws -> [EthernetPackets.Frame] {
    card.pollBackend()
    var frames: [EthernetPackets.Frame] = []
    let ring = driver.used
    let index = try memory.read(UInt16.self, at: ring + 2)
    while nextUsed != index {
      let slot = ring + 4 + 8 * UInt64(nextUsed % driver.queueSize)
      let id = UInt16(truncatingIfNeeded: try memory.read(UInt32.self, at: slot))
      let length = try memory.read(UInt32.self, at: slot + 4)
      nextUsed &+= 1
      if length >= UInt32(VirtioNet.headerLength) {
        let bytes = try memory.read(receiveBuffer(id), count: Int(length))
        #expect(bytes[0..<10].allSatisfy { $0 == 0 }, "no offloads: flags, gso_type and the rest zero")
        #expect(bytes[10] == 1 && bytes[11] == 0, "num_buffers 1")
        if let frame = EthernetPackets.Frame(Array(bytes.dropFirst(VirtioNet.headerLength))) {
          frames.append(frame)
          try answerARP(frame)
        }
      }
      try postReceiveBuffer(id)
    }
    received += frames
    return frames
  }

  private func answerARP(_ frame: EthernetPackets.Frame) throws {
    guard answersARP, let a = frame.arp, a.operation == 1, a.targetIP == UserNetworkAddresses.guest else { return }
    try transmit(
      EthernetPackets.ethernet(
        to: a.senderMAC, from: Self.guestMAC, type: EthernetPackets.arpType,
        EthernetPackets.arp(
          operation: 2, senderMAC: Self.guestMAC, senderIP: UserNetworkAddresses.guest, targetMAC: a.senderMAC,
          targetIP: a.senderIP)))
  }

  /// Waits until `done` holds, collecting frames meanwhile; false (with the test failed) when the
  /// watchdog ran out first.
  func wait(for what: String, until done: () throws -> Bool) throws -> Bool {
    let deadline = Date().addingTimeInterval(Self.watchdogSeconds)
    while Date() < deadline {
      try collect()
      if try done() { return true }
      _ = woken.wait(timeout: .now() + .milliseconds(20))
    }
    Issue.record("watchdog: no \(what) within \(Self.watchdogSeconds) s")
    return false
  }

  /// Waits for a frame `match` accepts among those received from now on (or from index `since` of
  /// `received`), and returns what it made of it.
  func waitForFrame<T>(_ what: String, since: Int? = nil, _ match: (EthernetPackets.Frame) -> T?) throws -> T? {
    var seen = since ?? received.count
    var result: T?
    _ = try wait(for: what) {
      while seen < received.count, result == nil {
        result = match(received[seen])
        seen += 1
      }
      return result != nil
    }
    return result
  }
}

/// A backend that keeps what the guest sends, for tests of the card alone.
final class RecordingEthernetBackend: EthernetBackend, @unchecked Sendable {
  let inbox: FrameInbox
  private(set) var sent: [[UInt8]] = []
  init(inboxLimit: Int = 256) { inbox = FrameInbox(limit: inboxLimit) }
  func send(_ frame: [UInt8]) { sent.append(frame) }
  var droppedFromGuest: UInt64 { 0 }
}

import Foundation
import TestHostSupport
import Testing

@testable import VMM

/// The user-mode network (libslirp on its own thread) behind the virtio-net card, driven by the
/// `VirtioNetHarness` guest driver: ARP, DHCP, a TCP connection from the guest to a listener on the
/// host's loopback (through 10.0.2.2), host port forwards (TCP and UDP) into the guest, and start-up
/// errors. Every wait has a watchdog; nothing depends on timing.
@Suite struct UserNetworkTests {
  let guest = UserNetworkAddresses.guest
  let host = UserNetworkAddresses.host
  let mac = VirtioNetHarness.guestMAC

  func arpRequest(for target: IPv4Address) -> [UInt8] {
    EthernetPackets.ethernet(
      to: EthernetPackets.broadcastMAC, from: mac, type: EthernetPackets.arpType,
      EthernetPackets.arp(
        operation: 1, senderMAC: mac, senderIP: guest, targetMAC: [0, 0, 0, 0, 0, 0], targetIP: target))
  }

  /// Resolves the gateway's MAC address the way a guest does.
  func gatewayMAC(_ h: VirtioNetHarness) throws -> [UInt8]? {
    try h.transmit(arpRequest(for: host))
    return try h.waitForFrame("ARP reply from 10.0.2.2") { f in
      guard let a = f.arp, a.operation == 2, a.senderIP == host else { return nil }
      return a.senderMAC
    }
  }

  func tcpFrame(
    to gateway: [UInt8], destination: IPv4Address, _ sourcePort: UInt16, _ destinationPort: UInt16,
    sequence: UInt32, acknowledgement: UInt32, flags: UInt8, _ payload: [UInt8] = []
  ) -> [UInt8] {
    EthernetPackets.ethernet(
      to: gateway, from: mac, type: EthernetPackets.ipv4Type,
      EthernetPackets.ipv4(
        from: guest, to: destination, protocol: 6,
        EthernetPackets.tcp(
          from: guest, sourcePort, to: destination, destinationPort, sequence: sequence,
          acknowledgement: acknowledgement, flags: flags, payload)))
  }

  @Test func anARPRequestForTheGatewayGetsAReply() throws {
    let network = try UserNetwork()
    defer { network.shutdown() }
    let h = try VirtioNetHarness(backend: network)
    try h.transmit(arpRequest(for: host))
    let reply = try h.waitForFrame("ARP reply") { f -> EthernetPackets.Frame? in
      guard let a = f.arp, a.operation == 2 else { return nil }
      return f
    }
    let r = try #require(reply)
    let a = try #require(r.arp)
    #expect(a.senderIP == host && a.targetIP == guest)
    #expect(r.destination == mac, "sent to the asker")
    #expect(a.senderMAC == r.source && a.senderMAC != mac)
    #expect(h.card.framesSent == 1 && h.card.framesReceived >= 1)
  }

  @Test func aDHCPDiscoverGetsAnOfferOf10_0_2_15() throws {
    let network = try UserNetwork()
    defer { network.shutdown() }
    let h = try VirtioNetHarness(backend: network)
    let xid: UInt32 = 0x5452_4956
    try h.transmit(
      EthernetPackets.ethernet(
        to: EthernetPackets.broadcastMAC, from: mac, type: EthernetPackets.ipv4Type,
        EthernetPackets.ipv4(
          from: .any, to: IPv4Address(0xFFFF_FFFF), protocol: 17,
          EthernetPackets.udp(
            from: .any, 68, to: IPv4Address(0xFFFF_FFFF), 67, EthernetPackets.dhcpDiscover(mac: mac, xid: xid)))))
    let offer = try h.waitForFrame("DHCP offer") { f -> [UInt8]? in
      guard let u = f.udp, u.sourcePort == 67, u.destinationPort == 68, u.payload.count >= 240 else { return nil }
      return u.payload
    }
    let bootp = try #require(offer)
    #expect(bootp[0] == 2, "BOOTREPLY")
    #expect(EthernetPackets.be32(bootp, 4) == xid)
    #expect(IPv4Address(EthernetPackets.be32(bootp, 16)) == guest, "yiaddr 10.0.2.15")
    #expect(Array(bootp[28..<34]) == mac)
    // Options: message type 2 (offer), the router and the DNS server.
    var options: [UInt8: [UInt8]] = [:]
    var i = 240
    while i + 1 < bootp.count, bootp[i] != 255 {
      if bootp[i] == 0 {
        i += 1
        continue
      }
      let length = Int(bootp[i + 1])
      guard i + 2 + length <= bootp.count else { break }
      options[bootp[i]] = Array(bootp[(i + 2)..<(i + 2 + length)])
      i += 2 + length
    }
    #expect(options[53] == [2])
    #expect(options[3] == host.bytes)
    #expect(options[6] == UserNetworkAddresses.nameServer.bytes)
  }

  @Test func aGuestConnectionTo10_0_2_2ReachesTheHostLoopback() throws {
    let (listener, port) = try HostSocket.listener()
    let network = try UserNetwork()
    defer { network.shutdown() }
    let h = try VirtioNetHarness(backend: network)
    let gateway = try #require(try gatewayMAC(h))
    let guestPort: UInt16 = 40_000
    let initial: UInt32 = 0x1000_0000
    try h.transmit(
      tcpFrame(to: gateway, destination: host, guestPort, port, sequence: initial, acknowledgement: 0, flags: 0x02))
    let synAck = try h.waitForFrame("SYN-ACK from 10.0.2.2:\(port)") { f -> EthernetPackets.Frame? in
      guard let t = f.tcp, t.destinationPort == guestPort, t.sourcePort == port else { return nil }
      return f
    }
    let frame = try #require(synAck)
    let t = try #require(frame.tcp)
    let ip = try #require(frame.ipv4)
    #expect(t.flags & 0x12 == 0x12, "SYN and ACK")
    #expect(t.acknowledgement == initial &+ 1)
    #expect(t.checksumOK && ip.checksumOK)
    #expect(ip.source == host && ip.destination == guest)
    var accepted: HostSocket?
    #expect(
      try h.wait(for: "the host accepting the connection") {
        accepted = listener.acceptConnection(); return accepted != nil
      })
    let connection = try #require(accepted)
    // Complete the handshake and send data: it arrives on the host socket.
    let ack = t.sequence &+ 1
    try h.transmit(
      tcpFrame(
        to: gateway, destination: host, guestPort, port, sequence: initial &+ 1, acknowledgement: ack, flags: 0x10))
    try h.transmit(
      tcpFrame(
        to: gateway, destination: host, guestPort, port, sequence: initial &+ 1, acknowledgement: ack, flags: 0x18,
        Array("hello host".utf8)))
    var got: [UInt8] = []
    #expect(
      try h.wait(for: "the guest's data on the host") {
        got += connection.receiveAvailable(); return got.count >= 10
      })
    #expect(String(decoding: got, as: UTF8.self) == "hello host")
    // And the other way.
    #expect(connection.send(Array("hello guest".utf8)))
    let data = try h.waitForFrame("the host's data in the guest") { f -> [UInt8]? in
      guard let s = f.tcp, s.destinationPort == guestPort, !s.payload.isEmpty else { return nil }
      #expect(s.checksumOK)
      #expect(s.sequence == ack, "the next byte after the SYN")
      return s.payload
    }
    #expect(data.map { String(decoding: $0, as: UTF8.self) } == "hello guest")
  }

  @Test func aHostPeerThatResetsEndsTheGuestConnection() throws {
    // The host side resets: libslirp ends the guest's connection, and the guest's later writes
    // into it are answered without harm (the network thread also blocks SIGPIPE, as libslirp's
    // send() on a dead socket would raise it in a process that does not ignore it).
    let (listener, port) = try HostSocket.listener()
    let network = try UserNetwork()
    defer { network.shutdown() }
    let h = try VirtioNetHarness(backend: network)
    let gateway = try #require(try gatewayMAC(h))
    let guestPort: UInt16 = 40_001
    let initial: UInt32 = 7
    try h.transmit(
      tcpFrame(to: gateway, destination: host, guestPort, port, sequence: initial, acknowledgement: 0, flags: 0x02))
    let synAck = try h.waitForFrame("SYN-ACK") { f -> UInt32? in
      guard let t = f.tcp, t.destinationPort == guestPort, t.flags & 0x12 == 0x12 else { return nil }
      return t.sequence
    }
    let ack = try #require(synAck) &+ 1
    var accepted: HostSocket?
    #expect(
      try h.wait(for: "the accepted connection") {
        accepted = listener.acceptConnection(); return accepted != nil
      })
    try h.transmit(
      tcpFrame(
        to: gateway, destination: host, guestPort, port, sequence: initial &+ 1, acknowledgement: ack, flags: 0x10))
    accepted?.resetOnClose()
    accepted = nil  // closed: the host side resets the connection
    var sequence = initial &+ 1
    let ended = try h.waitForFrame("FIN or RST toward the guest") { f -> UInt8? in
      guard let t = f.tcp, t.destinationPort == guestPort, t.flags & 0x05 != 0 else { return nil }
      return t.flags
    }
    #expect(ended != nil)
    // The guest keeps writing into the dead connection: answered, never a crash.
    for _ in 0..<3 {
      try h.transmit(
        tcpFrame(
          to: gateway, destination: host, guestPort, port, sequence: sequence, acknowledgement: ack, flags: 0x18,
          Array("late".utf8)))
      sequence &+= 4
    }
    try h.transmit(arpRequest(for: host))
    let alive = try h.waitForFrame("an ARP reply after the writes") { f -> Bool? in
      f.arp?.operation == 2 ? true : nil
    }
    #expect(alive == true, "the network thread still runs")
  }

  @Test func aForwardedHostPortConnectsIntoTheGuest() throws {
    let hostPort = try HostSocket.freePort()
    let forward = PortForward(transport: .tcp, hostAddress: .loopback, hostPort: hostPort, guestPort: 2222)
    let network = try UserNetwork(forwards: [forward])
    defer { network.shutdown() }
    #expect(forward.description == "tcp:127.0.0.1:\(hostPort)-10.0.2.15:2222")
    let h = try VirtioNetHarness(backend: network)
    _ = try gatewayMAC(h)  // as a guest would have done at boot: the network learns its MAC
    let client = try HostSocket.connecting(to: hostPort)
    let syn = try h.waitForFrame("SYN to 10.0.2.15:2222") { f -> EthernetPackets.Frame? in
      guard let t = f.tcp, t.destinationPort == 2222, t.flags & 0x02 != 0 else { return nil }
      return f
    }
    let frame = try #require(syn)
    let t = try #require(frame.tcp)
    let ip = try #require(frame.ipv4)
    #expect(ip.destination == guest, "to the guest's address")
    #expect(t.flags & 0x10 == 0, "a bare SYN")
    #expect(t.checksumOK && ip.checksumOK)
    _ = client
  }

  @Test func aForwardedUDPPortDeliversDatagramsToTheGuest() throws {
    let hostPort = try HostSocket.freePort(Int32(SOCK_DGRAM.rawValue))
    let network = try UserNetwork(forwards: [
      PortForward(transport: .udp, hostAddress: .loopback, hostPort: hostPort, guestPort: 5353)
    ])
    defer { network.shutdown() }
    let h = try VirtioNetHarness(backend: network)
    _ = try gatewayMAC(h)
    let (sender, _) = try HostSocket.udp()
    #expect(sender.send(Array("datagram".utf8), toPort: hostPort))
    let payload = try h.waitForFrame("UDP datagram to 10.0.2.15:5353") { f -> [UInt8]? in
      guard let u = f.udp, u.destinationPort == 5353 else { return nil }
      return u.payload
    }
    #expect(payload.map { String(decoding: $0, as: UTF8.self) } == "datagram")
  }

  @Test func aPortInUseIsOneClearStartError() throws {
    let (listener, port) = try HostSocket.listener()
    let forward = PortForward(transport: .tcp, hostAddress: .loopback, hostPort: port, guestPort: 22)
    #expect {
      _ = try UserNetwork(forwards: [forward])
    } throws: { error in
      let text = (error as? UserNetwork.StartError)?.description ?? ""
      return text.contains("127.0.0.1:\(port)") && text.contains("in use") && !text.contains("\n")
    }
    _ = listener
  }

  @Test func shutdownEndsTheThreadAndClosesTheForwards() throws {
    let hostPort = try HostSocket.freePort()
    let forward = PortForward(transport: .tcp, hostAddress: .loopback, hostPort: hostPort, guestPort: 22)
    let network = try UserNetwork(forwards: [forward])
    network.shutdown()
    network.shutdown()  // twice is harmless
    network.send([UInt8](repeating: 0, count: 60))  // dropped, not queued forever
    #expect(network.droppedFromGuest == 1)
    // The port is free again: a second network can take it.
    let again = try UserNetwork(forwards: [forward])
    again.shutdown()
  }
}

import VMM

/// Ethernet, ARP, IPv4, TCP, UDP and DHCP packets built and taken apart byte by byte for the
/// network tests: what a guest's network stack would put on the wire, written from the RFCs.
enum EthernetPackets {
  static let broadcastMAC: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
  static let arpType: UInt16 = 0x0806
  static let ipv4Type: UInt16 = 0x0800

  /// TCP flags.
  enum TCPFlag {
    static let fin: UInt8 = 0x01
    static let syn: UInt8 = 0x02
    static let rst: UInt8 = 0x04
    static let psh: UInt8 = 0x08
    static let ack: UInt8 = 0x10
  }

  static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(truncatingIfNeeded: v)] }
  static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(truncatingIfNeeded: v)) }
  static func be16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }
  static func be32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(be16(b, at)) << 16 | UInt32(be16(b, at + 2)) }

  /// The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
  /// 16-bit big-endian words, an odd last byte padded with zero.
  static func checksum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var i = 0
    while i + 1 < bytes.count {
      sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
      i += 2
    }
    if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return ~UInt16(sum)
  }

  static func ethernet(to destination: [UInt8], from source: [UInt8], type: UInt16, _ payload: [UInt8]) -> [UInt8] {
    destination + source + be16(type) + payload
  }

  /// An ARP packet (Ethernet/IPv4): operation 1 request, 2 reply.
  static func arp(
    operation: UInt16, senderMAC: [UInt8], senderIP: IPv4Address, targetMAC: [UInt8], targetIP: IPv4Address
  ) -> [UInt8] {
    be16(1) + be16(ipv4Type) + [6, 4] + be16(operation) + senderMAC + senderIP.bytes + targetMAC + targetIP.bytes
  }

  /// An IPv4 header (no options, don't fragment, TTL 64) with its checksum, then `payload`.
  static func ipv4(from source: IPv4Address, to destination: IPv4Address, protocol p: UInt8, _ payload: [UInt8])
    -> [UInt8]
  {
    var header: [UInt8] = [0x45, 0] + be16(UInt16(20 + payload.count)) + be16(0x1234) + be16(0x4000) + [64, p, 0, 0]
    header += source.bytes + destination.bytes
    let c = checksum(header)
    header[10] = UInt8(c >> 8)
    header[11] = UInt8(truncatingIfNeeded: c)
    return header + payload
  }

  /// The TCP/UDP pseudo-header sum's input (RFC 793).
  static func pseudoHeader(_ source: IPv4Address, _ destination: IPv4Address, _ p: UInt8, _ length: Int) -> [UInt8] {
    source.bytes + destination.bytes + [0, p] + be16(UInt16(length))
  }

  /// A TCP segment (20-byte header, window 64240) with its checksum.
  static func tcp(
    from source: IPv4Address, _ sourcePort: UInt16, to destination: IPv4Address, _ destinationPort: UInt16,
    sequence: UInt32, acknowledgement: UInt32, flags: UInt8, _ payload: [UInt8] = []
  ) -> [UInt8] {
    var segment = be16(sourcePort) + be16(destinationPort) + be32(sequence) + be32(acknowledgement)
    segment += [5 << 4, flags] + be16(64240) + [0, 0] + be16(0) + payload
    let c = checksum(pseudoHeader(source, destination, 6, segment.count) + segment)
    segment[16] = UInt8(c >> 8)
    segment[17] = UInt8(truncatingIfNeeded: c)
    return segment
  }

  /// A UDP datagram with its checksum.
  static func udp(
    from source: IPv4Address, _ sourcePort: UInt16, to destination: IPv4Address, _ destinationPort: UInt16,
    _ payload: [UInt8]
  ) -> [UInt8] {
    var datagram = be16(sourcePort) + be16(destinationPort) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    let c = checksum(pseudoHeader(source, destination, 17, datagram.count) + datagram)
    datagram[6] = UInt8(c >> 8)
    datagram[7] = UInt8(truncatingIfNeeded: c)
    return datagram
  }

  /// A DHCPDISCOVER (RFC 2131) from `mac` with transaction `xid`, as a BOOTP payload.
  static func dhcpDiscover(mac: [UInt8], xid: UInt32) -> [UInt8] {
    var b: [UInt8] = [1, 1, 6, 0] + be32(xid) + be16(0) + be16(0x8000)  // broadcast flag
    b += [UInt8](repeating: 0, count: 16)  // ciaddr, yiaddr, siaddr, giaddr
    b += mac + [UInt8](repeating: 0, count: 10)  // chaddr
    b += [UInt8](repeating: 0, count: 192)  // sname, file
    b += [99, 130, 83, 99]  // magic cookie
    b += [53, 1, 1]  // DHCPDISCOVER
    b += [255]
    return b
  }

  /// A received frame taken apart as far as the tests need.
  struct Frame {
    let bytes: [UInt8]
    var destination: [UInt8] { Array(bytes[0..<6]) }
    var source: [UInt8] { Array(bytes[6..<12]) }
    var type: UInt16 { EthernetPackets.be16(bytes, 12) }
    var payload: [UInt8] { Array(bytes.dropFirst(14)) }

    init?(_ bytes: [UInt8]) {
      guard bytes.count >= 14 else { return nil }
      self.bytes = bytes
    }

    /// ARP: operation, sender and target addresses.
    var arp: (operation: UInt16, senderMAC: [UInt8], senderIP: IPv4Address, targetIP: IPv4Address)? {
      let p = payload
      guard type == EthernetPackets.arpType, p.count >= 28 else { return nil }
      return (
        EthernetPackets.be16(p, 6), Array(p[8..<14]), IPv4Address(EthernetPackets.be32(p, 14)),
        IPv4Address(EthernetPackets.be32(p, 24))
      )
    }

    /// IPv4: addresses, protocol, payload, and whether the header checksum holds.
    var ipv4: (source: IPv4Address, destination: IPv4Address, protocol: UInt8, payload: [UInt8], checksumOK: Bool)? {
      let p = payload
      guard type == EthernetPackets.ipv4Type, p.count >= 20, p[0] >> 4 == 4 else { return nil }
      let headerLength = Int(p[0] & 0xF) * 4
      let total = Int(EthernetPackets.be16(p, 2))
      guard headerLength >= 20, total >= headerLength, total <= p.count else { return nil }
      return (
        IPv4Address(EthernetPackets.be32(p, 12)), IPv4Address(EthernetPackets.be32(p, 16)), p[9],
        Array(p[headerLength..<total]), EthernetPackets.checksum(Array(p[0..<headerLength])) == 0
      )
    }

    /// TCP: ports, numbers, flags, payload, and whether the checksum holds.
    var tcp:
      (
        sourcePort: UInt16, destinationPort: UInt16, sequence: UInt32, acknowledgement: UInt32, flags: UInt8,
        payload: [UInt8], checksumOK: Bool
      )?
    {
      guard let ip = ipv4, ip.protocol == 6, ip.payload.count >= 20 else { return nil }
      let s = ip.payload
      let offset = Int(s[12] >> 4) * 4
      guard offset >= 20, offset <= s.count else { return nil }
      let sum = EthernetPackets.checksum(EthernetPackets.pseudoHeader(ip.source, ip.destination, 6, s.count) + s)
      return (
        EthernetPackets.be16(s, 0), EthernetPackets.be16(s, 2), EthernetPackets.be32(s, 4),
        EthernetPackets.be32(s, 8), s[13], Array(s[offset...]), sum == 0
      )
    }

    /// UDP: ports and payload.
    var udp: (sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8])? {
      guard let ip = ipv4, ip.protocol == 17, ip.payload.count >= 8 else { return nil }
      let d = ip.payload
      return (EthernetPackets.be16(d, 0), EthernetPackets.be16(d, 2), Array(d[8...]))
    }
  }
}

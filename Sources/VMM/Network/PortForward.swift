/// One host port forwarded into the user network (`--net user,hostfwd=...`): connections (TCP) or
/// datagrams (UDP) reaching `hostAddress:hostPort` on the host are passed to
/// `guestAddress:guestPort` inside the guest network.
public struct PortForward: Equatable, Sendable, CustomStringConvertible {
  /// The forwarded protocol.
  public enum Transport: String, Equatable, Sendable {
    /// TCP connections.
    case tcp
    /// UDP datagrams.
    case udp
  }

  /// TCP or UDP.
  public var transport: Transport
  /// The host address to listen on (0.0.0.0: every address).
  public var hostAddress: IPv4Address
  /// The host port to listen on (1-65535).
  public var hostPort: UInt16
  /// The guest address the traffic goes to (by default the address DHCP gives the guest).
  public var guestAddress: IPv4Address
  /// The guest port it goes to (1-65535).
  public var guestPort: UInt16

  /// A forward with these fields.
  public init(
    transport: Transport, hostAddress: IPv4Address, hostPort: UInt16,
    guestAddress: IPv4Address = UserNetworkAddresses.guest, guestPort: UInt16
  ) {
    self.transport = transport
    self.hostAddress = hostAddress
    self.hostPort = hostPort
    self.guestAddress = guestAddress
    self.guestPort = guestPort
  }

  /// QEMU's spelling: `tcp:127.0.0.1:2222-10.0.2.15:22`.
  public var description: String {
    "\(transport.rawValue):\(hostAddress):\(hostPort)-\(guestAddress):\(guestPort)"
  }
}

/// The addresses of the user-mode network (`--net user`), the ones QEMU's user networking uses, so
/// guest images configured for QEMU work unchanged.
public enum UserNetworkAddresses {
  /// The network, 10.0.2.0/24.
  public static let network = IPv4Address(10, 0, 2, 0)
  /// Its netmask, 255.255.255.0.
  public static let netmask = IPv4Address(255, 255, 255, 0)
  /// The gateway, which is also the host: connections to it reach the host's loopback (127.0.0.1).
  public static let host = IPv4Address(10, 0, 2, 2)
  /// The DNS server, which forwards to the host's resolver.
  public static let nameServer = IPv4Address(10, 0, 2, 3)
  /// The first (and, for one guest, only) address DHCP hands out.
  public static let guest = IPv4Address(10, 0, 2, 15)
}

import VMM

/// The `--net` argument, in QEMU's spelling: `none` (the default: no network card), or `user`
/// (a virtio network card on the user-mode network, `UserNetwork`) with any number of
/// `hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT` options after commas. An empty
/// protocol is TCP, an empty host address 0.0.0.0 (every host address, as in QEMU), an empty guest
/// address 10.0.2.15 (the guest's DHCP address).
public enum NetworkArgument: Equatable, Sendable {
  /// No network.
  case none
  /// The user-mode network with these forwards.
  case user(forwards: [PortForward])

  /// Why an argument was refused (one line).
  public struct Invalid: Error, CustomStringConvertible, Equatable {
    /// What is wrong, naming the part of the argument at fault.
    public let description: String
  }

  /// Parses the argument of `--net`; throws `Invalid` naming the offending part.
  public init(parsing text: String) throws(Invalid) {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    switch parts.first {
    case "none":
      guard parts.count == 1 else { throw Invalid(description: "--net none takes no options ('\(text)')") }
      self = .none
    case "user":
      var forwards: [PortForward] = []
      for option in parts.dropFirst() {
        guard option.hasPrefix("hostfwd=") else {
          throw Invalid(description: "unknown --net user option '\(option)' (only hostfwd=... is known)")
        }
        let forward = try NetworkArgument.forward(option.dropFirst("hostfwd=".count))
        if forwards.contains(where: {
          $0.transport == forward.transport && $0.hostPort == forward.hostPort
            && ($0.hostAddress == forward.hostAddress || $0.hostAddress == .any || forward.hostAddress == .any)
        }) {
          throw Invalid(
            description: "--net user forwards host \(forward.transport.rawValue) port \(forward.hostPort) twice")
        }
        forwards.append(forward)
      }
      self = .user(forwards: forwards)
    default:
      throw Invalid(description: "invalid --net '\(text)' (use none, or user[,hostfwd=tcp:127.0.0.1:2222-:22]...)")
    }
  }

  /// One `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`.
  private static func forward(_ spec: Substring) throws(Invalid) -> PortForward {
    let bad = "invalid hostfwd '\(spec)' (use [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT)"
    let sides = spec.split(separator: "-", omittingEmptySubsequences: false)
    guard sides.count == 2 else { throw Invalid(description: bad) }
    let host = sides[0].split(separator: ":", omittingEmptySubsequences: false)
    let guest = sides[1].split(separator: ":", omittingEmptySubsequences: false)
    guard host.count == 3, guest.count == 2 else { throw Invalid(description: bad) }
    let transport: PortForward.Transport
    switch host[0] {
    case "", "tcp": transport = .tcp
    case "udp": transport = .udp
    default: throw Invalid(description: "hostfwd '\(spec)': unknown protocol '\(host[0])' (tcp or udp)")
    }
    var hostAddress = IPv4Address.any
    if !host[1].isEmpty {
      guard let a = IPv4Address(host[1]) else {
        throw Invalid(description: "hostfwd '\(spec)': '\(host[1])' is not an IPv4 address")
      }
      hostAddress = a
    }
    var guestAddress = UserNetworkAddresses.guest
    if !guest[0].isEmpty {
      guard let a = IPv4Address(guest[0]) else {
        throw Invalid(description: "hostfwd '\(spec)': '\(guest[0])' is not an IPv4 address")
      }
      let mask = UserNetworkAddresses.netmask.value
      guard a.value & mask == UserNetworkAddresses.network.value, a.value & ~mask != 0, a.value & ~mask != ~mask
      else {
        throw Invalid(description: "hostfwd '\(spec)': the guest address \(a) is not a host of 10.0.2.0/24")
      }
      guestAddress = a
    }
    guard let hostPort = port(host[2]), let guestPort = port(guest[1]) else {
      throw Invalid(description: "hostfwd '\(spec)': ports are numbers from 1 to 65535")
    }
    return PortForward(
      transport: transport, hostAddress: hostAddress, hostPort: hostPort, guestAddress: guestAddress,
      guestPort: guestPort)
  }

  private static func port(_ text: Substring) -> UInt16? {
    guard (1...5).contains(text.count), text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt16(text), n > 0
    else { return nil }
    return n
  }
}

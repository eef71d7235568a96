import Foundation
import Launcher
import Testing
import VMM

/// `--memory` sizes and `--serial`/`--debugcon` backends as the command line parses them.
@Suite struct RunOptionParsingTests {
  @Test func memorySizesParseWithBinarySuffixes() throws {
    #expect(try MemorySize(parsing: "256M").bytes == 256 << 20)
    #expect(try MemorySize(parsing: "1G").bytes == 1 << 30)
    #expect(try MemorySize(parsing: "1gib").bytes == 1 << 30)
    #expect(try MemorySize(parsing: "65536K").bytes == 64 << 20)
    #expect(try MemorySize(parsing: "16777216").bytes == 16 << 20)
    #expect(try MemorySize(parsing: "1T").bytes == 1 << 40)
  }

  @Test func garbageAndAbsurdSizesAreRefused() {
    for bad in [
      "", "M", "12Q", "-1M", "1.5G", "2T", "99999999999999999999", "18446744073709551615K", "0", "4K",
      "1048577", "１M",
    ] {
      #expect(throws: MemorySize.Invalid.self, "\(bad)") { try MemorySize(parsing: bad) }
    }
  }

  @Test func diskArgumentsParseTheReadOnlySuffixOnly() {
    #expect(DiskArgument(argument: "disk.img") == DiskArgument(path: "disk.img", readOnly: false))
    #expect(DiskArgument(argument: "disk.img,readonly") == DiskArgument(path: "disk.img", readOnly: true))
    #expect(DiskArgument(argument: "/a,b/disk.img,ro") == DiskArgument(path: "/a,b/disk.img", readOnly: true))
    #expect(DiskArgument(argument: "/a,b/disk.img") == DiskArgument(path: "/a,b/disk.img", readOnly: false))
    #expect(DiskArgument(argument: "disk.img,ro,ro") == DiskArgument(path: "disk.img,ro", readOnly: true))
    #expect(DiskArgument(argument: "") == nil)
    #expect(DiskArgument(argument: ",readonly") == nil)
  }

  @Test func serialBackendsParse() {
    #expect(SerialBackend(argument: "stdio") == .stdio)
    #expect(SerialBackend(argument: "null") == .null)
    #expect(SerialBackend(argument: "stderr") == .stderr)
    #expect(SerialBackend(argument: "file:/tmp/x") == .file("/tmp/x"))
    #expect(SerialBackend(argument: "file:") == nil)
    #expect(SerialBackend(argument: "tcp:1234") == nil)
  }

  @Test func networkArgumentsParseQEMUsHostForwardSpelling() throws {
    #expect(try NetworkArgument(parsing: "none") == .none)
    #expect(try NetworkArgument(parsing: "user") == .user(forwards: []))
    let guest = UserNetworkAddresses.guest
    #expect(
      try NetworkArgument(parsing: "user,hostfwd=tcp:127.0.0.1:2222-:22")
        == .user(forwards: [
          PortForward(transport: .tcp, hostAddress: .loopback, hostPort: 2222, guestAddress: guest, guestPort: 22)
        ]))
    #expect(
      try NetworkArgument(parsing: "user,hostfwd=::8080-10.0.2.15:80,hostfwd=udp:127.0.0.1:5353-10.0.2.20:53")
        == .user(forwards: [
          PortForward(transport: .tcp, hostAddress: .any, hostPort: 8080, guestAddress: guest, guestPort: 80),
          PortForward(
            transport: .udp, hostAddress: .loopback, hostPort: 5353, guestAddress: IPv4Address(10, 0, 2, 20),
            guestPort: 53),
        ]))
    // The same host port for TCP and UDP is two different forwards.
    #expect(
      try NetworkArgument(parsing: "user,hostfwd=tcp::53-:53,hostfwd=udp::53-:53")
        == .user(forwards: [
          PortForward(transport: .tcp, hostAddress: .any, hostPort: 53, guestPort: 53),
          PortForward(transport: .udp, hostAddress: .any, hostPort: 53, guestPort: 53),
        ]))
  }

  @Test func badNetworkArgumentsAreRefusedNamingThePart() {
    let cases: [(String, String)] = [
      ("", "invalid --net"),
      ("tap", "invalid --net"),
      ("none,hostfwd=tcp::1-:1", "takes no options"),
      ("user,", "unknown --net user option"),
      ("user,restrict=on", "unknown --net user option 'restrict=on'"),
      ("user,hostfwd=tcp:127.0.0.1:2222", "invalid hostfwd"),
      ("user,hostfwd=tcp:127.0.0.1:2222:-:22", "invalid hostfwd"),
      ("user,hostfwd=sctp::2222-:22", "unknown protocol 'sctp'"),
      ("user,hostfwd=tcp:localhost:2222-:22", "'localhost' is not an IPv4 address"),
      ("user,hostfwd=tcp:127.0.0.256:2222-:22", "not an IPv4 address"),
      ("user,hostfwd=tcp::2222-10.0.3.15:22", "not a host of 10.0.2.0/24"),
      ("user,hostfwd=tcp::2222-10.0.2.255:22", "not a host of 10.0.2.0/24"),
      ("user,hostfwd=tcp::0-:22", "ports are numbers from 1 to 65535"),
      ("user,hostfwd=tcp::65536-:22", "ports are numbers from 1 to 65535"),
      ("user,hostfwd=tcp::2222-:", "ports are numbers from 1 to 65535"),
      ("user,hostfwd=tcp::+22-:22", "ports are numbers from 1 to 65535"),
      ("user,hostfwd=tcp::2222-:22,hostfwd=tcp:127.0.0.1:2222-:23", "twice"),
    ]
    for (text, reason) in cases {
      #expect(throws: NetworkArgument.Invalid.self, "\(text)") { try NetworkArgument(parsing: text) }
      do {
        _ = try NetworkArgument(parsing: text)
      } catch {
        #expect(error.description.contains(reason), "\(text): \(error.description)")
        #expect(!error.description.contains("\n"))
      }
    }
  }

  @Test func ipv4AddressesParseStrictly() {
    #expect(IPv4Address("10.0.2.15") == IPv4Address(10, 0, 2, 15))
    #expect(IPv4Address("10.0.2.15")?.description == "10.0.2.15")
    for bad in ["", "1.2.3", "1.2.3.4.5", "1..2.3", "256.0.0.1", "1.2.3.-4", " 1.2.3.4", "1.2.3.0004", "a.b.c.d"] {
      #expect(IPv4Address(bad) == nil, "\(bad)")
    }
  }
}

import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Non-blocking IPv4 TCP sockets on the host's loopback, for the network tests' host side.
public final class HostSocket {
  public let fd: Int32

  private init(fd: Int32) {
    self.fd = fd
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
  }

  deinit { close(fd) }

  public struct Failure: Error, CustomStringConvertible {
    public let description: String
    init(_ what: String) { description = "\(what): \(String(cString: strerror(errno)))" }
  }

  private static func address(port: UInt16) -> sockaddr_in {
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = port.bigEndian
    a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return a
  }

  private static func make(_ type: Int32) throws -> HostSocket {
    let fd = socket(AF_INET, type, 0)
    guard fd >= 0 else { throw Failure("socket") }
    return HostSocket(fd: fd)
  }

  /// A TCP listener on 127.0.0.1 at a port the kernel picks.
  public static func listener() throws -> (socket: HostSocket, port: UInt16) {
    let s = try make(Int32(SOCK_STREAM.rawValue))
    var a = address(port: 0)
    let bound = withUnsafePointer(to: &a) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(s.fd, 4) == 0 else { throw Failure("bind/listen") }
    return (s, try s.localPort())
  }

  /// A port on 127.0.0.1 that was free a moment ago (for a forward the test then installs).
  public static func freePort(_ type: Int32 = Int32(SOCK_STREAM.rawValue)) throws -> UInt16 {
    let s = try make(type)
    var a = address(port: 0)
    let bound = withUnsafePointer(to: &a) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw Failure("bind") }
    return try s.localPort()
  }

  /// Starts a connection to 127.0.0.1:`port` (completes in the background).
  public static func connecting(to port: UInt16) throws -> HostSocket {
    let s = try make(Int32(SOCK_STREAM.rawValue))
    var a = address(port: port)
    let r = withUnsafePointer(to: &a) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(s.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard r == 0 || errno == EINPROGRESS else { throw Failure("connect") }
    return s
  }

  /// A UDP socket on 127.0.0.1 at a port the kernel picks.
  public static func udp() throws -> (socket: HostSocket, port: UInt16) {
    let s = try make(Int32(SOCK_DGRAM.rawValue))
    var a = address(port: 0)
    let bound = withUnsafePointer(to: &a) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw Failure("bind") }
    return (s, try s.localPort())
  }

  public func localPort() throws -> UInt16 {
    var a = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let r = withUnsafeMutablePointer(to: &a) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard r == 0 else { throw Failure("getsockname") }
    return UInt16(bigEndian: a.sin_port)
  }

  /// An accepted connection, or nil when none is waiting.
  public func acceptConnection() -> HostSocket? {
    let c = accept(fd, nil, nil)
    return c >= 0 ? HostSocket(fd: c) : nil
  }

  /// Makes `close` reset the connection (SO_LINGER with a zero timeout) instead of ending it.
  public func resetOnClose() {
    var l = linger(l_onoff: 1, l_linger: 0)
    _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
  }

  /// Whatever bytes are waiting (empty when none).
  public func receiveAvailable() -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    return n > 0 ? Array(buffer[0..<n]) : []
  }

  /// Sends `bytes` (all of them: the tests send a few).
  public func send(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
  }

  /// Sends a datagram to 127.0.0.1:`port`.
  public func send(_ bytes: [UInt8], toPort port: UInt16) -> Bool {
    var a = HostSocket.address(port: port)
    return withUnsafePointer(to: &a) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { to in
        bytes.withUnsafeBytes {
          sendto(fd, $0.baseAddress, $0.count, 0, to, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
    } == bytes.count
  }
}

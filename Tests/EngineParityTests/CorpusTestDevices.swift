import VMM

/// Test devices the corpus guests talk to, each logging every access so the engines' exits can be
/// compared access by access.
final class AccessLog: @unchecked Sendable {
  private(set) var entries: [String] = []
  func record(_ entry: String) { entries.append(entry) }
}

private func hex<T: BinaryInteger>(_ v: T) -> String { String(v, radix: 16) }

/// Port 0x510: a latch; a write of any size stores the value, a read returns it.
final class LatchPort: PortIODevice {
  static let port: UInt16 = 0x510
  let log: AccessLog
  private var latch: UInt32 = 0
  init(log: AccessLog) { self.log = log }
  func read(port: UInt16, size: Int) -> UInt32 {
    log.record("in \(hex(port))/\(size) = \(hex(latch))")
    return latch
  }
  func write(port: UInt16, size: Int, value: UInt32) {
    let mask: UInt32 = size >= 4 ? .max : (1 << (UInt32(size) * 8)) - 1
    latch = value & mask
    log.record("out \(hex(port))/\(size) = \(hex(latch))")
  }
}

/// Port 0x518: a byte stack; writes push, reads pop (0xFF when empty), so string I/O reads back
/// reversed.
final class StackPort: PortIODevice {
  static let port: UInt16 = 0x518
  let log: AccessLog
  private var stack: [UInt8] = []
  init(log: AccessLog) { self.log = log }
  func read(port: UInt16, size: Int) -> UInt32 {
    let byte = stack.popLast() ?? 0xFF
    log.record("in \(hex(port))/\(size) = \(hex(byte))")
    return UInt32(byte)
  }
  func write(port: UInt16, size: Int, value: UInt32) {
    stack.append(UInt8(truncatingIfNeeded: value))
    log.record("out \(hex(port))/\(size) = \(hex(value & 0xFF))")
  }
}

/// MMIO at 0xD0000000: 4 KiB of little-endian registers that read back what was written, and a
/// read-only identification register at 0xFF8 ("TRIV").
final class RegisterFile: MMIODevice {
  static let base: UInt64 = 0xD000_0000
  static let size: UInt64 = 0x1000
  static let identification: UInt64 = 0x5452_4956
  let log: AccessLog
  private var bytes = [UInt8](repeating: 0, count: Int(size))
  init(log: AccessLog) { self.log = log }
  func read(offset: UInt64, size: Int) -> UInt64 {
    var value: UInt64 = 0
    if offset == 0xFF8 {
      value = Self.identification
    } else {
      for i in 0..<size where Int(offset) + i < bytes.count {
        value |= UInt64(bytes[Int(offset) + i]) << (UInt64(i) * 8)
      }
    }
    log.record("read \(hex(offset))/\(size) = \(hex(value))")
    return value
  }
  func write(offset: UInt64, size: Int, value: UInt64) {
    for i in 0..<size where Int(offset) + i < bytes.count {
      bytes[Int(offset) + i] = UInt8(truncatingIfNeeded: value >> (UInt64(i) * 8))
    }
    log.record("write \(hex(offset))/\(size) = \(hex(value))")
  }
}

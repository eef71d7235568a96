import CNative

/// An error reading SingleStep test data.
public struct SingleStepDataError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// The machine state before or after one SingleStep test (`INIT` / `FINA` chunk).
public struct MOOState: Sendable {
  /// 16-bit registers present (`REGS`), keyed by their position in `MOOFile.registers16`.
  public var registers16: [Int: UInt16] = [:]
  /// 32-bit registers present (`RG32`), keyed by their position in `MOOFile.registers32`.
  public var registers32: [Int: UInt32] = [:]
  /// Physical address and byte value pairs (`RAM `).
  public var ram: [(address: UInt32, value: UInt8)] = []

  /// The named 16-bit register, if the state lists it.
  public func register16(_ name: String) -> UInt16? {
    guard let i = MOOFile.registers16.firstIndex(of: name) else { return nil }
    return registers16[i]
  }

  /// The named 32-bit register, if the state lists it.
  public func register32(_ name: String) -> UInt32? {
    guard let i = MOOFile.registers32.firstIndex(of: name) else { return nil }
    return registers32[i]
  }
}

/// One SingleStep test: one instruction and the states around it.
public struct MOOTest: Sendable {
  public var index: Int
  public var name: String = ""
  public var bytes: [UInt8] = []
  public var initial = MOOState()
  public var final = MOOState()
  /// The exception the chip raised (`EXCP`, 286): its number and where FLAGS were pushed.
  public var exception: (number: UInt8, flagsAddress: UInt32)?
  /// The `HASH` digest as lower-case hex.
  public var hash: String = ""
}

/// A parsed MOO file (the SingleStepTests container format, see the test data's README).
public struct MOOFile: Sendable {
  /// Order of the `REGS` bitmask.
  public static let registers16 = [
    "ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di", "ip", "flags",
  ]
  /// Order of the `RG32` bitmask.
  public static let registers32 = [
    "cr0", "cr3", "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "cs", "ds", "es", "fs", "gs", "ss",
    "eip", "eflags", "dr6", "dr7",
  ]

  public var majorVersion: UInt8 = 0
  public var minorVersion: UInt8 = 0
  public var cpuName: String = ""
  public var tests: [MOOTest] = []

  /// Parses an uncompressed MOO byte stream.
  public init(bytes: [UInt8]) throws(SingleStepDataError) {
    var reader = ChunkReader(bytes[...])
    var position = 0
    while let chunk = try reader.next() {
      switch chunk.tag {
      case "MOO ":
        var p = PayloadReader(chunk.payload)
        majorVersion = try p.u8()
        minorVersion = try p.u8()
        _ = try p.u16()
        _ = try p.u32()
        cpuName = String(decoding: try p.bytes(4), as: UTF8.self).trimmingSpaces()
      case "TEST":
        tests.append(try MOOFile.parseTest(chunk.payload, position: position))
        position += 1
      default:
        continue
      }
    }
  }

  /// Reads and parses a `.MOO.gz` (or plain `.MOO`) file.
  public init(path: String) throws(SingleStepDataError) {
    let raw = try readFileBytes(path)
    if raw.starts(with: [0x1F, 0x8B]) {
      try self.init(bytes: try gunzip(raw))
    } else {
      try self.init(bytes: raw)
    }
  }

  private static func parseTest(_ payload: ArraySlice<UInt8>, position: Int) throws(SingleStepDataError) -> MOOTest {
    var header = PayloadReader(payload)
    let storedIndex = Int(try header.u32())
    var test = MOOTest(index: storedIndex == 0 ? position : storedIndex)
    var reader = ChunkReader(payload.dropFirst(4))
    while let chunk = try reader.next() {
      var p = PayloadReader(chunk.payload)
      switch chunk.tag {
      case "NAME":
        let n = Int(try p.u32())
        test.name = String(decoding: try p.bytes(n), as: UTF8.self)
      case "BYTS":
        let n = Int(try p.u32())
        test.bytes = Array(try p.bytes(n))
      case "INIT":
        test.initial = try parseState(chunk.payload)
      case "FINA":
        test.final = try parseState(chunk.payload)
      case "EXCP":
        let number = try p.u8()
        test.exception = (number, try p.u32())
      case "HASH":
        test.hash = chunk.payload.map { hex2($0) }.joined()
      default:
        continue
      }
    }
    return test
  }

  private static func parseState(_ payload: ArraySlice<UInt8>) throws(SingleStepDataError) -> MOOState {
    var state = MOOState()
    var reader = ChunkReader(payload)
    while let chunk = try reader.next() {
      var p = PayloadReader(chunk.payload)
      switch chunk.tag {
      case "REGS":
        let mask = try p.u16()
        for bit in 0..<registers16.count where mask & (1 << bit) != 0 {
          state.registers16[bit] = try p.u16()
        }
      case "RG32":
        let mask = try p.u32()
        for bit in 0..<registers32.count where mask & (1 << bit) != 0 {
          state.registers32[bit] = try p.u32()
        }
      case "RAM ":
        let count = Int(try p.u32())
        state.ram.reserveCapacity(count)
        for _ in 0..<count {
          let address = try p.u32()
          state.ram.append((address, try p.u8()))
        }
      default:
        continue
      }
    }
    return state
  }
}

/// Splits a byte range into (tag, payload) chunks.
struct ChunkReader {
  private var rest: ArraySlice<UInt8>

  init(_ bytes: ArraySlice<UInt8>) { rest = bytes }

  mutating func next() throws(SingleStepDataError) -> (tag: String, payload: ArraySlice<UInt8>)? {
    if rest.count < 8 { return nil }
    var p = PayloadReader(rest)
    let tag = String(decoding: try p.bytes(4), as: UTF8.self)
    let length = Int(try p.u32())
    let start = rest.startIndex + 8
    guard length <= rest.count - 8 else {
      throw SingleStepDataError("MOO chunk '\(tag)' claims \(length) bytes, only \(rest.count - 8) left")
    }
    let payload = rest[start..<(start + length)]
    rest = rest[(start + length)...]
    return (tag, payload)
  }
}

/// Little-endian reads from a chunk payload.
struct PayloadReader {
  private var rest: ArraySlice<UInt8>

  init(_ bytes: ArraySlice<UInt8>) { rest = bytes }

  mutating func bytes(_ n: Int) throws(SingleStepDataError) -> ArraySlice<UInt8> {
    guard n >= 0, rest.count >= n else { throw SingleStepDataError("MOO payload truncated") }
    let out = rest.prefix(n)
    rest = rest.dropFirst(n)
    return out
  }

  mutating func u8() throws(SingleStepDataError) -> UInt8 { try bytes(1).first ?? 0 }

  mutating func u16() throws(SingleStepDataError) -> UInt16 {
    let b = try bytes(2)
    return UInt16(b[b.startIndex]) | UInt16(b[b.startIndex + 1]) << 8
  }

  mutating func u32() throws(SingleStepDataError) -> UInt32 {
    let b = try bytes(4)
    var v: UInt32 = 0
    for (i, byte) in b.enumerated() { v |= UInt32(byte) << (8 * UInt32(i)) }
    return v
  }
}

func hex2(_ v: UInt8) -> String {
  let digits = Array("0123456789abcdef")
  return String([digits[Int(v >> 4)], digits[Int(v & 15)]])
}

extension String {
  func trimmingSpaces() -> String {
    var s = Substring(self)
    while let last = s.last, last == " " || last == "\0" { s = s.dropLast() }
    while let first = s.first, first == " " { s = s.dropFirst() }
    return String(s)
  }
}

/// Inflates gzip data through zlib.
func gunzip(_ data: [UInt8]) throws(SingleStepDataError) -> [UInt8] {
  var out: UnsafeMutablePointer<UInt8>?
  var length = 0
  let status = data.withUnsafeBufferPointer { cn_gunzip($0.baseAddress, $0.count, &out, &length) }
  guard status == 0, let out else { throw SingleStepDataError("corrupt gzip data (zlib status \(status))") }
  defer { cn_free(out) }
  return Array(UnsafeBufferPointer(start: out, count: length))
}

/// Flag computation shared by the arithmetic instructions (eager: RFLAGS is always exact).
enum ALU {
  @inline(__always) static func mask(_ size: Int) -> UInt64 { size >= 8 ? ~0 : (1 << UInt64(size * 8)) &- 1 }
  @inline(__always) static func sign(_ size: Int) -> UInt64 { 1 << UInt64(size * 8 - 1) }
  @inline(__always) static func parity(_ v: UInt64) -> Bool { UInt8(truncatingIfNeeded: v).nonzeroBitCount & 1 == 0 }

  /// SF, ZF and PF of a result.
  @inline(__always) static func szp(_ r: UInt64, _ size: Int) -> UInt64 {
    let m = r & mask(size)
    var f: UInt64 = 0
    if m == 0 { f |= Flags.zf }
    if m & sign(size) != 0 { f |= Flags.sf }
    if parity(m) { f |= Flags.pf }
    return f
  }

  /// a + b + carry: (result, flags).
  @inline(__always) static func add(_ a: UInt64, _ b: UInt64, carry: UInt64, _ size: Int) -> (UInt64, UInt64) {
    let m = mask(size)
    let a = a & m
    let b = b & m
    let r = (a &+ b &+ carry) & m
    var f = szp(r, size)
    let cf: Bool = size == 8 ? (r < a || (carry != 0 && r == a)) : (a + b + carry) > m
    if cf { f |= Flags.cf }
    if (a ^ r) & (b ^ r) & sign(size) != 0 { f |= Flags.of }
    if (a ^ b ^ r) & 0x10 != 0 { f |= Flags.af }
    return (r, f)
  }

  /// a - b - borrow: (result, flags).
  @inline(__always) static func sub(_ a: UInt64, _ b: UInt64, borrow: UInt64, _ size: Int) -> (UInt64, UInt64) {
    let m = mask(size)
    let a = a & m
    let b = b & m
    let r = (a &- b &- borrow) & m
    var f = szp(r, size)
    let cf: Bool = a < b || (borrow != 0 && a == b)
    if cf { f |= Flags.cf }
    if (a ^ b) & (a ^ r) & sign(size) != 0 { f |= Flags.of }
    if (a ^ b ^ r) & 0x10 != 0 { f |= Flags.af }
    return (r, f)
  }

  /// Logic result flags: CF = OF = AF = 0.
  @inline(__always) static func logic(_ r: UInt64, _ size: Int) -> UInt64 { szp(r, size) }

  @inline(__always) static func signExtend(_ v: UInt64, _ size: Int) -> Int64 {
    switch size {
    case 1: return Int64(Int8(truncatingIfNeeded: v))
    case 2: return Int64(Int16(truncatingIfNeeded: v))
    case 4: return Int64(Int32(truncatingIfNeeded: v))
    default: return Int64(bitPattern: v)
    }
  }
}

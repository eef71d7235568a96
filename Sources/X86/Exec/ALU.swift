/// Flag computation shared by the arithmetic instructions (eager: RFLAGS is always exact).
enum ALU {
  @_transparent static func mask(_ size: Int) -> UInt64 { size >= 8 ? ~0 : (1 << UInt64(size * 8)) &- 1 }
  @_transparent static func sign(_ size: Int) -> UInt64 { 1 << UInt64(size * 8 - 1) }
  @inline(__always) static func parity(_ v: UInt64) -> Bool { UInt8(truncatingIfNeeded: v).nonzeroBitCount & 1 == 0 }

  /// SF, ZF and PF of a result, without branches: PF comes from folding the low byte to a nibble
  /// and looking its parity up in the 16-bit constant 0x9669 (bit n set = nibble n has even parity).
  @_transparent static func szp(_ r: UInt64, _ size: Int) -> UInt64 {
    let m = r & mask(size)
    let zf: UInt64 = m == 0 ? Flags.zf : 0
    let sf = (m >> UInt64(size &* 8 &- 8)) & Flags.sf
    let nibble = (m ^ (m >> 4)) & 0xF
    let pf = ((0x9669 as UInt64) >> nibble) & 1
    return zf | sf | pf << 2
  }

  /// a + b + carry: (result, flags).
  @_transparent static func add(_ a: UInt64, _ b: UInt64, carry: UInt64, _ size: Int) -> (UInt64, UInt64) {
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
  @_transparent static func sub(_ a: UInt64, _ b: UInt64, borrow: UInt64, _ size: Int) -> (UInt64, UInt64) {
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
  @_transparent static func logic(_ r: UInt64, _ size: Int) -> UInt64 { szp(r, size) }

  /// The two-operand ALU group (ADD OR ADC SBB AND SUB XOR CMP TEST) on `size`-byte values:
  /// (result, the six status flags). `carry` is CF (0 or 1), used by ADC and SBB. CMP and TEST
  /// return the result their flags come from; the caller does not write it.
  @_transparent
  static func binary(_ op: Operation, _ a: UInt64, _ b: UInt64, carry: UInt64, _ size: Int) -> (UInt64, UInt64) {
    switch op {
    case .add: return add(a, b, carry: 0, size)
    case .adc: return add(a, b, carry: carry, size)
    case .sub, .cmp: return sub(a, b, borrow: 0, size)
    case .sbb: return sub(a, b, borrow: carry, size)
    case .and, .test: return (a & b, logic(a & b, size))
    case .or: return (a | b, logic(a | b, size))
    default: return (a ^ b, logic(a ^ b, size))
    }
  }

  /// Two- and three-operand IMUL: the low `size` bytes of a * b (signed) and its flags (CF = OF =
  /// the product did not fit; SF, ZF, PF from the result, AF clear, as the model defines them).
  @_transparent static func imul(_ a: UInt64, _ b: UInt64, _ size: Int) -> (UInt64, UInt64) {
    let (hi, lo) = signExtend(a, size).multipliedFullWidth(by: signExtend(b, size))
    let r = lo & mask(size)
    let overflow = size == 8 ? hi != (Int64(bitPattern: lo) >> 63) : signExtend(r, size) != Int64(bitPattern: lo)
    return (r, szp(r, size) | (overflow ? Flags.cf | Flags.of : 0))
  }

  /// CF and OF (as RFLAGS bits) of ROL (`left`) or ROR from the rotated `size`-byte result `r`:
  /// ROL's CF is the result's bit 0, ROR's its top bit; OF as the last 1-bit step leaves it.
  @_transparent static func rotateFlags(_ r: UInt64, _ size: Int, left: Bool) -> UInt64 {
    let msb = r & sign(size) != 0
    if left {
      let cf = r & 1 != 0
      return (cf ? Flags.cf : 0) | (msb != cf ? Flags.of : 0)
    }
    return (msb ? Flags.cf : 0) | (msb != (r & (sign(size) >> 1) != 0) ? Flags.of : 0)
  }

  /// ROL ROR RCL RCR SHL/SAL SHR SAR of a `size`-byte value by a non-zero, already masked count:
  /// (result, the new RFLAGS built from `flags`). Flags a rotate leaves alone keep their values.
  static func shiftRotate(_ op: Operation, _ a: UInt64, count: UInt64, _ size: Int, flags: UInt64) -> (UInt64, UInt64) {
    shiftRotateInline(op, a, count: count, size, flags: flags)
  }

  /// `shiftRotate`, inlined into the caller: with the operation and size constant there, only that
  /// operation's code for that size remains.
  @_transparent
  static func shiftRotateInline(
    _ op: Operation, _ a: UInt64, count: UInt64, _ size: Int, flags: UInt64
  ) -> (UInt64, UInt64) {
    let m = mask(size)
    let sign = sign(size)
    let bits = UInt64(size &* 8)
    var f = flags
    func set(_ flag: UInt64, _ on: Bool) { f = on ? f | flag : f & ~flag }
    let r: UInt64
    switch op {
    case .shl, .sal:
      r = count >= 64 ? 0 : (a << count) & m
      let cf = count <= bits ? (a >> (bits - count)) & 1 != 0 : false
      f = (f & ~Flags.arithmetic) | szp(r, size)
      set(Flags.cf, cf)
      set(Flags.of, (r & sign != 0) != cf)
    case .shr:
      r = count >= 64 ? 0 : a >> count
      let cf = count <= bits ? (a >> (count - 1)) & 1 != 0 : false
      f = (f & ~Flags.arithmetic) | szp(r, size)
      set(Flags.cf, cf)
      // OF as the last 1-bit step leaves it: the MSB before that step (0 for counts above 1).
      set(Flags.of, count == 1 ? a & sign != 0 : (count <= bits && (a >> (count - 1)) & sign != 0))
    case .sar:
      let sa = signExtend(a, size)
      r = UInt64(bitPattern: sa >> Int64(min(count, 63))) & m
      let cf = (sa >> Int64(min(count - 1, 63))) & 1 != 0
      f = (f & ~Flags.arithmetic) | szp(r, size)
      set(Flags.cf, cf)
    case .rol:
      let n = count & (bits &- 1)  // bits is a power of two
      r = n == 0 ? a : ((a << n) | (a >> (bits - n))) & m
      f = (f & ~(Flags.cf | Flags.of)) | rotateFlags(r, size, left: true)
    case .ror:
      let n = count & (bits &- 1)  // bits is a power of two
      r = n == 0 ? a : ((a >> n) | (a << (bits - n))) & m
      f = (f & ~(Flags.cf | Flags.of)) | rotateFlags(r, size, left: false)
    case .rcl:
      let n = size <= 2 ? count % (bits + 1) : count
      var x = a
      var cf: UInt64 = f & Flags.cf
      for _ in 0..<n {
        let out: UInt64 = x & sign != 0 ? 1 : 0
        x = ((x << 1) | cf) & m
        cf = out
      }
      r = x
      set(Flags.cf, cf != 0)
      set(Flags.of, (r & sign != 0) != (cf != 0))
    default:  // rcr
      let n = size <= 2 ? count % (bits + 1) : count
      var x = a
      var cf: UInt64 = f & Flags.cf
      for _ in 0..<n {
        let out = x & 1
        x = (x >> 1) | (cf != 0 ? sign : 0)
        cf = out
      }
      r = x
      set(Flags.cf, cf != 0)
      set(Flags.of, (r & sign != 0) != (r & (sign >> 1) != 0))
    }
    return (r, f)
  }

  @_transparent static func signExtend(_ v: UInt64, _ size: Int) -> Int64 {
    switch size {
    case 1: return Int64(Int8(truncatingIfNeeded: v))
    case 2: return Int64(Int16(truncatingIfNeeded: v))
    case 4: return Int64(Int32(truncatingIfNeeded: v))
    default: return Int64(bitPattern: v)
    }
  }
}

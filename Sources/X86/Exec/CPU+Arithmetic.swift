/// Multiplication, division, shifts, rotates, bit operations and decimal adjustment.
extension CPU {
  func multiplyDivide(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    let m = ALU.mask(size)
    let bits = UInt64(size * 8)
    if ins.operation == .imul && ins.operandCount >= 2 {
      let three = ins.operandCount == 3
      let a = try readOperand(ins, three ? ins.operands.1 : ins.operands.0, ea)
      let b = try readOperand(ins, three ? ins.operands.2 : ins.operands.1, ea)
      let (r, f) = ALU.imul(a, b, size)
      try writeOperand(ins, ins.operands.0, ea, r)
      setArithmeticFlags(f)
      return
    }
    let src = try readOperand(ins, ins.operands.0, ea)
    switch ins.operation {
    case .mul:
      let acc = reg(0, size)
      let (hi, lo) = acc.multipliedFullWidth(by: src)
      let high: UInt64
      let low: UInt64
      if size == 8 {
        high = hi
        low = lo
      } else {
        low = lo & m
        high = (lo >> bits) & m
      }
      writeWide(size, high: high, low: low)
      setArithmeticFlags(ALU.szp(low, size) | (high != 0 ? Flags.cf | Flags.of : 0))
    case .imul:
      let (hi, lo) = ALU.signExtend(reg(0, size), size).multipliedFullWidth(by: ALU.signExtend(src, size))
      let high: UInt64
      let low: UInt64
      let overflow: Bool
      if size == 8 {
        high = UInt64(bitPattern: hi)
        low = lo
        overflow = hi != (Int64(bitPattern: lo) >> 63)
      } else {
        low = lo & m
        high = (lo >> bits) & m
        overflow = ALU.signExtend(low, size) != Int64(bitPattern: lo)
      }
      writeWide(size, high: high, low: low)
      setArithmeticFlags(ALU.szp(low, size) | (overflow ? Flags.cf | Flags.of : 0))
    case .div:
      let (high, low) = readWide(size)
      if src == 0 || high >= src {
        // The 8086 microcode has compared the high half with the divisor when it traps: FLAGS
        // (and the image pushed for #DE) hold the flags of that subtraction.
        if model == .i8086 { setArithmeticFlags(ALU.sub(high, src, borrow: 0, size).1) }
        throw Fault.divideError
      }
      let q: UInt64
      let r: UInt64
      if size == 8 {
        (q, r) = src.dividingFullWidth((high, low))
      } else {
        let d = (high << bits) | low
        q = d / src
        r = d % src
      }
      writeDivision(size, quotient: q, remainder: r)
    default:  // idiv
      let (high, low) = readWide(size)
      // Sign-extend the 2n-bit dividend into a 128-bit (hi, lo) pair.
      var dhi: UInt64
      var dlo: UInt64
      if size == 8 {
        dhi = high
        dlo = low
      } else {
        let d = ALU.signExtend((high << bits) | low, size * 2 > 8 ? 8 : size * 2)
        dlo = UInt64(bitPattern: d)
        dhi = d < 0 ? ~0 : 0
      }
      let negative = dhi >> 63 != 0
      if negative {
        dlo = ~dlo &+ 1
        dhi = ~dhi &+ (dlo == 0 ? 1 : 0)
      }
      let s = ALU.signExtend(src, size)
      let smag = s.magnitude
      if model == .i8086 && size < 8 {
        // The 8086 compares the magnitudes' high half with the divisor's magnitude first; when
        // that traps, FLAGS hold the flags of that subtraction.
        let highMagnitude = (dlo >> bits) & m
        if src == 0 || highMagnitude >= smag {
          setArithmeticFlags(ALU.sub(highMagnitude, smag, borrow: 0, size).1)
          throw Fault.divideError
        }
      }
      if src == 0 || dhi >= smag { throw Fault.divideError }
      let (qmag, rmag) = smag.dividingFullWidth((dhi, dlo))
      let qNegative = negative != (s < 0)
      let limit: UInt64 = 1 << (bits - 1)
      if qNegative ? (qmag > limit || (qmag == limit && model == .i8086)) : qmag >= limit {
        throw Fault.divideError
      }
      // 8086 microcode quirk: a REP prefix on IDIV negates the quotient.
      let negate = model == .i8086 && (ins.prefixes.contains(.rep) || ins.prefixes.contains(.repne))
      let q = qNegative != negate ? ~qmag &+ 1 : qmag
      let r = negative ? ~rmag &+ 1 : rmag
      writeDivision(size, quotient: q & m, remainder: r & m)
    }
  }

  /// A 32-bit register destination is zero-extended even when a zero count leaves it unchanged.
  @inline(__always) func zeroExtendIfDword(_ o: Operand, _ value: UInt64) {
    if o.kind == .gpr && o.size == 4 { setReg(Int(o.reg), 4, value) }
  }

  func readWide(_ size: Int) -> (UInt64, UInt64) {
    if size == 1 { return ((state.gpr(0) >> 8) & 0xFF, state.gpr(0) & 0xFF) }
    return (reg(2, size), reg(0, size))
  }

  func writeWide(_ size: Int, high: UInt64, low: UInt64) {
    if size == 1 {
      setReg(0, 2, (high << 8) | low)
    } else {
      setReg(0, size, low)
      setReg(2, size, high)
    }
  }

  func writeDivision(_ size: Int, quotient: UInt64, remainder: UInt64) {
    if size == 1 {
      setReg(0, 2, ((remainder & 0xFF) << 8) | (quotient & 0xFF))
    } else {
      setReg(0, size, quotient)
      setReg(2, size, remainder)
    }
  }

  /// ROL ROR RCL RCR SHL/SAL SHR SAR and SETMO, specialized per operand size (the size's masks
  /// and shifts become constants) and, for the rotates and shifts, per operation.
  func shiftRotate(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    switch ins.operandSize {
    case 4: try shiftRotate(&ins, ea: ea, size: 4)
    case 8: try shiftRotate(&ins, ea: ea, size: 8)
    case 2: try shiftRotate(&ins, ea: ea, size: 2)
    default: try shiftRotate(&ins, ea: ea, size: 1)
    }
  }

  @_transparent
  private func shiftRotate(_ ins: inout DecodedInstruction, ea: UInt64, size: Int) throws(Fault) {
    let m = ALU.mask(size)
    var count = (try readOperand(ins, ins.operands.1, ea, size: 1)) & 0xFF
    if model != .i8086 { count &= size == 8 ? 0x3F : 0x1F }
    let a = try readOperandForUpdate(ins, ins.operands.0, ea, size: size)
    let operation = ins.operation
    if operation == .setmo {
      if count == 0 { return }
      try writeOperand(ins, ins.operands.0, ea, m)
      setArithmeticFlags(ALU.szp(m, size))
      return
    }
    if count == 0 {
      zeroExtendIfDword(ins.operands.0, a)
      return
    }
    // Each case is `ALU.shiftRotate` for that operation, inlined.
    let (r, f): (UInt64, UInt64)
    switch operation {
    case .rol: (r, f) = ALU.shiftRotateInline(.rol, a, count: count, size, flags: flags)
    case .ror: (r, f) = ALU.shiftRotateInline(.ror, a, count: count, size, flags: flags)
    case .shl, .sal: (r, f) = ALU.shiftRotateInline(.shl, a, count: count, size, flags: flags)
    case .shr: (r, f) = ALU.shiftRotateInline(.shr, a, count: count, size, flags: flags)
    case .sar: (r, f) = ALU.shiftRotateInline(.sar, a, count: count, size, flags: flags)
    default: (r, f) = ALU.shiftRotate(operation, a, count: count, size, flags: flags)
    }
    try writeOperand(ins, ins.operands.0, ea, r, size: size)
    flags = f
  }

  func doubleShift(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    let m = ALU.mask(size)
    let sign = ALU.sign(size)
    let bits = UInt64(size * 8)
    let count = (try readOperand(ins, ins.operands.2, ea)) & (size == 8 ? 63 : 31)
    if count == 0 {
      zeroExtendIfDword(ins.operands.0, try readOperandForUpdate(ins, ins.operands.0, ea))
      return
    }
    let a = try readOperandForUpdate(ins, ins.operands.0, ea)
    let b = try readOperand(ins, ins.operands.1, ea)
    var r: UInt64
    var cf: Bool
    if ins.operation == .shld {
      if size == 2 {
        let w = (a << 32) | (b << 16) | a
        r = (w >> (32 - count)) & m
        cf = (w >> (48 - count)) & 1 != 0
      } else {
        r = ((a << count) | (b >> (bits - count))) & m
        cf = (a >> (bits - count)) & 1 != 0
      }
    } else {
      if size == 2 {
        let w = a | (b << 16) | (a << 32)
        r = (w >> count) & m
        cf = (w >> (count - 1)) & 1 != 0
      } else {
        r = ((a >> count) | (b << (bits - count))) & m
        cf = (a >> (count - 1)) & 1 != 0
      }
    }
    try writeOperand(ins, ins.operands.0, ea, r)
    var f = ALU.szp(r, size)
    if cf { f |= Flags.cf }
    if (r & sign != 0) != (a & sign != 0) { f |= Flags.of }
    setArithmeticFlags(f)
  }

  func bitTest(_ ins: inout DecodedInstruction, ea: UInt64, nextRIP: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    let bits = Int64(size * 8)
    let o0 = ins.operands.0
    var address = ea
    var bit: UInt64
    if ins.operands.1.kind == .immediate {
      bit = ins.immediate & UInt64(bits - 1)
    } else {
      let offset = ALU.signExtend(reg(Int(ins.operands.1.reg), size), size)
      bit = UInt64(bitPattern: offset) & UInt64(bits - 1)
      if o0.kind == .memory {
        let delta = (offset >> Int64(bits.trailingZeroBitCount)) &* Int64(size)
        address = (ea &+ UInt64(bitPattern: delta)) & ALU.mask(Int(ins.addressSize))
      }
    }
    let v = ins.operation == .bt ? try readOperand(ins, o0, address) : try readOperandForUpdate(ins, o0, address)
    let cf = (v >> bit) & 1 != 0
    let m: UInt64 = 1 << bit
    switch ins.operation {
    case .bts: try writeOperand(ins, o0, address, v | m)
    case .btr: try writeOperand(ins, o0, address, v & ~m)
    case .btc: try writeOperand(ins, o0, address, v ^ m)
    default: break
    }
    setFlag(Flags.cf, cf)
  }

  func bitScan(_ ins: inout DecodedInstruction, ea: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    let bits = UInt64(size * 8)
    let src = try readOperand(ins, ins.operands.1, ea)
    let o0 = ins.operands.0
    switch ins.operation {
    case .bsf, .bsr:
      if src == 0 {
        setFlag(Flags.zf, true)
        return
      }
      let r = ins.operation == .bsf ? UInt64(src.trailingZeroBitCount) : UInt64(63 - src.leadingZeroBitCount)
      try writeOperand(ins, o0, ea, r)
      setArithmeticFlags(ALU.szp(r, size) & ~(Flags.zf | Flags.sf))
    case .tzcnt, .lzcnt:
      let r: UInt64
      if src == 0 {
        r = bits
      } else if ins.operation == .tzcnt {
        r = UInt64(src.trailingZeroBitCount)
      } else {
        r = UInt64(src.leadingZeroBitCount) - (64 - bits)
      }
      try writeOperand(ins, o0, ea, r)
      var f = state.rflags & ~(Flags.cf | Flags.zf)
      if src == 0 { f |= Flags.cf }
      if r == 0 { f |= Flags.zf }
      state.rflags = f
    default:  // popcnt
      let r = UInt64(src.nonzeroBitCount)
      try writeOperand(ins, o0, ea, r)
      setArithmeticFlags(src == 0 ? Flags.zf : 0)
    }
  }

  func decimalAdjust(_ ins: DecodedInstruction) throws(Fault) {
    var al = state.gpr(0) & 0xFF
    var ah = (state.gpr(0) >> 8) & 0xFF
    var f = state.rflags
    let af = f & Flags.af != 0
    let cf = f & Flags.cf != 0
    switch ins.operation {
    case .daa, .das:
      let old = al
      var newCF = false
      var newAF = false
      if (al & 0xF) > 9 || af {
        // The 8086 does not fold the low-nibble borrow of DAS into CF.
        let lowCarry = ins.operation == .daa ? al + 6 > 0xFF : (al < 6 && model != .i8086)
        newCF = cf || lowCarry
        al = (ins.operation == .daa ? al &+ 6 : al &- 6) & 0xFF
        newAF = true
      }
      // The 8086 compares AL against 0x9F instead of 0x99 when AF is set (its microcode tests the
      // adjusted value); later CPUs use 0x99 (SingleStep 8086 vectors, AF=1 CF=0 AL=9A-9F).
      let highLimit: UInt64 = model == .i8086 && af ? 0x9F : 0x99
      if old > highLimit || cf {
        al = (ins.operation == .daa ? al &+ 0x60 : al &- 0x60) & 0xFF
        newCF = true
      }
      f = (f & ~Flags.arithmetic) | ALU.szp(al, 1) | (newCF ? Flags.cf : 0) | (newAF ? Flags.af : 0)
      if ins.operation == .daa {
        if old & 0x80 == 0 && al & 0x80 != 0 { f |= Flags.of }
      } else if old & 0x80 != 0 && al & 0x80 == 0 {
        f |= Flags.of
      }
      setReg(0, 1, al)
    case .aaa, .aas:
      var adjust = false
      if (al & 0xF) > 9 || af {
        adjust = true
        if model == .i8086 {
          al = (ins.operation == .aaa ? al &+ 6 : al &- 6) & 0xFF
          ah = (ins.operation == .aaa ? ah &+ 1 : ah &- 1) & 0xFF
        } else {
          let ax = ((ah << 8) | al)
          let adjusted = (ins.operation == .aaa ? ax &+ 0x106 : ax &- 0x106) & 0xFFFF
          al = adjusted & 0xFF
          ah = adjusted >> 8
        }
      }
      let result = al & 0xFF
      al = result & 0x0F
      f = (f & ~Flags.arithmetic) | ALU.szp(result, 1) | (adjust ? Flags.cf | Flags.af : 0)
      setReg(0, 2, (ah << 8) | al)
    case .aam:
      let base = ins.immediate & 0xFF
      if base == 0 {
        // The 8086 leaves SF=0, ZF=1, PF=1 (flags of a zero result) before the divide-error trap;
        // the 80286 data has no AAM 0 vectors, so later models keep FLAGS.
        if model == .i8086 { state.rflags = (f & ~(Flags.sf | Flags.zf | Flags.pf)) | Flags.zf | Flags.pf }
        throw Fault.divideError
      }
      ah = al / base
      al = al % base
      f = (f & ~Flags.arithmetic) | ALU.szp(al, 1)
      setReg(0, 2, (ah << 8) | al)
    case .aad:
      let base = ins.immediate & 0xFF
      let (r, addFlags) = ALU.add(al, (ah &* base) & 0xFF, carry: 0, 1)
      f = (f & ~Flags.arithmetic) | addFlags
      setReg(0, 2, r & 0xFF)
    default:  // salc
      setReg(0, 1, cf ? 0xFF : 0)
      return
    }
    state.rflags = f
  }
}

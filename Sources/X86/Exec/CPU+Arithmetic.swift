/// Multiplication, division, shifts, rotates, bit operations and decimal adjustment.
extension CPU {
  func multiplyDivide(_ ins: DecodedInstruction, ea: UInt64) throws(Fault) {
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

  // swiftlint:disable:next cyclomatic_complexity function_body_length
  func shiftRotate(_ ins: DecodedInstruction, ea: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    let m = ALU.mask(size)
    let sign = ALU.sign(size)
    let bits = UInt64(size * 8)
    var count = (try readOperand(ins, ins.operands.1, ea)) & 0xFF
    if model != .i8086 { count &= size == 8 ? 0x3F : 0x1F }
    let a = try readOperandForUpdate(ins, ins.operands.0, ea)
    if ins.operation == .setmo {
      if count == 0 { return }
      try writeOperand(ins, ins.operands.0, ea, m)
      setArithmeticFlags(ALU.szp(m, size))
      return
    }
    if count == 0 {
      zeroExtendIfDword(ins.operands.0, a)
      return
    }
    let (r, f) = ALU.shiftRotate(ins.operation, a, count: count, size, flags: state.rflags)
    try writeOperand(ins, ins.operands.0, ea, r)
    state.rflags = f
  }

  func doubleShift(_ ins: DecodedInstruction, ea: UInt64) throws(Fault) {
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

  func bitTest(_ ins: DecodedInstruction, ea: UInt64, nextRIP: UInt64) throws(Fault) {
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

  func bitScan(_ ins: DecodedInstruction, ea: UInt64) throws(Fault) {
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
      if old > 0x99 || cf {
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
      if base == 0 { throw Fault.divideError }
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

  /// The target of a far JMP/CALL: `ptr16:16/32` immediate or `m16:16/32/64` in memory.
  func farPointerOperand(_ ins: DecodedInstruction, ea: UInt64) throws(Fault) -> (offset: UInt64, selector: UInt64) {
    if ins.operands.0.kind == .farPointer {
      let size = Int(ins.operandSize)
      return (size == 2 ? ins.immediate & 0xFFFF : ins.immediate, ins.immediate2)
    }
    let size = Int(ins.operandSize)
    let offset = try read(seg: Int(ins.segment), offset: ea, size: size)
    let selector = try read(
      seg: Int(ins.segment), offset: (ea &+ UInt64(size)) & ALU.mask(Int(ins.addressSize)), size: 2)
    return (size == 2 ? offset & 0xFFFF : offset, selector)
  }

  /// Loads CS and jumps to `offset`; CS is restored when the target faults (limit), so the
  /// instruction leaves no state behind.
  func farBranch(selector: UInt64, offset: UInt64, size: Int) throws(Fault) {
    let savedCS = state.segment(.cs)
    try loadSegment(1, selector: UInt16(truncatingIfNeeded: selector))
    do throws(Fault) {
      try branch(to: offset, size: size)
    } catch {
      state.setSegment(.cs, savedCS)
      throw error
    }
  }

  /// Far JMP/CALL/RET and IRET (real mode; protected mode through `loadSegment`).
  func farControl(_ ins: DecodedInstruction, ea: UInt64, nextRIP: UInt64) throws(Fault) {
    if usesSystemLayerForFarTransfer(ins.operation) { return try farControlProtected(ins, ea: ea, nextRIP: nextRIP) }
    let size = Int(ins.operandSize)
    switch ins.operation {
    case .jmpFar, .callFar:
      let (offset, selector) = try farPointerOperand(ins, ea: ea)
      var sp = stackPointer()
      if ins.operation == .callFar {
        let pushSize = size
        sp = try pushValue(UInt64(state.segmentSelector(1)), size: pushSize, from: sp)
        sp = try pushValue(nextRIP, size: pushSize, from: sp)
      }
      try farBranch(selector: selector, offset: offset, size: size)
      if ins.operation == .callFar { setStackPointer(sp) }
    case .retf:
      var sp = stackPointer()
      let (ip, sp1) = try popValue(size: size, from: sp)
      let (cs, sp2) = try popValue(size: size, from: sp1)
      sp = sp2
      try farBranch(selector: cs, offset: ip, size: size)
      setStackPointer((sp &+ (ins.operandCount > 0 ? ins.immediate & 0xFFFF : 0)) & ALU.mask(stackAddressSize))
    default:  // iret
      if !isRealMode { throw Fault.generalProtection() }
      let (ip, sp1) = try popValue(size: size, from: stackPointer())
      let (cs, sp2) = try popValue(size: size, from: sp1)
      let (flags, sp3) = try popValue(size: size, from: sp2)
      try farBranch(selector: cs, offset: ip, size: size)
      setStackPointer(sp3)
      loadFlags(flags, size: size)
    }
  }

  /// One iteration of a string instruction. Returns true when the instruction repeats (RIP stays).
  func stringIteration(_ ins: DecodedInstruction) throws(Fault) -> Bool {
    if let repeats = try bulkString(ins) { return repeats }
    if model != .i80286 { return try stringIterationBody(ins) }
    do throws(Fault) {
      return try stringIterationBody(ins)
    } catch {
      // The 80286 has already counted the faulting REP iteration in CX.
      let a = Int(ins.addressSize)
      if case .exception = error, ins.prefixes.contains(.rep) || ins.prefixes.contains(.repne), reg(1, a) != 0 {
        setReg(1, a, (reg(1, a) &- 1) & ALU.mask(a))
      }
      throw error
    }
  }

  func stringIterationBody(_ ins: DecodedInstruction) throws(Fault) -> Bool {
    let a = Int(ins.addressSize)
    let am = ALU.mask(a)
    let repeated = ins.prefixes.contains(.rep) || ins.prefixes.contains(.repne)
    if repeated && reg(1, a) == 0 { return false }
    let size = Int(ins.operandSize)
    let delta = flag(Flags.df) ? UInt64(bitPattern: Int64(-size)) : UInt64(size)
    let si = reg(6, a)
    let di = reg(7, a)
    let seg = Int(ins.segment)
    var newSI = si
    var newDI = di
    switch ins.operation {
    case .movs:
      let v = try stringRead(seg: seg, index: 6, offset: si, size: size, delta: delta, mask: am)
      do throws(Fault) {
        try stringWrite(offset: di, size: size, value: v, delta: delta, mask: am)
      } catch {
        // The 80286 has already advanced SI when the write to ES:DI faults.
        if model == .i80286 { setReg(6, a, (si &+ delta) & am) }
        throw error
      }
      newSI = (si &+ delta) & am
      newDI = (di &+ delta) & am
    case .stos:
      try stringWrite(offset: di, size: size, value: reg(0, size), delta: delta, mask: am)
      newDI = (di &+ delta) & am
    case .lods:
      let v = try stringRead(seg: seg, index: 6, offset: si, size: size, delta: delta, mask: am)
      setReg(0, size, v)
      newSI = (si &+ delta) & am
    case .scas:
      let v = try stringRead(seg: 0, index: 7, offset: di, size: size, delta: delta, mask: am)
      setArithmeticFlags(ALU.sub(reg(0, size), v, borrow: 0, size).1)
      newDI = (di &+ delta) & am
    case .cmps:
      // The 80286 reads ES:DI before DS:SI (visible when both fault).
      var x: UInt64 = 0
      var y: UInt64 = 0
      if model == .i80286 {
        y = try stringRead(seg: 0, index: 7, offset: di, size: size, delta: delta, mask: am)
        x = try stringRead(seg: seg, index: 6, offset: si, size: size, delta: delta, mask: am)
      } else {
        x = try stringRead(seg: seg, index: 6, offset: si, size: size, delta: delta, mask: am)
        y = try stringRead(seg: 0, index: 7, offset: di, size: size, delta: delta, mask: am)
      }
      setArithmeticFlags(ALU.sub(x, y, borrow: 0, size).1)
      newSI = (si &+ delta) & am
      newDI = (di &+ delta) & am
    case .ins:
      try requireIOPermission(port: UInt16(truncatingIfNeeded: state.gpr(2)), size: size)
      do throws(Fault) {
        try checkWrite(seg: 0, offset: di, size: size)
      } catch {
        if model == .i80286 { setReg(7, a, (di &+ delta) & am) }
        throw error
      }
      let v = try replayedRead(.portIn(port: UInt16(truncatingIfNeeded: state.gpr(2)), size: size))
      try stringWrite(offset: di, size: size, value: v, delta: delta, mask: am)
      newDI = (di &+ delta) & am
    default:  // outs
      try requireIOPermission(port: UInt16(truncatingIfNeeded: state.gpr(2)), size: size)
      let v = try stringRead(seg: seg, index: 6, offset: si, size: size, delta: delta, mask: am)
      try replayedWrite(.portOut(port: UInt16(truncatingIfNeeded: state.gpr(2)), size: size, value: v))
      newSI = (si &+ delta) & am
    }
    setReg(6, a, newSI)
    setReg(7, a, newDI)
    guard repeated else { return false }
    let count = (reg(1, a) &- 1) & am
    setReg(1, a, count)
    if count == 0 { return false }
    if ins.operation == .cmps || ins.operation == .scas {
      let zf = flag(Flags.zf)
      if ins.prefixes.contains(.rep) ? !zf : zf { return false }
    }
    return true
  }

  /// A string-instruction read; the 80286 advances the index register even when the access faults.
  func stringRead(seg: Int, index: Int, offset: UInt64, size: Int, delta: UInt64, mask: UInt64) throws(Fault) -> UInt64
  {
    do throws(Fault) {
      return try read(seg: seg, offset: offset, size: size)
    } catch {
      if model == .i80286, case .exception = error {
        state.setGPR(index, (state.gpr(index) & ~mask) | ((offset &+ delta) & mask))
      }
      throw error
    }
  }

  /// A string-instruction write to ES:DI (same 80286 quirk as `stringRead`).
  func stringWrite(offset: UInt64, size: Int, value: UInt64, delta: UInt64, mask: UInt64) throws(Fault) {
    do throws(Fault) {
      try write(seg: 0, offset: offset, size: size, value: value)
    } catch {
      if model == .i80286, case .exception = error {
        state.setGPR(7, (state.gpr(7) & ~mask) | ((offset &+ delta) & mask))
      }
      throw error
    }
  }

  /// REP MOVS/STOS in 64-bit mode with DF = 0: runs the iterations that stay within one page of
  /// RAM on each side in one go (element by element, so overlapping copies behave as on hardware).
  /// The state after it is exactly that after those iterations. Returns nil when not applicable.
  func bulkString(_ ins: DecodedInstruction) throws(Fault) -> Bool? {
    // Not while single-stepping or watching data: both need each iteration on its own.
    guard ins.operation == .movs || ins.operation == .stos, ins.prefixes.contains(.rep),
      ins.addressSize == 8, state.codeMode == .bits64, !flag(Flags.df), !flag(Flags.tf), dataBreakpoints == 0
    else { return nil }
    let count = state.gpr(1)
    if count < 2 { return nil }
    let size = UInt64(ins.operandSize)
    let dst = state.gpr(7)
    let src = state.gpr(6)
    let srcLinear = (ins.segment >= 4 ? state.segmentBase(Int(ins.segment)) : 0) &+ src
    guard isCanonical(dst), dst & (size - 1) == 0 || size == 1 else { return nil }
    var room = (0x1000 - (dst & 0xFFF)) / size
    if ins.operation == .movs {
      guard isCanonical(srcLinear) else { return nil }
      room = min(room, (0x1000 - (srcLinear & 0xFFF)) / size)
    }
    let n = min(count, room)
    if n < 2 { return nil }
    guard let d = hostPage(try translate(dst, write: true), write: true) else { return nil }
    if ins.operation == .movs {
      guard let sp = hostPage(try translate(srcLinear, write: false), write: false) else { return nil }
      // A forward byte copy gives the element-by-element result unless the destination starts
      // less than one element after the source (then each element re-reads part of the last one).
      if d > sp && d - sp < Int(size) { return nil }
      let bytes = Int(n * size)
      for k in 0..<bytes {
        d.storeBytes(of: sp.load(fromByteOffset: k, as: UInt8.self), toByteOffset: k, as: UInt8.self)
      }
      state.setGPR(6, src &+ n * size)
    } else {
      let v = state.gpr(0)
      for k in 0..<Int(n) {
        switch size {
        case 1: d.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: k, as: UInt8.self)
        case 2: d.storeBytes(of: UInt16(truncatingIfNeeded: v), toByteOffset: k * 2, as: UInt16.self)
        case 4: d.storeBytes(of: UInt32(truncatingIfNeeded: v), toByteOffset: k * 4, as: UInt32.self)
        default: d.storeBytes(of: v, toByteOffset: k * 8, as: UInt64.self)
        }
      }
    }
    state.setGPR(7, dst &+ n * size)
    state.setGPR(1, count - n)
    return count - n != 0
  }
}

/// String instructions (MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS) with and without REP.
extension CPU {
  /// One iteration of a string instruction. Returns true when the instruction repeats (RIP stays).
  func stringIteration(_ ins: inout DecodedInstruction) throws(Fault) -> Bool {
    if let repeats = try bulkString(ins) { return repeats }
    return try stringIterationBody(ins)
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
    // 80286 only: how many times the chip has already decremented CX of a REP instruction when the
    // access about to be made faults (SingleStep 80286 vectors, word accesses at offset FFFFh).
    var countedBeforeFault = 1
    do throws(Fault) {
      switch ins.operation {
      case .movs:
        let v = try stringRead(seg: seg, index: 6, offset: si, size: size, delta: delta, mask: am)
        countedBeforeFault = 2
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
        countedBeforeFault = 2
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
        var x: UInt64 = 0
        var y: UInt64 = 0
        newSI = (si &+ delta) & am
        newDI = (di &+ delta) & am
        if model == .i80286 {
          // The 80286 reads ES:DI first, before counting the iteration in CX, and has advanced DI
          // when the read of DS:SI faults.
          countedBeforeFault = 0
          y = try stringRead(seg: 0, index: 7, offset: di, size: size, delta: delta, mask: am)
          setReg(7, a, newDI)
          countedBeforeFault = 1
          x = try stringRead(seg: seg, index: 6, offset: si, size: size, delta: delta, mask: am)
        } else if system.vendor == .amd && !(size == 1 && ins.prefixes.contains(.rep)) {
          // AMD reads ES:DI first too (limit check and page walk), so when both operands fault the
          // fault is the destination's; REPE CMPSB alone reads DS:SI first. Measured on a family
          // 19h EPYC by the compatibility-mode difftest (a 16-bit GS:SI past its limit with ES:DI
          // not present gives #PF) and in 64-bit code with both operands unmapped (CR2).
          y = try stringRead(seg: 0, index: 7, offset: di, size: size, delta: delta, mask: am)
          x = try stringRead(seg: seg, index: 6, offset: si, size: size, delta: delta, mask: am)
        } else {
          x = try stringRead(seg: seg, index: 6, offset: si, size: size, delta: delta, mask: am)
          y = try stringRead(seg: 0, index: 7, offset: di, size: size, delta: delta, mask: am)
        }
        setArithmeticFlags(ALU.sub(x, y, borrow: 0, size).1)
      case .ins:
        try requireIOPermission(port: UInt16(truncatingIfNeeded: state.gpr(2)), size: size)
        countedBeforeFault = 2
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
    } catch {
      // The 80286 has already counted the faulting REP iteration in CX: once when a read faults,
      // twice when a write faults (the next iteration's count is under way), not at all for the
      // first read of CMPS. No vector covers CX = 1 with a faulting write; the count stops at 0.
      if model == .i80286, repeated, case .exception = error {
        let count = reg(1, a)
        setReg(1, a, count &- min(count, UInt64(countedBeforeFault)))
      }
      throw error
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
      if d + bytes <= sp || sp + bytes <= d {
        d.copyMemory(from: sp, byteCount: bytes)  // apart: one memcpy
      } else {
        for k in 0..<bytes {
          d.storeBytes(of: sp.load(fromByteOffset: k, as: UInt8.self), toByteOffset: k, as: UInt8.self)
        }
      }
      state.setGPR(6, src &+ n * size)
    } else {
      let v = state.gpr(0)
      let element = size == 8 ? v : v & ((1 << (8 * size)) - 1)
      let byte = UInt8(truncatingIfNeeded: v)
      // Every byte of the element the same (zeroing, the common case): one memset.
      if element == UInt64(byte) &* (size == 8 ? 0x0101_0101_0101_0101 : (1 << (8 * size)) / 0xFF) {
        d.initializeMemory(as: UInt8.self, repeating: byte, count: Int(n * size))
      } else {
        // One loop per width, each simple enough for the compiler to vectorize.
        switch size {
        case 2:
          for k in 0..<Int(n) { d.storeBytes(of: UInt16(truncatingIfNeeded: v), toByteOffset: k * 2, as: UInt16.self) }
        case 4:
          for k in 0..<Int(n) { d.storeBytes(of: UInt32(truncatingIfNeeded: v), toByteOffset: k * 4, as: UInt32.self) }
        default:
          for k in 0..<Int(n) { d.storeBytes(of: v, toByteOffset: k * 8, as: UInt64.self) }
        }
      }
    }
    state.setGPR(7, dst &+ n * size)
    state.setGPR(1, count - n)
    return count - n != 0
  }
}

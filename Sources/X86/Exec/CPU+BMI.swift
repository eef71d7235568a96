/// BMI1/BMI2 semantics (VEX-encoded general-purpose instructions).
extension CPU {
  func bitManipulation(_ ins: DecodedInstruction, ea: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    let m = ALU.mask(size)
    let bits = UInt64(size * 8)
    let o0 = ins.operands.0
    let a = try readOperand(ins, ins.operands.1, ea)
    let b = ins.operandCount > 2 ? try readOperand(ins, ins.operands.2, ea) : 0
    var f = state.rflags & ~Flags.arithmetic
    func szFlags(_ r: UInt64) {
      if r & m == 0 { f |= Flags.zf }
      if r & ALU.sign(size) != 0 { f |= Flags.sf }
    }
    switch ins.operation {
    case .andn:
      let r = ~a & b & m
      try writeOperand(ins, o0, ea, r)
      szFlags(r)
    case .bextr:
      let start = b & 0xFF
      let length = (b >> 8) & 0xFF
      var r = start >= bits ? 0 : a >> start
      if length < 64 { r &= (1 << length) &- 1 }
      r &= m
      try writeOperand(ins, o0, ea, r)
      if r == 0 { f |= Flags.zf }
    case .blsi, .blsmsk, .blsr:
      let r: UInt64
      switch ins.operation {
      case .blsi: r = (0 &- a) & a & m
      case .blsmsk: r = (a ^ (a &- 1)) & m
      default: r = (a & (a &- 1)) & m
      }
      try writeOperand(ins, o0, ea, r)
      szFlags(r)
      if ins.operation == .blsmsk { f &= ~Flags.zf }
      let cf = ins.operation == .blsi ? a != 0 : a == 0
      if cf { f |= Flags.cf }
    case .bzhi:
      let n = b & 0xFF
      let r = n < bits ? a & ((1 << n) &- 1) : a
      try writeOperand(ins, o0, ea, r & m)
      szFlags(r)
      if n > bits - 1 { f |= Flags.cf }
    case .pdep, .pext:
      // operands: dest, vvvv (source), r/m (mask)
      let source = a
      let mask = b & m
      var r: UInt64 = 0
      var k: UInt64 = 0
      for i in 0..<bits where (mask >> i) & 1 != 0 {
        if ins.operation == .pdep {
          r |= ((source >> k) & 1) << i
        } else {
          r |= ((source >> i) & 1) << k
        }
        k += 1
      }
      try writeOperand(ins, o0, ea, r)
      return
    case .mulx:
      // dest(hi) = reg, vvvv = lo, r/m = source; implicit RDX/EDX.
      let (hi, lo) = reg(2, size).multipliedFullWidth(by: b)
      let high = size == 8 ? hi : (lo >> 32) & m
      let low = lo & m
      try writeOperand(ins, ins.operands.1, ea, low)
      try writeOperand(ins, o0, ea, high)
      return
    case .rorx:
      let n = ins.immediate & (bits - 1)
      let r = n == 0 ? a : ((a >> n) | (a << (bits - n))) & m
      try writeOperand(ins, o0, ea, r)
      return
    default:  // sarx, shlx, shrx: dest, r/m, count(vvvv)
      let n = b & (bits - 1)
      let r: UInt64
      switch ins.operation {
      case .shlx: r = (a << n) & m
      case .shrx: r = a >> n
      default: r = UInt64(bitPattern: ALU.signExtend(a, size) >> Int64(n)) & m
      }
      try writeOperand(ins, o0, ea, r)
      return
    }
    state.rflags = f
  }
}

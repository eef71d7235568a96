/// Register access, effective addresses, operand reads and writes, and the fast memory paths.
extension CPU {
  @inline(__always) func reg(_ r: Int, _ size: Int) -> UInt64 {
    stateRaw.load(fromByteOffset: r &* 8, as: UInt64.self) & ALU.mask(size)
  }

  /// Writes a general register with x86-64 semantics (32-bit writes zero-extend).
  @inline(__always) func setReg(_ r: Int, _ size: Int, _ v: UInt64) {
    let old = stateRaw.load(fromByteOffset: r &* 8, as: UInt64.self)
    let value: UInt64
    switch size {
    case 8: value = v
    case 4: value = v & 0xFFFF_FFFF
    case 2: value = (old & ~0xFFFF) | (v & 0xFFFF)
    default: value = (old & ~0xFF) | (v & 0xFF)
    }
    stateRaw.storeBytes(of: value, toByteOffset: r &* 8, as: UInt64.self)
  }

  /// RFLAGS, read straight from the state page.
  @inline(__always) var flags: UInt64 {
    get { stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self) }
    set { stateRaw.storeBytes(of: newValue, toByteOffset: CPUStateLayout.rflags, as: UInt64.self) }
  }

  @inline(__always) func setArithmeticFlags(_ f: UInt64) {
    let old = stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self)
    stateRaw.storeBytes(of: (old & ~Flags.arithmetic) | f, toByteOffset: CPUStateLayout.rflags, as: UInt64.self)
  }

  @inline(__always) func flag(_ f: UInt64) -> Bool {
    stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self) & f != 0
  }

  @inline(__always) func setFlag(_ f: UInt64, _ on: Bool) {
    if on { flags |= f } else { flags &= ~f }
  }

  // MARK: Effective addresses and operands

  /// Whether a 64-bit linear address is canonical (bits 63:47 all equal).
  @inline(__always) func isCanonical(_ address: UInt64) -> Bool {
    UInt64(bitPattern: (Int64(bitPattern: address) >> 47) &+ 1) <= 1
  }

  /// The offset (effective address) of the memory operand, masked to the address size.
  @inline(__always) func effectiveAddress(_ ins: DecodedInstruction, nextRIP: UInt64) -> UInt64 {
    var ea = UInt64(bitPattern: ins.displacement)
    if ins.base == DecodedInstruction.ripBase {
      ea = ea &+ nextRIP
    } else if ins.base != DecodedInstruction.noRegister {
      ea = ea &+ state.gpr(Int(ins.base))
    }
    if ins.index != DecodedInstruction.noRegister {
      ea = ea &+ state.gpr(Int(ins.index)) &* UInt64(ins.scale)
    }
    switch ins.addressSize {
    case 2: return ea & 0xFFFF
    case 4: return ea & 0xFFFF_FFFF
    default: return ea
    }
  }

  @inline(__always)
  func readOperand(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64) throws(Fault) -> UInt64 {
    if o.kind == .gpr { return reg(Int(o.reg), Int(o.size)) }
    if o.kind == .immediate { return (o.reg == 1 ? ins.immediate2 : ins.immediate) & ALU.mask(Int(o.size)) }
    return try readOperandSlow(segment: Int(ins.segment), o, ea)
  }

  /// `readOperand` in code specialized on an operand size (`size` a constant there): an operand of
  /// that size in a register or an immediate is read without looking at its size again; every
  /// other one goes through `readOperand`. The same value either way.
  @_transparent
  func readOperand(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64, size: Int) throws(Fault) -> UInt64 {
    if Int(o.size) == size {
      if o.kind == .gpr { return reg(Int(o.reg), size) }
      if o.kind == .immediate { return (o.reg == 1 ? ins.immediate2 : ins.immediate) & ALU.mask(size) }
    }
    return try readOperand(ins, o, ea)
  }

  /// `readOperandForUpdate` specialized on an operand size, as `readOperand(_:_:_:size:)`.
  @_transparent
  func readOperandForUpdate(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64, size: Int) throws(Fault)
    -> UInt64
  {
    if o.kind == .gpr && Int(o.size) == size { return reg(Int(o.reg), size) }
    return try readOperandForUpdate(ins, o, ea)
  }

  /// `writeOperand` specialized on an operand size, as `readOperand(_:_:_:size:)`.
  @_transparent
  func writeOperand(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64, _ v: UInt64, size: Int) throws(Fault) {
    if o.kind == .gpr && Int(o.size) == size {
      setReg(Int(o.reg), size, v)
      return
    }
    try writeOperand(ins, o, ea, v)
  }

  /// `readOperand` for the operand kinds it does not handle inline. It takes the instruction's
  /// segment, not the instruction: a call passing the instruction by value made the callers copy
  /// it (57 bytes) on every path, the register-only ones included.
  func readOperandSlow(segment: Int, _ o: Operand, _ ea: UInt64) throws(Fault) -> UInt64 {
    let size = Int(o.size)
    switch o.kind {
    case .gpr: return reg(Int(o.reg), size)
    case .gprHigh8: return (state.gpr(Int(o.reg)) >> 8) & 0xFF
    case .memory:
      if let v = fastRead64(seg: segment, offset: ea, size: size) { return v }
      return try read(seg: segment, offset: ea, size: size)
    case .segment: return UInt64(state.segmentSelector(Int(o.reg)))
    default: throw Fault.invalidOpcode
    }
  }

  @inline(__always)
  func writeOperand(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64, _ v: UInt64) throws(Fault) {
    if o.kind == .gpr {
      setReg(Int(o.reg), Int(o.size), v)
      return
    }
    try writeOperandSlow(segment: Int(ins.segment), o, ea, v)
  }

  /// `writeOperand` for the operand kinds it does not handle inline (the segment, not the
  /// instruction, as in `readOperandSlow`).
  func writeOperandSlow(segment: Int, _ o: Operand, _ ea: UInt64, _ v: UInt64) throws(Fault) {
    let size = Int(o.size)
    switch o.kind {
    case .gpr: setReg(Int(o.reg), size, v)
    case .gprHigh8:
      let r = Int(o.reg)
      state.setGPR(r, (state.gpr(r) & ~0xFF00) | ((v & 0xFF) << 8))
    case .memory:
      if lockedInstructionActive && lockedWrite(v) { return }
      if fastWrite64(seg: segment, offset: ea, size: size, value: v) { return }
      try write(seg: segment, offset: ea, size: size, value: v)
    default: throw Fault.invalidOpcode
    }
  }

  // MARK: Fast memory paths (TLB hit, within one page, no check left to make)

  /// The host address of a 64-bit-mode access that hits the TLB and stays in one page, else nil.
  @inline(__always)
  func fastHostAddress(seg: Int, offset: UInt64, size: Int, write: Bool) -> UnsafeMutableRawPointer? {
    guard stateRaw.load(fromByteOffset: CPUStateLayout.codeMode, as: UInt64.self) == 64 else { return nil }
    return fastHostAddress64(seg: seg, offset: offset, size: size, write: write)
  }

  /// `fastHostAddress` for code known to run in 64-bit mode.
  @inline(__always)
  func fastHostAddress64(seg: Int, offset: UInt64, size: Int, write: Bool) -> UnsafeMutableRawPointer? {
    let lin = (seg >= 4 ? state.segmentBase(seg) : 0) &+ offset
    guard isCanonical(lin) else { return nil }
    return fastHostPointer(linear: lin, size: size, write: write)
  }

  /// The host address of an access through segment `seg` (0-5) outside 64-bit mode, `offset` below
  /// 4 GiB (an effective address at its address size, or a stack pointer), when the access needs
  /// no check beyond those made here and hits the TLB within one page; else nil (the general path
  /// then runs the instruction and raises whatever is due). The type checks were resolved when the
  /// segment was loaded (`SegmentAccess`; real and virtual-8086 mode have none); what is left per
  /// access is the limit, one comparison (the 8086, which has no limits, wraps offsets at 64 KiB
  /// instead: `legacyOffsetLimit` keeps such accesses on the general path).
  @inline(__always)
  func fastHostAddressLegacy(seg: Int, offset: UInt64, size: Int, write: Bool) -> UnsafeMutableRawPointer? {
    let o = CPUStateLayout.segments &+ seg &* CPUStateLayout.segmentStride
    let limit = Swift.min(stateRaw.load(fromByteOffset: o &+ 16, as: UInt64.self), legacyOffsetLimit)
    guard offset &+ UInt64(size &- 1) <= limit else { return nil }
    let need = write ? SegmentAccess.write : SegmentAccess.read
    if stateRaw.load(fromByteOffset: CPUStateLayout.segmentAccess &+ seg, as: UInt8.self) & need == 0 {
      // Protected mode checks the type; real and virtual-8086 mode do not.
      guard
        stateRaw.load(fromByteOffset: CPUStateLayout.cr0, as: UInt64.self) & 1 == 0
          || stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self) & Flags.vm != 0
      else { return nil }
    }
    let lin = (stateRaw.load(fromByteOffset: o &+ 8, as: UInt64.self) &+ offset) & 0xFFFF_FFFF
    return fastHostPointer(linear: lin, size: size, write: write)
  }

  /// The host address of `size` bytes at linear `lin` (segmentation done) when they stay in one
  /// page, hit the TLB (or paging is off) and the host-page cache, and owe no #AC; else nil.
  @inline(__always)
  func fastHostPointer(linear lin: UInt64, size: Int, write: Bool) -> UnsafeMutableRawPointer? {
    guard (lin & 0xFFF) &+ UInt64(size) <= 0x1000 else { return nil }
    // A misaligned access may owe an #AC: the slow path decides.
    if lin & UInt64(size &- 1) != 0 && alignmentCheckingActive { return nil }
    // Paged reads take the host pointer straight from the paging TLB (one lookup instead of two).
    // Writes keep the physical step: the write side of the host-page cache keeps pages holding decoded
    // code out of the fast paths. Armed data breakpoints need every access on the slow path.
    if !write && pagingActive && dataBreakpoints == 0 {
      let user = stateRaw.load(fromByteOffset: CPUStateLayout.cpl, as: UInt64.self) == 3
      let entry = pagingTLB + SoftTLB.slot(lin, kind: .read, user: user)
      guard entry.pointee.ramTag == lin & ~0xFFF else { return nil }
      return UnsafeMutableRawPointer(bitPattern: entry.pointee.addend &+ UInt(truncatingIfNeeded: lin))
    }
    guard let phys = quickTranslate(lin, kind: write ? .write : .read) else { return nil }
    let page = phys >> 12
    let i = Int(page & UInt64(CPU.hostPageSlots - 1))
    if write {
      guard hostWritePage[i] == page, let p = hostWritePointer[i], !sharedCodeStamp(page) else { return nil }
      return p + Int(phys & 0xFFF)
    }
    guard hostReadPage[i] == page, let p = hostReadPointer[i] else { return nil }
    return p + Int(phys & 0xFFF)
  }

  /// Reads the destination of a read-modify-write instruction (ADD [m], NEG [m], XADD ...). The
  /// access is checked as a write before anything is read, as hardware does: a fault on it reports
  /// W=1 in the #PF error code even though the read comes first.
  @inline(__always)
  func readOperandForUpdate(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64) throws(Fault) -> UInt64 {
    if o.kind == .gpr { return reg(Int(o.reg), Int(o.size)) }
    return try readOperandForUpdateSlow(segment: Int(ins.segment), o, ea)
  }

  /// `readOperandForUpdate` for the operand kinds it does not handle inline (the segment, not the
  /// instruction, as in `readOperandSlow`; a destination is never an immediate).
  func readOperandForUpdateSlow(segment: Int, _ o: Operand, _ ea: UInt64) throws(Fault) -> UInt64 {
    guard o.kind == .memory else { return try readOperandSlow(segment: segment, o, ea) }
    let size = Int(o.size)
    if lockedInstructionActive { return try lockedRead(seg: segment, offset: ea, size: size) }
    if let v = fastRead64(seg: segment, offset: ea, size: size, write: true) { return v }
    try probeWrite(seg: segment, offset: ea, size: size)
    return try read(seg: segment, offset: ea, size: size)
  }

  /// Checks that `size` bytes at segment:offset can be written (segment limits, paging, and in the
  /// flat-user oracle mode, presence), without writing.
  func probeWrite(seg: Int, offset: UInt64, size: Int) throws(Fault) {
    let lin = try linearAddress(seg: seg, offset: offset, size: size, write: true)
    let first = try translate(lin, write: true)
    // A split access faults on the second page at its first byte (CR2).
    let last =
      (lin & 0xFFF) + UInt64(size) <= 0x1000 ? first : try translate((lin &+ UInt64(size - 1)) & ~0xFFF, write: true)
    if flatUser {
      if hostPage(first, write: true) == nil { throw flatUserPageFault(first, write: true) }
      if hostPage(last, write: true) == nil { throw flatUserPageFault(last, write: true) }
    }
  }

  @inline(__always) func fastRead64(seg: Int, offset: UInt64, size: Int, write: Bool = false) -> UInt64? {
    guard let p = fastHostAddress(seg: seg, offset: offset, size: size, write: write) else { return nil }
    switch size {
    case 1: return UInt64(p.load(as: UInt8.self))
    case 2: return UInt64(p.loadUnaligned(as: UInt16.self))
    case 4: return UInt64(p.loadUnaligned(as: UInt32.self))
    case 8: return p.loadUnaligned(as: UInt64.self)
    default: return nil
    }
  }

  @inline(__always) func fastWrite64(seg: Int, offset: UInt64, size: Int, value: UInt64) -> Bool {
    guard let p = fastHostAddress(seg: seg, offset: offset, size: size, write: true) else { return false }
    switch size {
    case 1: p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
    case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: value), as: UInt16.self)
    case 4: p.storeBytes(of: UInt32(truncatingIfNeeded: value), as: UInt32.self)
    case 8: p.storeBytes(of: value, as: UInt64.self)
    default: return false
    }
    return true
  }
}

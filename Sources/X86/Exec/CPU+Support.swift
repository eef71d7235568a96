/// Operand access, stack, flags images, segment loads and exception delivery.
extension CPU {
  // MARK: Registers

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

  @inline(__always) func setArithmeticFlags(_ f: UInt64) {
    let old = stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self)
    stateRaw.storeBytes(of: (old & ~Flags.arithmetic) | f, toByteOffset: CPUStateLayout.rflags, as: UInt64.self)
  }

  @inline(__always) func flag(_ f: UInt64) -> Bool {
    stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self) & f != 0
  }

  @inline(__always) func setFlag(_ f: UInt64, _ on: Bool) {
    if on { state.rflags |= f } else { state.rflags &= ~f }
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
    return try readOperandSlow(ins, o, ea)
  }

  func readOperandSlow(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64) throws(Fault) -> UInt64 {
    let size = Int(o.size)
    switch o.kind {
    case .gpr: return reg(Int(o.reg), size)
    case .gprHigh8: return (state.gpr(Int(o.reg)) >> 8) & 0xFF
    case .memory:
      if let v = fastRead64(seg: Int(ins.segment), offset: ea, size: size) { return v }
      return try read(seg: Int(ins.segment), offset: ea, size: size)
    case .immediate: return (o.reg == 1 ? ins.immediate2 : ins.immediate) & ALU.mask(size)
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
    try writeOperandSlow(ins, o, ea, v)
  }

  func writeOperandSlow(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64, _ v: UInt64) throws(Fault) {
    let size = Int(o.size)
    switch o.kind {
    case .gpr: setReg(Int(o.reg), size, v)
    case .gprHigh8:
      let r = Int(o.reg)
      state.setGPR(r, (state.gpr(r) & ~0xFF00) | ((v & 0xFF) << 8))
    case .memory:
      if fastWrite64(seg: Int(ins.segment), offset: ea, size: size, value: v) { return }
      try write(seg: Int(ins.segment), offset: ea, size: size, value: v)
    default: throw Fault.invalidOpcode
    }
  }

  // MARK: Fast memory paths (64-bit mode, TLB hit, within one page)

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
    guard isCanonical(lin), (lin & 0xFFF) &+ UInt64(size) <= 0x1000 else {
      return nil
    }
    // A misaligned access may owe an #AC: the slow path decides.
    if lin & UInt64(size &- 1) != 0 && alignmentCheckingActive { return nil }
    // Paged reads take the host pointer straight from the paging TLB (one lookup instead of two).
    // Writes keep the physical step: the core's write TLB is what keeps pages holding decoded
    // code out of the fast paths. Armed data breakpoints need every access on the slow path.
    if !write && pagingActive && dataBreakpoints == 0 {
      let user = stateRaw.load(fromByteOffset: CPUStateLayout.cpl, as: UInt64.self) == 3
      let entry = pagingTLB + SoftTLB.slot(lin, kind: .read, user: user)
      guard entry.pointee.tag == lin & ~0xFFF, let host = entry.pointee.host else { return nil }
      return host + Int(lin & 0xFFF)
    }
    guard let phys = quickTranslate(lin, kind: write ? .write : .read) else { return nil }
    let page = phys >> 12
    let i = Int(page & UInt64(CPU.tlbSize - 1))
    if write {
      guard tlbWriteTag[i] == page, let p = tlbWritePtr[i] else { return nil }
      return p + Int(phys & 0xFFF)
    }
    guard tlbReadTag[i] == page, let p = tlbReadPtr[i] else { return nil }
    return p + Int(phys & 0xFFF)
  }

  /// Reads the destination of a read-modify-write instruction (ADD [m], NEG [m], XADD ...). The
  /// access is checked as a write before anything is read, as hardware does: a fault on it reports
  /// W=1 in the #PF error code even though the read comes first.
  @inline(__always)
  func readOperandForUpdate(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64) throws(Fault) -> UInt64 {
    if o.kind == .gpr { return reg(Int(o.reg), Int(o.size)) }
    return try readOperandForUpdateSlow(ins, o, ea)
  }

  func readOperandForUpdateSlow(_ ins: DecodedInstruction, _ o: Operand, _ ea: UInt64) throws(Fault) -> UInt64 {
    guard o.kind == .memory else { return try readOperandSlow(ins, o, ea) }
    let size = Int(o.size)
    if let v = fastRead64(seg: Int(ins.segment), offset: ea, size: size, write: true) { return v }
    try probeWrite(seg: Int(ins.segment), offset: ea, size: size)
    return try read(seg: Int(ins.segment), offset: ea, size: size)
  }

  /// Checks that `size` bytes at segment:offset can be written (segment limits, paging, and in the
  /// flat-user oracle mode, presence), without writing.
  func probeWrite(seg: Int, offset: UInt64, size: Int) throws(Fault) {
    let lin = try linearAddress(seg: seg, offset: offset, size: size, write: true)
    let first = try translate(lin, write: true)
    let last = (lin & 0xFFF) + UInt64(size) <= 0x1000 ? first : try translate(lin &+ UInt64(size - 1), write: true)
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

  // MARK: Stack

  /// Stack address size in bytes: 8 in 64-bit mode, else SS.B ? 4 : 2.
  @inline(__always) var stackAddressSize: Int {
    if state.codeMode == .bits64 { return 8 }
    if isRealMode && model != .host64 && model != .i80386 { return 2 }
    return state.segment(.ss).attributes & 0x4000 != 0 ? 4 : 2
  }

  @inline(__always) func stackPointer() -> UInt64 { state.gpr(4) & ALU.mask(stackAddressSize) }

  @inline(__always) func setStackPointer(_ v: UInt64) { setReg(4, stackAddressSize, v) }

  /// Pushes without committing RSP; returns the new stack pointer.
  func pushValue(_ v: UInt64, size: Int, from sp: UInt64) throws(Fault) -> UInt64 {
    let m = ALU.mask(stackAddressSize)
    let nsp = (sp &- UInt64(size)) & m
    try write(seg: 2, offset: nsp, size: size, value: v)
    return nsp
  }

  func push(_ v: UInt64, size: Int) throws(Fault) {
    setStackPointer(try pushValue(v, size: size, from: stackPointer()))
  }

  func popValue(size: Int, from sp: UInt64) throws(Fault) -> (UInt64, UInt64) {
    let m = ALU.mask(stackAddressSize)
    let v = try read(seg: 2, offset: sp, size: size)
    return (v, (sp &+ UInt64(size)) & m)
  }

  func pop(size: Int) throws(Fault) -> UInt64 {
    let (v, nsp) = try popValue(size: size, from: stackPointer())
    setStackPointer(nsp)
    return v
  }

  // MARK: Flags images

  /// Applies the model's fixed FLAGS bits (8086: 12-15 set; 286 real mode: 12-15 clear; bits 1, 3, 5).
  public func normalizeFlags(_ f: UInt64) -> UInt64 {
    var v = (f | Flags.reserved1) & ~(UInt64(1) << 3 | UInt64(1) << 5)
    switch model {
    case .i8086: v = (v | 0xF000) & 0xFFFF
    case .i80286: v = isRealMode ? v & 0x0FFF : v & 0x7FFF
    case .i80386: v &= 0x3_7FFF
    case .host64: v &= 0x3F_7FFF
    }
    return v
  }

  /// The FLAGS image PUSHF/INT push (VM and RF read as 0).
  func flagsImage() -> UInt64 { normalizeFlags(state.rflags) & ~(Flags.vm | Flags.rf) }

  /// POPF/IRET: writes FLAGS respecting CPL/IOPL and the operand size.
  func loadFlags(_ v: UInt64, size: Int) {
    var writable: UInt64 = Flags.arithmetic | Flags.tf | Flags.df | Flags.if | Flags.iopl | Flags.nt
    if model == .host64 { writable |= Flags.ac | Flags.id }
    if !isRealMode {
      let iopl = Int((state.rflags >> 12) & 3)
      if state.cpl > 0 { writable &= ~Flags.iopl }
      if state.cpl > iopl { writable &= ~Flags.if }
    }
    if size == 2 { writable &= 0xFFFF }
    state.rflags = normalizeFlags((state.rflags & ~writable) | (v & writable))
  }

  // MARK: Segments

  /// The single segment-load point: real mode sets base = selector * 16; protected mode reads the
  /// descriptor (basic checks; full protected-mode checks come with the interpreter engine).
  func loadSegment(_ s: Int, selector: UInt16) throws(Fault) {
    guard let seg = SegmentRegister(rawValue: s) else { throw Fault.invalidOpcode }
    if isRealMode || state.rflags & Flags.vm != 0 {
      var c = state.segment(seg)
      c.selector = selector
      c.base = UInt64(selector) << 4
      state.setSegment(seg, c)
      return
    }
    if seg != .cs && model == .host64 && !flatUser {
      try system.loadSegment(seg, selector)
      return
    }
    if selector & 0xFFFC == 0 {
      if seg == .cs || (seg == .ss && (state.codeMode != .bits64 || state.cpl == 3)) {
        throw Fault.generalProtection(0)
      }
      state.setSegment(seg, SegmentCache(selector: selector, base: 0, limit: 0, attributes: 0))
      return
    }
    let table = selector & 4 != 0 ? state.segment(.ldtr).base : state.gdtr.base
    let limit = selector & 4 != 0 ? UInt64(state.segment(.ldtr).limit) : UInt64(state.gdtr.limit)
    let index = UInt64(selector & 0xFFF8)
    if index + 7 > limit { throw Fault.generalProtection(UInt32(selector & 0xFFFC)) }
    let d = try readLinear(table &+ index, size: 8)
    let attributes = UInt16(truncatingIfNeeded: (d >> 40) & 0xF0FF)
    if attributes & 0x80 == 0 {
      throw seg == .ss
        ? Fault.stackFault(UInt32(selector & 0xFFFC)) : .exception(vector: 11, errorCode: UInt32(selector & 0xFFFC))
    }
    var lim = UInt32(truncatingIfNeeded: (d & 0xFFFF) | ((d >> 32) & 0xF_0000))
    if attributes & 0x8000 != 0 { lim = lim << 12 | 0xFFF }
    let base = ((d >> 16) & 0xFF_FFFF) | ((d >> 32) & 0xFF00_0000)
    state.setSegment(seg, SegmentCache(selector: selector, base: base, limit: lim, attributes: attributes))
    if seg == .cs { updateCodeMode() }
  }

  /// Derives the code mode from CS (L with EFER.LMA: 64-bit; D: 32-bit; else 16-bit).
  public func updateCodeMode() {
    let attributes = state.segment(.cs).attributes
    if isRealMode {
      state.codeMode = .bits16
    } else if state.efer & 0x400 != 0 && attributes & 0x2000 != 0 {
      state.codeMode = .bits64
    } else {
      state.codeMode = attributes & 0x4000 != 0 ? .bits32 : .bits16
    }
  }

  // MARK: Exceptions

  /// The single exception-delivery point. Real mode: through the IVT. Other modes: reported to the
  /// embedder for now (IDT delivery comes with the interpreter engine).
  func raise(vector: UInt8, errorCode: UInt32?, nextRIP: UInt64) -> CPUEvent? {
    if vector == ExceptionVector.unimplemented { return .internalError(unimplementedDescription(errorCode)) }
    if reportExceptions || (vector < 32 && exceptionTrapBitmap & (1 << UInt32(vector)) != 0) {
      return .exception(vector: vector, errorCode: errorCode)
    }
    if !isRealMode {
      return deliverProtected(vector: vector, errorCode: errorCode, kind: .exception, returnRIP: state.rip)
    }
    let returnIP = (model == .i8086 && vector == 0) ? nextRIP : state.rip
    do throws(Fault) {
      try deliverReal(vector: vector, returnIP: returnIP)
    } catch {
      if case .event(let e) = error { return e }
      // A fault while delivering: double fault, then shutdown.
      if vector == 8 { return .tripleFault }
      return raise(vector: 8, errorCode: 0, nextRIP: nextRIP)
    }
    return nil
  }

  /// Real-mode interrupt: push FLAGS, CS, IP; clear IF/TF/AC; CS:IP from the IVT.
  func deliverReal(vector: UInt8, returnIP: UInt64) throws(Fault) {
    let entry = UInt64(vector) * 4
    if model != .i8086 && entry + 3 > UInt64(state.idtr.limit) { throw Fault.generalProtection(UInt32(entry) + 2) }
    let ip = try readLinear(state.idtr.base &+ entry, size: 2)
    let cs = try readLinear(state.idtr.base &+ entry + 2, size: 2)
    var sp = stackPointer()
    sp = try pushValue(flagsImage() & 0xFFFF, size: 2, from: sp)
    sp = try pushValue(UInt64(state.segmentSelector(1)), size: 2, from: sp)
    sp = try pushValue(returnIP & 0xFFFF, size: 2, from: sp)
    setStackPointer(sp)
    state.rflags &= ~(Flags.if | Flags.tf | Flags.ac | Flags.rf)
    try loadSegment(1, selector: UInt16(cs))
    state.rip = ip
  }
}

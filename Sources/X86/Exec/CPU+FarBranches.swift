/// Far JMP and CALL: the far-pointer operand and the transfer through a selector.
extension CPU {
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
      nmiBlocked = false
    }
  }
}

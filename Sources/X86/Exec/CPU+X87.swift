/// The x87 instructions (ESC opcodes D8-DF) this model executes, their checks, and the register
/// stack: pushes, pops, stack overflow and underflow, the exception flags and their summary.
///
/// This file: FNINIT, FLDCW, FNSTCW, FNSTSW (m16 and AX), FNCLEX, FNOP, FFREE, FINCSTP, FDECSTP,
/// FXCH, FLD m32/m64/m80/ST(i), FST/FSTP ST(i), FSTP m80, FILD m16/m32/m64, FLD1, FLDZ, FCHS, FABS
/// and WAIT. The arithmetic is in `CPU+X87Arithmetic.swift` (the transcendentals in
/// `CPU+X87Transcendental.swift`); compares, FCMOVcc, the rounded stores, FIST/FISTTP, the other
/// constants, BCD and the environment in `CPU+X87Transfer.swift` and `CPU+X87Environment.swift`.
/// Every ESC encoding is one of these; `executeX87` returns false (#UD) for none.
extension CPU {
  /// #NM with CR0.EM or CR0.TS (SDM vol. 3, "CR0"); then, for a waiting instruction, #MF when an
  /// unmasked exception is pending (FSW.ES).
  func requireX87(waiting: Bool) throws(Fault) {
    if state.cr0 & (CR0.em | CR0.ts) != 0 {
      throw Fault.exception(vector: ExceptionVector.deviceNotAvailable, errorCode: nil)
    }
    if waiting && x87StatusWord & X87Status.errorSummary != 0 { try x87PendingError() }
  }

  /// A waiting instruction meets a pending unmasked exception: #MF with CR0.NE set. With CR0.NE
  /// clear the CPU asserts FERR# and freezes before the instruction (`CPUEvent.floatingPointError`)
  /// unless IGNNE# is asserted (`ignoreNumericErrors`): then the instruction runs as if nothing
  /// were pending.
  func x87PendingError() throws(Fault) {
    if state.cr0 & CR0.ne != 0 { throw Fault.exception(vector: ExceptionVector.x87FloatingPoint, errorCode: nil) }
    if ignoreNumericErrors { return }
    throw Fault.event(.floatingPointError)
  }

  /// WAIT/FWAIT (9B): #NM when CR0.MP and CR0.TS are both set, #MF when an exception is pending.
  func executeWait() throws(Fault) {
    if state.cr0 & (CR0.mp | CR0.ts) == (CR0.mp | CR0.ts) {
      throw Fault.exception(vector: ExceptionVector.deviceNotAvailable, errorCode: nil)
    }
    if x87StatusWord & X87Status.errorSummary != 0 { try x87PendingError() }
  }

  /// Recomputes FSW.ES and FSW.B: set when an exception flag is set whose FCW mask bit is clear.
  func updateX87ErrorSummary() {
    let pending = x87StatusWord & ~x87ControlWord & X87Status.exceptions != 0
    if pending {
      // FERR# rises with ES: IGNNE# from an earlier error (cleared since) no longer holds.
      if x87StatusWord & X87Status.errorSummary == 0 { ignoreNumericErrors = false }
      x87StatusWord |= X87Status.errorSummary | X87Status.busy
    } else {
      x87StatusWord &= ~(X87Status.errorSummary | X87Status.busy)
    }
  }

  /// Raises exception flags `flags` (FSW bits); returns whether all of them are masked.
  @discardableResult
  func raiseX87(_ flags: UInt16) -> Bool {
    x87StatusWord |= flags
    updateX87ErrorSummary()
    return flags & X87Status.exceptions & ~x87ControlWord == 0
  }

  /// A stack fault: IE and SF, C1 set for overflow and clear for underflow. Returns whether IE is
  /// masked (the caller then produces the QNaN indefinite).
  func x87StackFault(overflow: Bool) -> Bool {
    x87StatusWord = overflow ? x87StatusWord | X87Status.c1 : x87StatusWord & ~X87Status.c1
    return raiseX87(X87Status.invalid | X87Status.stackFault)
  }

  /// Pushes `v`: stack overflow when the register that becomes ST(0) is not empty (masked: the
  /// indefinite is pushed; unmasked: nothing changes).
  func x87Push(_ v: X87Extended) {
    let newTop = (x87Top - 1) & 7
    var value = v
    if x87AbridgedTag & (1 << UInt8(newTop)) != 0 {
      guard x87StackFault(overflow: true) else { return }
      value = .indefinite
    } else {
      x87StatusWord &= ~X87Status.c1
    }
    x87Top = newTop
    setX87Register(physical: newTop, value)
    x87SetEmpty(0, false)
  }

  /// Pops: ST(0) empty, TOP + 1.
  func x87Pop() {
    x87SetEmpty(0, true)
    x87Top = x87Top + 1
  }

  /// ST(`i`), or nil after a stack underflow (IE/SF raised, C1 cleared).
  func x87Read(_ i: Int) -> X87Extended? {
    if x87IsEmpty(i) {
      _ = x87StackFault(overflow: false)
      return nil
    }
    return x87Register(physical: x87Physical(i))
  }

  /// ST(0) for an exact store (FST ST(i), FSTP m80), C1 cleared; after a stack underflow the
  /// indefinite when IE is masked, nil (store nothing) when it is not.
  func x87StoredTop() -> X87Extended? {
    if let top = x87Read(0) {
      x87StatusWord &= ~X87Status.c1
      return top
    }
    return x87ControlWord & X87Status.invalid != 0 ? .indefinite : nil
  }

  /// Writes ST(`i`) and marks it not empty.
  func x87Write(_ i: Int, _ v: X87Extended) {
    setX87Register(physical: x87Physical(i), v)
    x87SetEmpty(i, false)
  }

  /// Executes an ESC instruction; false when the encoding is not modelled (the caller raises #UD).
  ///
  /// Three groups, each in its own file, are tried in turn: the control and stack operations
  /// here, the arithmetic (`CPU+X87Arithmetic.swift`), and the compares, stores, constants, BCD
  /// and environment (`CPU+X87Transfer.swift`).
  func executeX87(_ ins: DecodedInstruction, ea: UInt64) throws(Fault) -> Bool {
    let reg = Int((ins.modrm >> 3) & 7)
    let rm = Int(ins.modrm & 7)
    recordX87Pointers(ins, ea: ea)
    if ins.hasMemoryOperand {
      let seg = Int(ins.segment)
      if try executeX87Memory(opcode: ins.opcode, reg: reg, seg: seg, ea: ea) { return true }
      if try executeX87ArithmeticMemory(ins, reg: reg, seg: seg, ea: ea) { return true }
      return try executeX87TransferMemory(ins, reg: reg, seg: seg, ea: ea)
    }
    if try executeX87Register(opcode: ins.opcode, reg: reg, rm: rm) { return true }
    if try executeX87ArithmeticRegister(ins, reg: reg, rm: rm) { return true }
    return try executeX87TransferRegister(ins, reg: reg, rm: rm)
  }

  /// The memory forms.
  func executeX87Memory(opcode: UInt8, reg: Int, seg: Int, ea: UInt64) throws(Fault) -> Bool {
    switch (opcode, reg) {
    case (0xD9, 5):  // FLDCW m16
      try requireX87(waiting: true)
      // Bits 6 (reserved, reads 1), 7 and 13-15 (reserved, read 0) are not kept (as on the host).
      x87ControlWord = UInt16(truncatingIfNeeded: try read(seg: seg, offset: ea, size: 2)) & 0x1F3F | 0x40
      updateX87ErrorSummary()
    case (0xD9, 7):  // FNSTCW m16
      try requireX87(waiting: false)
      try write(seg: seg, offset: ea, size: 2, value: UInt64(x87ControlWord))
    case (0xDD, 7):  // FNSTSW m16
      try requireX87(waiting: false)
      try write(seg: seg, offset: ea, size: 2, value: UInt64(x87StatusWord))
    case (0xD9, 0), (0xDD, 0):  // FLD m32, FLD m64
      try requireX87(waiting: true)
      let bits = opcode == 0xD9 ? 32 : 64
      let raw = try read(seg: seg, offset: ea, size: bits / 8)
      if x87AbridgedTag & (1 << UInt8((x87Top - 1) & 7)) != 0 {
        // Stack overflow comes first: the host reports neither DE nor an SNaN's IE then, and
        // pushes the indefinite (when IE is masked) instead of the operand.
        x87Push(.indefinite)
        return true
      }
      let (v, denormal, invalid) = X87Extended.from(raw, format: SoftFloat.Format(bits: bits))
      if invalid {
        // An unmasked invalid operand (SNaN) leaves the stack alone and clears C1 (the host).
        x87StatusWord &= ~X87Status.c1
        guard raiseX87(X87Status.invalid) else { return true }
      } else if denormal {
        // An unmasked denormal operand still loads (as on the host: TOP moves, ES is set).
        _ = raiseX87(X87Status.denormal)
      }
      x87Push(v)
    case (0xDB, 5):  // FLD m80
      try requireX87(waiting: true)
      let low = try read(seg: seg, offset: ea, size: 8)
      let high = try read(seg: seg, offset: ea &+ 8, size: 2)
      x87Push(X87Extended(significand: low, signExponent: UInt16(truncatingIfNeeded: high)))
    case (0xDB, 7):  // FSTP m80
      try requireX87(waiting: true)
      try probeWrite(seg: seg, offset: ea, size: 10)  // a #PF leaves FSW alone
      guard let v = x87StoredTop() else { return true }
      try write(seg: seg, offset: ea, size: 8, value: v.significand)
      try write(seg: seg, offset: ea &+ 8, size: 2, value: UInt64(v.signExponent))
      x87Pop()
    case (0xDF, 0), (0xDB, 0), (0xDF, 5):  // FILD m16, m32, m64
      try requireX87(waiting: true)
      let size = opcode == 0xDB ? 4 : (reg == 0 ? 2 : 8)
      let raw = try read(seg: seg, offset: ea, size: size)
      let shift = UInt64(64 - 8 * size)
      x87Push(.from(integer: Int64(bitPattern: raw << shift) >> Int64(shift)))
    default:
      return false
    }
    return true
  }

  /// The register forms.
  func executeX87Register(opcode: UInt8, reg: Int, rm: Int) throws(Fault) -> Bool {
    switch (opcode, reg) {
    case (0xDB, 4) where rm == 3:  // FNINIT
      try requireX87(waiting: false)
      x87ControlWord = 0x037F
      x87StatusWord = 0
      x87AbridgedTag = 0
      (stateRaw + CPUStateLayout.fxLegacy + 6).initializeMemory(as: UInt8.self, repeating: 0, count: 18)
    case (0xDB, 4) where rm == 2:  // FNCLEX
      try requireX87(waiting: false)
      x87StatusWord &= ~(X87Status.exceptions | X87Status.stackFault | X87Status.errorSummary | X87Status.busy)
    case (0xDF, 4) where rm == 0:  // FNSTSW AX
      try requireX87(waiting: false)
      setReg(0, 2, UInt64(x87StatusWord))
    case (0xD9, 2) where rm == 0:  // FNOP
      try requireX87(waiting: true)
    case (0xD9, 6) where rm == 6 || rm == 7:  // FDECSTP, FINCSTP
      try requireX87(waiting: true)
      x87Top = x87Top + (rm == 7 ? 1 : -1)
      x87StatusWord &= ~X87Status.c1
    case (0xDD, 0):  // FFREE ST(i)
      try requireX87(waiting: true)
      x87SetEmpty(rm, true)
      x87StatusWord &= ~X87Status.c1  // C0-C3 undefined (SDM); the host clears C1
    case (0xD9, 0):  // FLD ST(i)
      try requireX87(waiting: true)
      if let v = x87Read(rm) {
        x87Push(v)
      } else if x87ControlWord & X87Status.invalid != 0 {
        // The source's underflow is the one reported (C1 0): the indefinite is pushed over a
        // full ST(7) without a second, overflow fault (as on the host).
        x87Top = x87Top - 1
        x87Write(0, .indefinite)
      }
    case (0xDD, 2), (0xDD, 3):  // FST ST(i), FSTP ST(i)
      try requireX87(waiting: true)
      guard let v = x87StoredTop() else { return true }
      x87Write(rm, v)
      if reg == 3 { x87Pop() }
    case (0xD9, 1):  // FXCH ST(i)
      try requireX87(waiting: true)
      var a = x87IsEmpty(0) ? nil : x87Register(physical: x87Physical(0))
      var b = x87IsEmpty(rm) ? nil : x87Register(physical: x87Physical(rm))
      if a == nil || b == nil {
        guard x87StackFault(overflow: false) else { return true }
        a = a ?? .indefinite
        b = b ?? .indefinite
      } else {
        x87StatusWord &= ~X87Status.c1
      }
      x87Write(0, b ?? .indefinite)
      x87Write(rm, a ?? .indefinite)
    case (0xD9, 4) where rm == 0 || rm == 1:  // FCHS, FABS
      try requireX87(waiting: true)
      if let v = x87Read(0) {
        x87StatusWord &= ~X87Status.c1
        x87Write(0, v.withSign(negative: rm == 0 ? !v.negative : false))
      } else if x87ControlWord & X87Status.invalid != 0 {
        x87Write(0, .indefinite)
      }
    case (0xD9, 5) where rm == 0 || rm == 6:  // FLD1, FLDZ (exact: RC does not matter)
      try requireX87(waiting: true)
      x87Push(rm == 0 ? .one : .zero)
    default:
      return false
    }
    return true
  }
}

/// How the interpreter executes a cached instruction: one of the pre-resolved shapes of the common
/// instructions (register, immediate and simple memory operands), or `.generic` for the full
/// `execute` path. An instruction is classified once, when it enters the decode cache, so the hot
/// loop dispatches on one byte instead of re-inspecting the operation and its operand kinds. The
/// forms are the same in every code mode: the handlers (`CPU+FastPath.swift`) are specialized for
/// 64-bit mode and for 16/32-bit code (`FastLong`, `FastLegacy`), which differ only in how a
/// memory operand, the stack and a branch target are reached.
///
/// Shape suffixes name the destination, then the source: R = general register, I = immediate,
/// M = memory. The nine ALU operations are contiguous per shape, in `Operation` order (add or adc
/// sbb and sub xor cmp test), so a form is `shape + (operation - add)`.
package enum FastForm: UInt8, Sendable {
  case generic
  case addRR, orRR, adcRR, sbbRR, andRR, subRR, xorRR, cmpRR, testRR
  case addRI, orRI, adcRI, sbbRI, andRI, subRI, xorRI, cmpRI, testRI
  case addRM, orRM, adcRM, sbbRM, andRM, subRM, xorRM, cmpRM, testRM
  case addMR, orMR, adcMR, sbbMR, andMR, subMR, xorMR, cmpMR, testMR
  case addMI, orMI, adcMI, sbbMI, andMI, subMI, xorMI, cmpMI, testMI
  /// INC/DEC of a register or memory operand.
  case incDecR, incDecM
  /// MOV and MOVZX: the source read at its size, written at the destination's size.
  case movRR, movRI, movRM, movMR, movMI
  /// MOVSX/MOVSXD: the source sign-extended from its size.
  case movsxRR, movsxRM
  case lea
  /// Near branches (64-bit operand size in 64-bit mode; 16 or 32 bits elsewhere).
  case jcc, jmpRel, callRel, ret
  /// PUSH/POP of a register, PUSH of an immediate (64-bit in 64-bit mode; 16 or 32 bits elsewhere).
  case pushR, popR, pushI
  /// Two- and three-operand IMUL with a register or memory source.
  case imulR, imulM
  /// Shifts and rotates of a register by an immediate or CL.
  case shiftR
  case cmovR, cmovM, setccR
  /// NOP, ENDBR, PREFETCH, the fences, and PAUSE unless it is counted: nothing but RIP moves.
  case nop

  /// The form `ins` executes in when it runs in `mode` on a `model` CPU; with `countingPauses`
  /// PAUSE takes the general path, which counts it (pause-loop exiting: `CPU.countsPauses`).
  static func classify(
    _ ins: DecodedInstruction, mode: CodeMode, model: CPUModel = .host64, countingPauses: Bool = false
  ) -> FastForm {
    // LOCK keeps the generic path (the one place atomicity will live once vCPUs share memory).
    guard !ins.prefixes.contains(.lock) else { return .generic }
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    // Near branches and stack operations: 64-bit operands in 64-bit mode (a 16-bit one takes the
    // general path); 16 or 32 bits in the other modes, the handlers using the size.
    let wide = mode == .bits64 ? ins.operandSize == 8 : ins.operandSize == 2 || ins.operandSize == 4
    // The 8086 does not mask shift counts and pushes the decremented SP: the general path keeps both.
    let i8086 = model == .i8086
    // The ALU group's and INC/DEC's handlers read and write both operands at the operand size.
    let sized = o0.size == ins.operandSize && (o1.kind != .gpr && o1.kind != .memory || o1.size == ins.operandSize)
    switch ins.operation {
    case .add, .or, .adc, .sbb, .and, .sub, .xor, .cmp, .test:
      guard sized else { return .generic }
      let shape: FastForm
      switch (o0.kind, o1.kind) {
      case (.gpr, .gpr): shape = .addRR
      case (.gpr, .immediate) where o1.reg == 0: shape = .addRI
      case (.gpr, .memory): shape = .addRM
      case (.memory, .gpr): shape = .addMR
      case (.memory, .immediate) where o1.reg == 0: shape = .addMI
      default: return .generic
      }
      let index = UInt8(ins.operation.rawValue - Operation.add.rawValue)
      return FastForm(rawValue: shape.rawValue + index) ?? .generic
    case .inc, .dec:
      guard sized else { return .generic }
      return o0.kind == .gpr ? .incDecR : o0.kind == .memory ? .incDecM : .generic
    case .mov, .movabs, .movzx:
      switch (o0.kind, o1.kind) {
      case (.gpr, .gpr): return .movRR
      case (.gpr, .immediate) where o1.reg == 0: return .movRI
      case (.gpr, .memory): return .movRM
      case (.memory, .gpr): return .movMR
      case (.memory, .immediate) where o1.reg == 0: return .movMI
      default: return .generic
      }
    case .movsx, .movsxd:
      guard o0.kind == .gpr else { return .generic }
      return o1.kind == .gpr ? .movsxRR : o1.kind == .memory ? .movsxRM : .generic
    case .lea:
      return o0.kind == .gpr ? .lea : .generic
    case .jcc:
      return wide ? .jcc : .generic
    case .jmp:
      return wide && o0.kind == .relative ? .jmpRel : .generic
    case .call:
      return wide && o0.kind == .relative ? .callRel : .generic
    case .ret:
      return wide && ins.operandCount == 0 ? .ret : .generic
    case .push:
      guard wide else { return .generic }
      if o0.kind == .gpr { return i8086 && o0.reg == 4 ? .generic : .pushR }
      return o0.kind == .immediate && o0.reg == 0 ? .pushI : .generic
    case .pop:
      return wide && o0.kind == .gpr ? .popR : .generic
    case .imul:
      guard ins.operandCount >= 2, o0.kind == .gpr else { return .generic }
      if ins.operandCount == 3 && (ins.operands.2.kind != .immediate || ins.operands.2.reg != 0) { return .generic }
      return o1.kind == .gpr ? .imulR : o1.kind == .memory ? .imulM : .generic
    case .rol, .ror, .rcl, .rcr, .shl, .shr, .sal, .sar:
      guard o0.kind == .gpr, !i8086 else { return .generic }
      return o1.kind == .gpr || (o1.kind == .immediate && o1.reg == 0) ? .shiftR : .generic
    case .cmovcc:
      guard o0.kind == .gpr else { return .generic }
      return o1.kind == .gpr ? .cmovR : o1.kind == .memory ? .cmovM : .generic
    case .setcc:
      return o0.kind == .gpr ? .setccR : .generic
    case .nop, .prefetch, .lfence, .mfence, .sfence, .endbr64, .endbr32:
      return .nop
    case .pause:
      return countingPauses ? .generic : .nop
    default:
      return .generic
    }
  }
}

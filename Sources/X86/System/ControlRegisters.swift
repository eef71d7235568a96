/// MOV to/from control and debug registers, CLTS, LMSW and SMSW (SDM vol. 2 "MOV—Move to/from
/// Control Registers", "MOV—Move to/from Debug Registers", "CLTS", "LMSW", "SMSW"; vol. 3
/// "Control Registers" and "Initializing IA-32e Mode"). Every write validates the value, updates
/// EFER.LMA when paging turns on or off with EFER.LME, and reports the TLB flushes it requires.
public enum ControlRegisters {
  /// CR0 bits that exist; writes to other bits of CR0[31:0] are ignored.
  static let definedCR0: UInt64 =
    CR0.pe | CR0.mp | CR0.em | CR0.ts | CR0.et | CR0.ne | CR0.wp | CR0.am | CR0.nw | CR0.cd | CR0.pg

  /// MOV CRn, value. `physicalAddressBits` bounds CR3 in IA-32e mode.
  @discardableResult
  public static func write(
    _ register: Int, value: UInt64, state: CPUState, features: CPUFeatures, physicalAddressBits: Int = 40
  ) throws(Fault) -> SystemEffects {
    guard [0, 2, 3, 4, 8].contains(register) else { throw .ud }
    guard state.cpl == 0 else { throw .gp(0) }
    switch register {
    case 0: return try writeCR0(value, state: state)
    case 2:
      state.cr2 = value
      return []
    case 3: return try writeCR3(value, state: state, physicalAddressBits: physicalAddressBits)
    case 4: return try writeCR4(value, state: state, features: features)
    default:
      guard value >> 4 == 0 else { throw .gp(0) }
      state[offset: CPUStateLayout.cr8] = value
      return []
    }
  }

  /// MOV reg, CRn.
  public static func read(_ register: Int, state: CPUState) throws(Fault) -> UInt64 {
    guard [0, 2, 3, 4, 8].contains(register) else { throw .ud }
    guard state.cpl == 0 else { throw .gp(0) }
    switch register {
    case 0: return state.cr0
    case 2: return state.cr2
    case 3: return state.cr3
    case 4: return state.cr4
    case 8: return state[offset: CPUStateLayout.cr8]
    default: throw .ud
    }
  }

  static func writeCR0(_ value: UInt64, state: CPUState) throws(Fault) -> SystemEffects {
    guard value >> 32 == 0 else { throw .gp(0) }
    let new = value & definedCR0 | CR0.et
    let old = state.cr0
    if new & CR0.pg != 0 && new & CR0.pe == 0 { throw .gp(0) }
    if new & CR0.nw != 0 && new & CR0.cd == 0 { throw .gp(0) }
    var efer = state.efer
    let pagingOn = old & CR0.pg == 0 && new & CR0.pg != 0
    let pagingOff = old & CR0.pg != 0 && new & CR0.pg == 0
    if pagingOn && efer & EFER.lme != 0 {
      // Activating IA-32e mode needs PAE and must not happen with CS.L set.
      guard state.cr4 & CR4.pae != 0, state.segment(.cs).attributes & SegmentAttributes.long == 0 else {
        throw .gp(0)
      }
      efer |= EFER.lma
    }
    if pagingOff {
      if state.cr4 & CR4.pcide != 0 { throw .gp(0) }
      if efer & EFER.lma != 0 {
        // Leaving IA-32e mode is only possible from compatibility mode.
        guard state.segment(.cs).attributes & SegmentAttributes.long == 0 else { throw .gp(0) }
        efer &= ~EFER.lma
      }
    }
    state.cr0 = new
    state.efer = efer
    var effects: SystemEffects = []
    if (old ^ new) & (CR0.pg | CR0.wp | CR0.pe) != 0 { effects.insert(.flushTLB) }
    if (old ^ new) & (CR0.pg | CR0.pe) != 0 {
      effects.insert(.modeChanged)
      state.codeMode = SegmentLoader.codeMode(for: state.segment(.cs), state: state)
    }
    return effects
  }

  static func writeCR3(_ value: UInt64, state: CPUState, physicalAddressBits: Int) throws(Fault) -> SystemEffects {
    var new = value
    if state.efer & EFER.lma != 0 {
      if state.cr4 & CR4.pcide != 0 { new &= ~(UInt64(1) << 63) }
      guard new >> UInt64(physicalAddressBits) == 0 else { throw .gp(0) }
    } else {
      new &= 0xFFFF_FFFF
    }
    state.cr3 = new
    // The TLB is not tagged with PCIDs, so every CR3 load drops the non-global entries (allowed:
    // a TLB may always forget more than the architecture requires).
    return [.flushNonGlobalTLB]
  }

  static func writeCR4(_ value: UInt64, state: CPUState, features: CPUFeatures) throws(Fault) -> SystemEffects {
    guard value & ~features.allowedCR4 == 0 else { throw .gp(0) }
    let old = state.cr4
    let longMode = state.efer & EFER.lma != 0
    if longMode && value & CR4.pae == 0 { throw .gp(0) }
    if longMode && (old ^ value) & CR4.la57 != 0 { throw .gp(0) }
    if old & CR4.pcide == 0 && value & CR4.pcide != 0 {
      guard longMode, state.cr3 & 0xFFF == 0 else { throw .gp(0) }
    }
    state.cr4 = value
    let flushing = CR4.pge | CR4.pae | CR4.pse | CR4.smep | CR4.smap | CR4.pcide | CR4.la57
    return (old ^ value) & flushing != 0 ? [.flushTLB] : []
  }

  /// CLTS: clears CR0.TS (CPL 0 only).
  public static func clts(state: CPUState) throws(Fault) {
    guard state.cpl == 0 else { throw .gp(0) }
    state.cr0 &= ~CR0.ts
  }

  /// LMSW: loads CR0 bits 3:0 (PE, MP, EM, TS); PE can be set but not cleared.
  @discardableResult
  public static func lmsw(_ value: UInt16, state: CPUState) throws(Fault) -> SystemEffects {
    guard state.cpl == 0 else { throw .gp(0) }
    let old = state.cr0
    let new = old & ~UInt64(0xE) | UInt64(value & 0xF) | old & CR0.pe
    state.cr0 = new
    if (old ^ new) & CR0.pe != 0 {
      state.codeMode = SegmentLoader.codeMode(for: state.segment(.cs), state: state)
      return [.modeChanged, .flushTLB]
    }
    return []
  }

  /// SMSW: CR0 (the caller stores 16 bits to memory or the operand size to a register);
  /// #GP(0) at CPL > 0 when CR4.UMIP is set.
  public static func smsw(state: CPUState) throws(Fault) -> UInt64 {
    try UMIP.check(state: state)
    return state.cr0
  }

  /// MOV reg, DRn. DR4/DR5 alias DR6/DR7 unless CR4.DE (then #UD).
  public static func readDebug(_ register: Int, state: CPUState) throws(Fault) -> UInt64 {
    let index = try debugIndex(register, state: state)
    return state[offset: CPUStateLayout.debugRegisters + 8 * index]
  }

  /// MOV DRn, value. DR6/DR7 keep their fixed bits; bits 63:32 of DR6/DR7 must be 0.
  public static func writeDebug(_ register: Int, value: UInt64, state: CPUState) throws(Fault) {
    let index = try debugIndex(register, state: state)
    var stored = value
    if index == 6 || index == 7 {
      guard value >> 32 == 0 else { throw .gp(0) }
      stored = index == 6 ? value & 0xE00F | 0xFFFF_0FF0 : value & 0xFFFF_23FF | 0x400
    }
    state[offset: CPUStateLayout.debugRegisters + 8 * index] = stored
  }

  static func debugIndex(_ register: Int, state: CPUState) throws(Fault) -> Int {
    guard (0...7).contains(register) else { throw .ud }
    if register == 4 || register == 5 {
      if state.cr4 & CR4.de != 0 { throw .ud }
    }
    guard state.cpl == 0 else { throw .gp(0) }
    return register == 4 || register == 5 ? register + 2 : register
  }

  /// Debug-register values after reset: DR6 FFFF0FF0H, DR7 400H.
  public static func resetDebug(state: CPUState) {
    state[offset: CPUStateLayout.debugRegisters + 48] = 0xFFFF_0FF0
    state[offset: CPUStateLayout.debugRegisters + 56] = 0x400
  }
}

/// User-mode instruction prevention (SDM vol. 3, "User-Mode Instruction Prevention"): with
/// CR4.UMIP set, SGDT, SIDT, SLDT, SMSW and STR at CPL > 0 raise #GP(0).
public enum UMIP {
  /// #GP(0) when CR4.UMIP is set and CPL > 0.
  public static func check(state: CPUState) throws(Fault) {
    if state.cr4 & CR4.umip != 0 && state.cpl > 0 { throw .gp(0) }
  }
}

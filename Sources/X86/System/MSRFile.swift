/// Model-specific register indices (SDM vol. 4, "Model-Specific Registers").
public enum MSRIndex {
  /// IA32_TIME_STAMP_COUNTER.
  public static let tsc: UInt32 = 0x10
  /// IA32_APIC_BASE.
  public static let apicBase: UInt32 = 0x1B
  /// IA32_BIOS_SIGN_ID (microcode revision).
  public static let biosSignID: UInt32 = 0x8B
  /// IA32_MTRRCAP.
  public static let mtrrCap: UInt32 = 0xFE
  /// IA32_SYSENTER_CS.
  public static let sysenterCS: UInt32 = 0x174
  /// IA32_SYSENTER_ESP.
  public static let sysenterESP: UInt32 = 0x175
  /// IA32_SYSENTER_EIP.
  public static let sysenterEIP: UInt32 = 0x176
  /// IA32_MISC_ENABLE.
  public static let miscEnable: UInt32 = 0x1A0
  /// IA32_PAT.
  public static let pat: UInt32 = 0x277
  /// IA32_MTRR_DEF_TYPE.
  public static let mtrrDefType: UInt32 = 0x2FF
  /// IA32_EFER.
  public static let efer: UInt32 = 0xC000_0080
  /// IA32_STAR: SYSCALL/SYSRET selectors.
  public static let star: UInt32 = 0xC000_0081
  /// IA32_LSTAR: 64-bit SYSCALL entry.
  public static let lstar: UInt32 = 0xC000_0082
  /// IA32_CSTAR: compatibility-mode SYSCALL entry (AMD).
  public static let cstar: UInt32 = 0xC000_0083
  /// IA32_FMASK: RFLAGS bits SYSCALL clears.
  public static let sfmask: UInt32 = 0xC000_0084
  /// IA32_FS_BASE.
  public static let fsBase: UInt32 = 0xC000_0100
  /// IA32_GS_BASE.
  public static let gsBase: UInt32 = 0xC000_0101
  /// IA32_KERNEL_GS_BASE (SWAPGS).
  public static let kernelGSBase: UInt32 = 0xC000_0102
  /// IA32_TSC_AUX.
  public static let tscAux: UInt32 = 0xC000_0103
}

/// RDMSR/WRMSR semantics (SDM vol. 2 "RDMSR"/"WRMSR", vol. 4 for each register). Most MSRs live in
/// `CPUState` at their fixed offsets (segment bases in the segment records, the TSC as an offset
/// from the guest clock); the few without a slot there live in this value. Unknown indices and
/// invalid values raise #GP(0); CPL > 0 raises #GP(0) too.
public struct MSRFile: Sendable, Equatable {
  /// IA32_MISC_ENABLE (fast strings on, as firmware leaves it).
  public var miscEnable: UInt64 = 1
  /// IA32_MTRR_DEF_TYPE (accepted and stored; the model has no MTRR effects).
  public var mtrrDefType: UInt64 = 0
  /// Features deciding which EFER bits and MSRs exist.
  public var features: CPUFeatures
  /// Physical-address width for APIC_BASE reserved bits.
  public var physicalAddressBits: Int

  /// An MSR file for `features` and `physicalAddressBits`.
  public init(features: CPUFeatures = .systemBaseline, physicalAddressBits: Int = 40) {
    self.features = features
    self.physicalAddressBits = physicalAddressBits
  }

  /// The power-on values of the MSRs kept in `CPUState` (SDM vol. 3, table "IA-32 and Intel 64
  /// Processor States Following Power-up, Reset, or INIT"): PAT 0007040600070406H, APIC_BASE
  /// FEE00000H with BSP and enable set.
  public static func reset(_ state: CPUState) {
    state[offset: CPUStateLayout.pat] = 0x0007_0406_0007_0406
    state[offset: CPUStateLayout.apicBase] = 0xFEE0_0000 | 1 << 8 | 1 << 11
  }

  /// RDMSR `index`; `hostTSC` is the time-stamp counter before the guest's offset is added.
  public func read(_ index: UInt32, state: CPUState, hostTSC: UInt64) throws(Fault) -> UInt64 {
    guard state.cpl == 0 else { throw .gp(0) }
    switch index {
    case MSRIndex.tsc: return hostTSC &+ state[offset: CPUStateLayout.tscOffset]
    case MSRIndex.apicBase: return state[offset: CPUStateLayout.apicBase]
    case MSRIndex.biosSignID: return 0
    case MSRIndex.mtrrCap: return 0
    case MSRIndex.sysenterCS: return state[offset: CPUStateLayout.sysenterCS]
    case MSRIndex.sysenterESP: return state[offset: CPUStateLayout.sysenterESP]
    case MSRIndex.sysenterEIP: return state[offset: CPUStateLayout.sysenterEIP]
    case MSRIndex.miscEnable: return miscEnable
    case MSRIndex.pat: return state[offset: CPUStateLayout.pat]
    case MSRIndex.mtrrDefType: return mtrrDefType
    case MSRIndex.efer: return state.efer
    case MSRIndex.star: return state[offset: CPUStateLayout.star]
    case MSRIndex.lstar: return state[offset: CPUStateLayout.lstar]
    case MSRIndex.cstar: return state[offset: CPUStateLayout.cstar]
    case MSRIndex.sfmask: return state[offset: CPUStateLayout.sfmask]
    case MSRIndex.fsBase: return state.segment(.fs).base
    case MSRIndex.gsBase: return state.segment(.gs).base
    case MSRIndex.kernelGSBase: return state[offset: CPUStateLayout.kernelGSBase]
    case MSRIndex.tscAux:
      guard features.contains(.rdtscp) else { throw .gp(0) }
      return state[offset: CPUStateLayout.tscAux]
    default: throw .gp(0)
    }
  }

  /// WRMSR `index` = `value`. Returns the side effects the core must act on (an EFER.NXE change
  /// flushes the TLB).
  @discardableResult
  public mutating func write(
    _ index: UInt32, value: UInt64, state: CPUState, hostTSC: UInt64
  ) throws(Fault) -> SystemEffects {
    guard state.cpl == 0 else { throw .gp(0) }
    let la57 = state.cr4 & CR4.la57 != 0
    func canonical() throws(Fault) {
      guard Canonical.isCanonical(value, la57: la57) else { throw .gp(0) }
    }
    switch index {
    case MSRIndex.tsc:
      state[offset: CPUStateLayout.tscOffset] = value &- hostTSC
    case MSRIndex.apicBase:
      // Bits 7:0, 9 and those above MAXPHYADDR are reserved; x2APIC (bit 10) only if advertised.
      var reserved: UInt64 = 0x2FF | ~((UInt64(1) << UInt64(physicalAddressBits)) - 1)
      if !features.contains(.x2apic) { reserved |= 1 << 10 }
      guard value & reserved == 0 else { throw .gp(0) }
      let bsp = state[offset: CPUStateLayout.apicBase] & (1 << 8)
      state[offset: CPUStateLayout.apicBase] = value & ~UInt64(1 << 8) | bsp
    case MSRIndex.biosSignID:
      break
    case MSRIndex.sysenterCS:
      state[offset: CPUStateLayout.sysenterCS] = value & 0xFFFF_FFFF
    case MSRIndex.sysenterESP:
      try canonical()
      state[offset: CPUStateLayout.sysenterESP] = value
    case MSRIndex.sysenterEIP:
      try canonical()
      state[offset: CPUStateLayout.sysenterEIP] = value
    case MSRIndex.miscEnable:
      miscEnable = value
    case MSRIndex.pat:
      // Each byte must encode a valid memory type: UC 0, WC 1, WT 4, WP 5, WB 6, UC- 7.
      for i in 0..<8 {
        let type = (value >> UInt64(i * 8)) & 0xFF
        guard type == 0 || type == 1 || (4...7).contains(type) else { throw .gp(0) }
      }
      state[offset: CPUStateLayout.pat] = value
    case MSRIndex.mtrrDefType:
      guard value & ~UInt64(0xCFF) == 0 else { throw .gp(0) }
      mtrrDefType = value
    case MSRIndex.efer:
      return try writeEFER(value, state: state)
    case MSRIndex.star:
      state[offset: CPUStateLayout.star] = value
    case MSRIndex.lstar:
      try canonical()
      state[offset: CPUStateLayout.lstar] = value
    case MSRIndex.cstar:
      try canonical()
      state[offset: CPUStateLayout.cstar] = value
    case MSRIndex.sfmask:
      guard value >> 32 == 0 else { throw .gp(0) }
      state[offset: CPUStateLayout.sfmask] = value
    case MSRIndex.fsBase, MSRIndex.gsBase:
      try canonical()
      let register: SegmentRegister = index == MSRIndex.fsBase ? .fs : .gs
      var cache = state.segment(register)
      cache.base = value
      state.setSegment(register, cache)
    case MSRIndex.kernelGSBase:
      try canonical()
      state[offset: CPUStateLayout.kernelGSBase] = value
    case MSRIndex.tscAux:
      guard features.contains(.rdtscp), value >> 32 == 0 else { throw .gp(0) }
      state[offset: CPUStateLayout.tscAux] = value
    default:
      throw .gp(0)
    }
    return []
  }

  /// EFER: reserved bits #GP(0); changing LME while paging is on #GP(0); LMA is read-only.
  func writeEFER(_ value: UInt64, state: CPUState) throws(Fault) -> SystemEffects {
    guard value & ~features.allowedEFER == 0 else { throw .gp(0) }
    let old = state.efer
    if state.cr0 & CR0.pg != 0 && (value ^ old) & EFER.lme != 0 { throw .gp(0) }
    state.efer = value & ~EFER.lma | old & EFER.lma
    return (value ^ old) & EFER.nxe != 0 ? [.flushTLB] : []
  }
}

/// What the core must do after a system instruction changed control state.
public struct SystemEffects: OptionSet, Sendable {
  /// The effect bits.
  public let rawValue: UInt8
  /// Effects from raw bits.
  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// Drop the non-global TLB entries (MOV CR3).
  public static let flushNonGlobalTLB = SystemEffects(rawValue: 1 << 0)
  /// Drop every TLB entry, global ones included.
  public static let flushTLB = SystemEffects(rawValue: 1 << 1)
  /// The operating or code mode may have changed (CR0.PE/PG, EFER.LMA, CS): refresh decode state.
  public static let modeChanged = SystemEffects(rawValue: 1 << 2)
  /// A hardware task switch happened (the new task's TSS may ask for a debug trap: its T bit).
  public static let taskSwitched = SystemEffects(rawValue: 1 << 3)
}

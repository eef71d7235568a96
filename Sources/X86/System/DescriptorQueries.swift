/// LAR, LSL, VERR and VERW (SDM vol. 2, one section each): descriptor queries that report
/// inaccessible or invalid selectors through ZF instead of faulting. Only memory faults (#PF on
/// the descriptor table) propagate; they are #UD in real and virtual-8086 mode.
public enum DescriptorQueries {
  /// The answer of LAR/LSL: `valid` becomes ZF; `value` is written only when valid.
  public struct Answer: Sendable, Equatable {
    /// ZF: the selector passed the checks.
    public var valid: Bool
    /// The value the instruction loads (LAR, LSL).
    public var value: UInt64
    /// A failed query.
    public static let invalid = Answer(valid: false, value: 0)
  }

  /// LAR: the access-rights bytes (descriptor bits 55:40 as second-dword bits 23:8, masked
  /// 00F0FF00H; 16-bit operand size keeps 0xFF00).
  public static func lar(
    _ raw: UInt16, operandSize: Int, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) -> Answer {
    guard let descriptor = try visible(raw, state: state, memory: memory, allowedSystemTypes: larTypes(state)) else {
      return .invalid
    }
    let rights = UInt64(UInt32(truncatingIfNeeded: descriptor.raw >> 32) & 0x00F0_FF00)
    return Answer(valid: true, value: operandSize == 2 ? rights & 0xFF00 : rights)
  }

  /// LSL: the segment limit in bytes (scaled by G).
  public static func lsl(
    _ raw: UInt16, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) -> Answer {
    guard let descriptor = try visible(raw, state: state, memory: memory, allowedSystemTypes: lslTypes(state)) else {
      return .invalid
    }
    return Answer(valid: true, value: UInt64(descriptor.limit))
  }

  /// VERR (`write` false) / VERW (`write` true): whether the segment is readable/writable at CPL.
  public static func verify(
    _ raw: UInt16, write: Bool, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) -> Bool {
    guard let descriptor = try visible(raw, state: state, memory: memory, allowedSystemTypes: []) else { return false }
    return write ? descriptor.writable : descriptor.readable
  }

  static func larTypes(_ state: CPUState) -> Set<UInt8> {
    state.efer & EFER.lma != 0 ? [2, 9, 11, 12] : [1, 2, 3, 4, 5, 9, 11, 12]
  }

  static func lslTypes(_ state: CPUState) -> Set<UInt8> {
    state.efer & EFER.lma != 0 ? [2, 9, 11] : [1, 2, 3, 9, 11]
  }

  /// The descriptor if the selector names one inside its table that the current privilege may
  /// see (conforming code always; otherwise DPL >= CPL and DPL >= RPL) and whose system type is
  /// allowed; nil otherwise.
  static func visible(
    _ raw: UInt16, state: CPUState, memory: some SystemMemoryAccess, allowedSystemTypes: Set<UInt8>
  ) throws(Fault) -> SegmentDescriptor? {
    let mode = OperatingMode(state)
    if mode == .real || mode == .virtual8086 { throw .ud }
    let selector = SegmentSelector(raw)
    guard !selector.isNull else { return nil }
    let address: UInt64
    do throws(Fault) {
      address = try DescriptorTables.locate(selector, state: state)
    } catch {
      return nil
    }
    let descriptor = SegmentDescriptor(raw: try memory.readLinear(address, size: 8, supervisor: true))
    if !descriptor.isCodeOrData && !allowedSystemTypes.contains(descriptor.type) { return nil }
    if descriptor.conforming { return descriptor }
    guard descriptor.dpl >= state.cpl, descriptor.dpl >= selector.rpl else { return nil }
    return descriptor
  }
}

/// Privilege checks of the remaining system instructions (SDM vol. 2): INVLPG, RDTSC/RDTSCP,
/// HLT, INVD/WBINVD.
public enum SystemInstructions {
  /// #GP(0) unless CPL 0 (HLT, INVD, WBINVD, INVLPG, LIDT ...).
  public static func requireRing0(_ state: CPUState) throws(Fault) {
    guard state.cpl == 0 else { throw .gp(0) }
  }

  /// INVLPG `address`: CPL 0, then drops the page from `tlb`.
  public static func invlpg(_ address: UInt64, state: CPUState, tlb: SoftTLB) throws(Fault) {
    try requireRing0(state)
    tlb.invalidate(address)
  }

  /// RDTSC: the guest TSC (host counter plus the TSC offset); #GP(0) when CR4.TSD is set at CPL > 0.
  public static func rdtsc(state: CPUState, hostTSC: UInt64) throws(Fault) -> UInt64 {
    if state.cr4 & CR4.tsd != 0 && state.cpl > 0 && state.cr0 & CR0.pe != 0 { throw .gp(0) }
    return hostTSC &+ state[offset: CPUStateLayout.tscOffset]
  }

  /// RDTSCP: the TSC and IA32_TSC_AUX (for ECX); #UD unless advertised.
  public static func rdtscp(
    state: CPUState, hostTSC: UInt64, features: CPUFeatures
  ) throws(Fault) -> (tsc: UInt64, aux: UInt32) {
    guard features.contains(.rdtscp) else { throw .ud }
    let tsc = try rdtsc(state: state, hostTSC: hostTSC)
    return (tsc, UInt32(truncatingIfNeeded: state[offset: CPUStateLayout.tscAux]))
  }
}

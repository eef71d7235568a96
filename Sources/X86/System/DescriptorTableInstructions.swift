/// LGDT, LIDT, SGDT, SIDT, LLDT, SLDT, LTR and STR (SDM vol. 2, one section each; vol. 3 "Task
/// Register" and "Segment Descriptor Tables"). The core reads or writes the memory operand and
/// passes the values; these functions do the checks and update the registers.
public enum DescriptorTableInstructions {
  /// Which descriptor-table register LGDT/LIDT/SGDT/SIDT names.
  public enum Table: Sendable { case gdt, idt }

  /// LGDT/LIDT with the 6- or 10-byte operand's `limit` and `base`. With a 16-bit operand size
  /// only 24 bits of base are used, with 32 bits 32; in 64-bit mode the base must be canonical.
  public static func load(
    _ table: Table, limit: UInt16, base: UInt64, operandSize: Int, state: CPUState
  ) throws(Fault) {
    guard state.cpl == 0 else { throw .gp(0) }
    var newBase = base
    if OperatingMode(state) == .long64 {
      guard Canonical.isCanonical(base, la57: state.cr4 & CR4.la57 != 0) else { throw .gp(0) }
    } else {
      newBase &= operandSize == 2 ? 0xFF_FFFF : 0xFFFF_FFFF
    }
    switch table {
    case .gdt: state.gdtr = (newBase, limit)
    case .idt: state.idtr = (newBase, limit)
    }
  }

  /// SGDT/SIDT: the register's limit and base (#GP(0) at CPL > 0 under UMIP).
  public static func store(_ table: Table, state: CPUState) throws(Fault) -> (limit: UInt16, base: UInt64) {
    try UMIP.check(state: state)
    let r = table == .gdt ? state.gdtr : state.idtr
    return (r.limit, r.base)
  }

  /// SLDT: the LDTR selector.
  public static func storeLDTR(state: CPUState) throws(Fault) -> UInt16 {
    try requireProtectedMode(state)
    try UMIP.check(state: state)
    return state.segment(.ldtr).selector
  }

  /// STR: the TR selector.
  public static func storeTR(state: CPUState) throws(Fault) -> UInt16 {
    try requireProtectedMode(state)
    try UMIP.check(state: state)
    return state.segment(.tr).selector
  }

  /// LLDT: a null selector makes LDTR unusable; otherwise an LDT descriptor in the GDT (16 bytes
  /// in IA-32e mode).
  public static func loadLDTR(
    _ raw: UInt16, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    try requireProtectedMode(state)
    guard state.cpl == 0 else { throw .gp(0) }
    let selector = SegmentSelector(raw)
    if selector.isNull {
      state.setSegment(.ldtr, SegmentCache(selector: raw, base: 0, limit: 0, attributes: 0))
      return
    }
    let code = SelectorErrorCode.selector(raw, external: false)
    guard !selector.isLocal else { throw .gp(code) }
    let (descriptor, _) = try readSystemDescriptor(selector, state: state, memory: memory)
    guard descriptor.isSystem, descriptor.type == SystemDescriptorType.ldt else { throw .gp(code) }
    guard descriptor.present else { throw .np(code) }
    state.setSegment(.ldtr, descriptor.cache(selector: raw))
  }

  /// LTR: an available TSS descriptor in the GDT (32/64-bit, or 16-bit outside IA-32e mode); marks
  /// it busy in memory and loads TR.
  public static func loadTR(
    _ raw: UInt16, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    try requireProtectedMode(state)
    guard state.cpl == 0 else { throw .gp(0) }
    let selector = SegmentSelector(raw)
    guard !selector.isNull else { throw .gp(0) }
    let code = SelectorErrorCode.selector(raw, external: false)
    guard !selector.isLocal else { throw .gp(code) }
    let (descriptor, address) = try readSystemDescriptor(selector, state: state, memory: memory)
    let ia32e = state.efer & EFER.lma != 0
    let available =
      descriptor.type == SystemDescriptorType.tssAvailable
      || (!ia32e && descriptor.type == SystemDescriptorType.tss16Available)
    guard descriptor.isSystem, available else { throw .gp(code) }
    guard descriptor.present else { throw .np(code) }
    let busyByte = (descriptor.low.raw >> 40) & 0xFF | 2
    try memory.writeLinear(address &+ 5, size: 1, value: busyByte, supervisor: true)
    var cache = descriptor.cache(selector: raw)
    cache.attributes |= 2
    state.setSegment(.tr, cache)
  }

  /// Reads an LDT/TSS descriptor from the GDT: 16 bytes with the IA-32e checks (canonical base,
  /// zero upper type) or 8 bytes in legacy mode.
  static func readSystemDescriptor(
    _ selector: SegmentSelector, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) -> (SystemDescriptor, UInt64) {
    let code = SelectorErrorCode.selector(selector.raw, external: false)
    if state.efer & EFER.lma != 0 {
      let (descriptor, address) = try DescriptorTables.readSystem16(selector, state: state, memory: memory)
      guard descriptor.upperTypeIsZero else { throw .gp(code) }
      guard Canonical.isCanonical(descriptor.base, la57: state.cr4 & CR4.la57 != 0) else { throw .gp(code) }
      return (descriptor, address)
    }
    let (descriptor, address) = try DescriptorTables.read(selector, state: state, memory: memory)
    return (SystemDescriptor(low: descriptor.raw), address)
  }

  /// LLDT, LTR, SLDT and STR are #UD in real and virtual-8086 mode.
  static func requireProtectedMode(_ state: CPUState) throws(Fault) {
    let mode = OperatingMode(state)
    if mode == .real || mode == .virtual8086 { throw .ud }
  }
}

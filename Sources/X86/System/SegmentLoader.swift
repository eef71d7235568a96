/// Segment-register loads with the protected-mode checks of SDM vol. 2 (MOV, POP, LDS/LES/LFS/
/// LGS/LSS, far JMP/CALL/RET) and vol. 3 "Privilege Level Checking When Accessing Data Segments"
/// and "Privilege Level Checking When Loading the SS Register". In real mode and virtual-8086 mode
/// the base is selector * 16.
public enum SegmentLoader {
  /// MOV/POP/Lxx to DS, ES, FS, GS or SS: validates `selector`, sets the descriptor's accessed
  /// bit and loads the hidden register. A null selector is allowed for DS/ES/FS/GS (the register
  /// becomes unusable); for SS only in 64-bit mode at CPL < 3 with RPL == CPL.
  public static func loadData(
    _ register: SegmentRegister, selector raw: UInt16, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    let cache = try checkData(register, selector: raw, state: state, memory: memory)
    state.setSegment(register, cache)
  }

  /// The checks of `loadData` without committing: returns what the register would hold (the
  /// accessed bit is already set in memory, as on hardware).
  public static func checkData(
    _ register: SegmentRegister, selector raw: UInt16, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) -> SegmentCache {
    let mode = OperatingMode(state)
    switch mode {
    case .real:
      var cache = state.segment(register)
      cache.selector = raw
      cache.base = UInt64(raw) << 4
      return cache
    case .virtual8086:
      return SegmentCache(selector: raw, base: UInt64(raw) << 4, limit: 0xFFFF, attributes: 0xF3)
    case .protected, .compatibility, .long64:
      break
    }
    let selector = SegmentSelector(raw)
    let cpl = state.cpl
    let code = SelectorErrorCode.selector(raw, external: false)
    if register == .ss {
      if selector.isNull {
        guard mode == .long64, cpl != 3, selector.rpl == cpl else { throw .gp(0) }
        return SegmentCache(selector: raw, base: 0, limit: 0, attributes: UInt16(cpl) << 5)
      }
      let (descriptor, address) = try DescriptorTables.read(selector, state: state, memory: memory)
      guard selector.rpl == cpl, descriptor.writable, descriptor.dpl == cpl else { throw .gp(code) }
      guard descriptor.present else { throw .ss(code) }
      try DescriptorTables.markAccessed(descriptor, at: address, memory: memory)
      return accessedCache(descriptor, selector: raw)
    }
    if selector.isNull {
      return SegmentCache(selector: raw, base: 0, limit: 0, attributes: 0)
    }
    let (descriptor, address) = try DescriptorTables.read(selector, state: state, memory: memory)
    guard descriptor.readable else { throw .gp(code) }
    if descriptor.isData || !descriptor.conforming {
      guard selector.rpl <= descriptor.dpl, cpl <= descriptor.dpl else { throw .gp(code) }
    }
    guard descriptor.present else { throw .np(code) }
    try DescriptorTables.markAccessed(descriptor, at: address, memory: memory)
    return accessedCache(descriptor, selector: raw)
  }

  static func accessedCache(_ descriptor: SegmentDescriptor, selector: UInt16) -> SegmentCache {
    var cache = descriptor.cache(selector: selector)
    cache.attributes |= SegmentAttributes.accessed
    return cache
  }

  /// Validates the target of a direct far JMP or far CALL (`selector:offset`, SDM vol. 2 "JMP" and
  /// "CALL", same-privilege transfers to a code segment) and returns the new CS; call gates, task
  /// gates and TSS selectors are not implemented yet (thrown as `Fault.notImplemented`). The
  /// caller pushes the return address for CALL, then commits with `commitCodeSegment`.
  public static func checkFarTransfer(
    selector raw: UInt16, offset: UInt64, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) -> SegmentCache {
    let mode = OperatingMode(state)
    switch mode {
    case .real:
      var cache = state.segment(.cs)
      cache.selector = raw
      cache.base = UInt64(raw) << 4
      guard offset <= UInt64(cache.limit) else { throw .gp(0) }
      return cache
    case .virtual8086:
      guard offset <= 0xFFFF else { throw .gp(0) }
      return SegmentCache(selector: raw, base: UInt64(raw) << 4, limit: 0xFFFF, attributes: 0xF3)
    case .protected, .compatibility, .long64:
      break
    }
    let selector = SegmentSelector(raw)
    guard !selector.isNull else { throw .gp(0) }
    let code = SelectorErrorCode.selector(raw, external: false)
    let (descriptor, address) = try DescriptorTables.read(selector, state: state, memory: memory)
    guard descriptor.isCode else {
      if !descriptor.isCodeOrData {
        switch descriptor.type {
        case SystemDescriptorType.callGate, SystemDescriptorType.callGate16:
          throw .notImplemented(.callGate)
        case SystemDescriptorType.taskGate, SystemDescriptorType.tssAvailable, SystemDescriptorType.tss16Available:
          throw .notImplemented(.taskSwitch)
        default: break
        }
      }
      throw .gp(code)
    }
    let cpl = state.cpl
    if descriptor.conforming {
      guard descriptor.dpl <= cpl else { throw .gp(code) }
    } else {
      guard selector.rpl <= cpl, descriptor.dpl == cpl else { throw .gp(code) }
    }
    guard descriptor.present else { throw .np(code) }
    var cache = accessedCache(descriptor, selector: selector.withRPL(cpl).raw)
    let long64 = state.efer & EFER.lma != 0 && descriptor.long
    if long64 {
      guard Canonical.isCanonical(offset, la57: state.cr4 & CR4.la57 != 0) else { throw .gp(0) }
      cache.base = 0
    } else {
      guard offset <= UInt64(cache.limit) else { throw .gp(0) }
    }
    try DescriptorTables.markAccessed(descriptor, at: address, memory: memory)
    return cache
  }

  /// Loads CS (and with it the code mode) and the CPL.
  public static func commitCodeSegment(_ cache: SegmentCache, cpl: Int, state: CPUState) {
    state.setSegment(.cs, cache)
    state.cpl = cpl
    state.codeMode = codeMode(for: cache, state: state)
  }

  /// The code mode a CS value selects: 64-bit when EFER.LMA and CS.L, 32-bit when CS.D in
  /// protected mode, otherwise 16-bit (real and virtual-8086 mode).
  public static func codeMode(for cs: SegmentCache, state: CPUState) -> CodeMode {
    if state.cr0 & CR0.pe == 0 || state.rflags & Flags.vm != 0 { return .bits16 }
    if state.efer & EFER.lma != 0 && cs.attributes & SegmentAttributes.long != 0 { return .bits64 }
    return cs.attributes & SegmentAttributes.defaultBig != 0 ? .bits32 : .bits16
  }

  /// After a return to an outer privilege level (far RET, IRET): DS, ES, FS and GS whose DPL is
  /// below the new CPL and that hold data or non-conforming code become null (SDM vol. 2 "RET").
  static func nullifyInaccessibleDataSegments(state: CPUState) {
    let cpl = state.cpl
    for register in [SegmentRegister.es, .ds, .fs, .gs] {
      var cache = state.segment(register)
      let attributes = cache.attributes
      let isConformingCode =
        attributes & (SegmentAttributes.code | SegmentAttributes.conformingOrExpandDown)
        == SegmentAttributes.code | SegmentAttributes.conformingOrExpandDown
      if SegmentAttributes.dpl(attributes) < cpl && !isConformingCode {
        // Only the selector and the usable bit change; FS/GS bases survive in IA-32e mode.
        cache.selector = 0
        cache.attributes = 0
        state.setSegment(register, cache)
      }
    }
  }
}

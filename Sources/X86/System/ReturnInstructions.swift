/// IRET/IRETD/IRETQ and far RET with the protection checks of SDM vol. 2 ("IRET/IRETD/IRETQ" and
/// "RET"): same-level returns, returns to an outer privilege level (popping SS:RSP, nulling data
/// segments the new CPL may not use), 64-bit IRETQ that always pops SS:RSP, real mode and
/// virtual-8086 mode. State changes only after every pop and check has succeeded.
public enum ReturnInstructions {
  /// IRET with operand size `operandSize` (2, 4 or 8 bytes). `returnRIP` (the next instruction)
  /// is saved in the outgoing TSS when NT=1 makes IRET a return from a nested task. Returns the
  /// effects of such a task switch; empty otherwise.
  @discardableResult
  public static func iret(
    operandSize: Int, returnRIP: UInt64 = 0, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) -> SystemEffects {
    let mode = OperatingMode(state)
    let cpl = state.cpl
    let oldFlags = state.rflags
    switch mode {
    case .real, .virtual8086:
      if mode == .virtual8086 && oldFlags & Flags.iopl != Flags.iopl { throw .gp(0) }
      var stack = SystemStack(state: state, mode: mode, supervisor: mode == .real, faultCode: 0)
      let ip = try stack.pop(size: operandSize, memory: memory)
      let cs = try stack.pop(size: operandSize, memory: memory)
      let tempFlags = try stack.pop(size: operandSize, memory: memory)
      var csCache = state.segment(.cs)
      guard ip <= UInt64(mode == .real ? csCache.limit : 0xFFFF) else { throw .gp(0) }
      csCache.selector = UInt16(truncatingIfNeeded: cs)
      csCache.base = UInt64(csCache.selector) << 4
      var keep: UInt64 = Flags.vm | Flags.vif | Flags.vip
      if mode == .virtual8086 { keep |= Flags.iopl }
      if operandSize == 2 { keep |= ~UInt64(0xFFFF) }
      let changeable = ~keep & 0x3F_7FD5
      state.rflags = oldFlags & ~changeable | tempFlags & changeable | Flags.reserved1
      state.setSegment(.cs, csCache)
      state.rip = ip
      state.setGPR(4, stack.pointer)
      return []
    case .protected, .compatibility, .long64:
      break
    }
    if oldFlags & Flags.nt != 0 {
      if mode.isIA32e { throw .gp(0) }
      let tr = state.segment(.tr)
      let link = try memory.readLinear(tr.base, size: 2, supervisor: true)
      return try TaskSwitch.perform(
        to: UInt16(truncatingIfNeeded: link), source: .iret, returnRIP: returnRIP, state: state, memory: memory)
    }
    var stack = SystemStack(state: state, mode: mode, supervisor: cpl < 3, faultCode: 0)
    let tempRIP = try stack.pop(size: operandSize, memory: memory)
    let tempCS = UInt16(truncatingIfNeeded: try stack.pop(size: operandSize, memory: memory))
    let tempFlags = try stack.pop(size: operandSize, memory: memory)
    if tempFlags & Flags.vm != 0 && cpl == 0 && mode == .protected && operandSize == 4 {
      try returnToVirtual8086(rip: tempRIP, cs: tempCS, flags: tempFlags, stack: stack, state: state, memory: memory)
      return [.modeChanged]
    }
    var changeable = Flags.arithmetic | Flags.tf | Flags.df | Flags.nt
    if operandSize >= 4 { changeable |= Flags.rf | Flags.ac | Flags.id }
    if cpl <= Int((oldFlags >> 12) & 3) { changeable |= Flags.if }
    if cpl == 0 {
      changeable |= Flags.iopl
      if operandSize >= 4 { changeable |= Flags.vif | Flags.vip }
    }
    let newFlags = oldFlags & ~changeable | tempFlags & changeable | Flags.reserved1
    try completeReturn(
      rip: tempRIP, cs: tempCS, operandSize: operandSize, release: 0, alwaysPopStack: mode == .long64,
      stack: stack, mode: mode, state: state, memory: memory)
    state.rflags = newFlags
    return []
  }

  /// Far RET (RETF) with operand size `operandSize`, releasing `release` bytes of parameters.
  public static func farReturn(
    operandSize: Int, release: UInt16 = 0, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    let mode = OperatingMode(state)
    var stack = SystemStack(state: state, mode: mode, supervisor: state.cpl < 3, faultCode: 0)
    let tempRIP = try stack.pop(size: operandSize, memory: memory)
    let tempCS = UInt16(truncatingIfNeeded: try stack.pop(size: operandSize, memory: memory))
    switch mode {
    case .real, .virtual8086:
      var cs = state.segment(.cs)
      let limit = mode == .real ? UInt64(cs.limit) : 0xFFFF
      guard tempRIP <= limit else { throw .gp(0) }
      cs.selector = tempCS
      cs.base = UInt64(tempCS) << 4
      stack.release(UInt64(release))
      state.setSegment(.cs, cs)
      state.rip = tempRIP
      state.setGPR(4, stack.pointer)
    case .protected, .compatibility, .long64:
      try completeReturn(
        rip: tempRIP, cs: tempCS, operandSize: operandSize, release: release, alwaysPopStack: false,
        stack: stack, mode: mode, state: state, memory: memory)
    }
  }

  /// The protected-mode part shared by IRET and far RET: checks the return CS, pops SS:RSP when
  /// returning outward (or always for 64-bit IRET), checks the new SS and commits.
  static func completeReturn(
    rip: UInt64, cs rawCS: UInt16, operandSize: Int, release: UInt16, alwaysPopStack: Bool, stack: SystemStack,
    mode: OperatingMode, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    var stack = stack
    let cpl = state.cpl
    let csSelector = SegmentSelector(rawCS)
    guard !csSelector.isNull else { throw .gp(0) }
    let csCode = SelectorErrorCode.selector(rawCS, external: false)
    let (cs, csAddress) = try DescriptorTables.read(csSelector, state: state, memory: memory)
    guard cs.isCode, csSelector.rpl >= cpl else { throw .gp(csCode) }
    if cs.conforming {
      guard cs.dpl <= csSelector.rpl else { throw .gp(csCode) }
    } else {
      guard cs.dpl == csSelector.rpl else { throw .gp(csCode) }
    }
    guard cs.present else { throw .np(csCode) }
    let newCPL = csSelector.rpl
    let target64 = mode.isIA32e && cs.long
    if target64 {
      guard Canonical.isCanonical(rip, la57: state.cr4 & CR4.la57 != 0) else { throw .gp(0) }
    } else {
      guard rip & (operandSize == 2 ? 0xFFFF : 0xFFFF_FFFF) <= UInt64(cs.limit) else { throw .gp(0) }
    }
    let newRIP = target64 ? rip : operandSize == 2 ? rip & 0xFFFF : rip & 0xFFFF_FFFF
    stack.release(UInt64(release))
    var csCache = SegmentLoader.accessedCache(cs, selector: rawCS)
    if target64 { csCache.base = 0 }

    if newCPL == cpl && !alwaysPopStack {
      try DescriptorTables.markAccessed(cs, at: csAddress, memory: memory)
      state.setGPR(4, stack.pointer)
      state.rip = newRIP
      SegmentLoader.commitCodeSegment(csCache, cpl: cpl, state: state)
      return
    }
    let newRSP = try stack.pop(size: operandSize, memory: memory)
    let rawSS = UInt16(truncatingIfNeeded: try stack.pop(size: operandSize, memory: memory))
    let ssSelector = SegmentSelector(rawSS)
    let ssCode = SelectorErrorCode.selector(rawSS, external: false)
    var ssCache: SegmentCache
    if ssSelector.isNull {
      guard mode == .long64, target64, newCPL != 3, ssSelector.rpl == newCPL else { throw .gp(0) }
      ssCache = SegmentCache(selector: rawSS, base: 0, limit: 0, attributes: UInt16(newCPL) << 5)
    } else {
      let (ss, ssAddress) = try DescriptorTables.read(ssSelector, state: state, memory: memory)
      guard ssSelector.rpl == newCPL, ss.writable, ss.dpl == newCPL else { throw .gp(ssCode) }
      guard ss.present else { throw .ss(ssCode) }
      try DescriptorTables.markAccessed(ss, at: ssAddress, memory: memory)
      ssCache = SegmentLoader.accessedCache(ss, selector: rawSS)
    }
    try DescriptorTables.markAccessed(cs, at: csAddress, memory: memory)
    // Commit: the new stack pointer (plus the released parameters for RET imm16) in the new SS.
    let pointer: UInt64
    if target64 || operandSize == 8 {
      pointer = newRSP
    } else if ssCache.attributes & SegmentAttributes.defaultBig != 0 {
      pointer = newRSP & 0xFFFF_FFFF
    } else {
      pointer = state.gpr(4) & ~UInt64(0xFFFF) | newRSP & 0xFFFF
    }
    var newStack = SystemStack(cache: ssCache, pointer: pointer, long64: target64, supervisor: true, faultCode: 0)
    newStack.release(UInt64(release))
    state.setSegment(.ss, ssCache)
    state.setGPR(4, newStack.pointer)
    state.rip = newRIP
    SegmentLoader.commitCodeSegment(csCache, cpl: newCPL, state: state)
    if newCPL > cpl { SegmentLoader.nullifyInaccessibleDataSegments(state: state) }
  }

  /// IRET from CPL 0 with VM set in the popped EFLAGS: pops ESP, SS, ES, DS, FS, GS and enters
  /// virtual-8086 mode at CPL 3 (SDM vol. 2 "IRET", RETURN-TO-VIRTUAL-8086-MODE).
  static func returnToVirtual8086(
    rip: UInt64, cs: UInt16, flags: UInt64, stack: SystemStack, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    var stack = stack
    let esp = try stack.pop(size: 4, memory: memory)
    var selectors: [UInt16] = []
    for _ in 0..<5 { selectors.append(UInt16(truncatingIfNeeded: try stack.pop(size: 4, memory: memory))) }
    let registers: [SegmentRegister] = [.ss, .es, .ds, .fs, .gs]
    state.rflags = flags & 0x3F_7FD5 | Flags.reserved1
    for (register, selector) in zip(registers, selectors) {
      state.setSegment(
        register, SegmentCache(selector: selector, base: UInt64(selector) << 4, limit: 0xFFFF, attributes: 0xF3))
    }
    state.setGPR(4, esp & 0xFFFF_FFFF)
    state.rip = rip & 0xFFFF
    SegmentLoader.commitCodeSegment(
      SegmentCache(selector: cs, base: UInt64(cs) << 4, limit: 0xFFFF, attributes: 0xF3), cpl: 3, state: state)
  }
}

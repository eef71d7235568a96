/// Far JMP and far CALL (SDM vol. 2 "JMP" and "CALL", vol. 3 "Calling Procedures Using Call
/// Gates"): direct transfers to a code segment, and call gates (16/32-bit in legacy mode, 16-byte
/// in IA-32e mode) including the inner-privilege stack switch of CALL with parameter copying.
/// A TSS or task gate as target switches tasks (`TaskSwitch`).
/// Everything is checked and every push done before any register changes.
public enum FarTransfers {
  /// Far JMP to `selector:offset` (`operandSize` 2, 4 or 8 masks a direct offset). `returnRIP`
  /// (the next instruction) is saved in the outgoing TSS when the target is a task. Returns the
  /// effects of a task switch (TLB flush, mode change); empty otherwise.
  @discardableResult
  public static func jump(
    selector: UInt16, offset: UInt64, operandSize: Int, returnRIP: UInt64 = 0, state: CPUState,
    memory: some SystemMemoryAccess
  ) throws(Fault) -> SystemEffects {
    let target = try resolve(
      selector: selector, offset: offset, operandSize: operandSize, isCall: false, state: state, memory: memory)
    switch target {
    case .direct(let cs, let rip):
      state.rip = rip
      SegmentLoader.commitCodeSegment(cs, cpl: state.cpl, state: state)
    case .gate(_, let cs, let rip, _):
      state.rip = rip
      SegmentLoader.commitCodeSegment(cs, cpl: state.cpl, state: state)
    case .task(let tss):
      return try TaskSwitch.perform(to: tss, source: .jump, returnRIP: returnRIP, state: state, memory: memory)
    }
    return []
  }

  /// Far CALL to `selector:offset`, pushing the return address `returnRIP` (and through a call
  /// gate to an inner level, the old SS:RSP and the gate's parameters on the new stack). Returns
  /// the effects of a task switch; empty otherwise.
  @discardableResult
  public static func call(
    selector: UInt16, offset: UInt64, operandSize: Int, returnRIP: UInt64, state: CPUState,
    memory: some SystemMemoryAccess
  ) throws(Fault) -> SystemEffects {
    let mode = OperatingMode(state)
    let cpl = state.cpl
    let oldCS = UInt64(state.segment(.cs).selector)
    let target = try resolve(
      selector: selector, offset: offset, operandSize: operandSize, isCall: true, state: state, memory: memory)
    switch target {
    case .direct(let cs, let rip):
      var stack = SystemStack(state: state, mode: mode, supervisor: cpl < 3, faultCode: 0)
      try stack.push(oldCS, size: operandSize, memory: memory)
      try stack.push(returnRIP, size: operandSize, memory: memory)
      state.setGPR(4, stack.pointer)
      state.rip = rip
      SegmentLoader.commitCodeSegment(cs, cpl: cpl, state: state)
    case .gate(let gate, let cs, let rip, let newCPL):
      let size = gate.size
      if newCPL == cpl {
        var stack = SystemStack(state: state, mode: mode, supervisor: cpl < 3, faultCode: 0)
        try stack.push(oldCS, size: size, memory: memory)
        try stack.push(returnRIP, size: size, memory: memory)
        state.setGPR(4, stack.pointer)
        state.rip = rip
        SegmentLoader.commitCodeSegment(cs, cpl: cpl, state: state)
        return []
      }
      try callToInnerLevel(
        gate: gate, cs: cs, rip: rip, newCPL: newCPL, oldCS: oldCS, returnRIP: returnRIP, mode: mode, state: state,
        memory: memory)
    case .task(let tss):
      return try TaskSwitch.perform(to: tss, source: .call, returnRIP: returnRIP, state: state, memory: memory)
    }
    return []
  }

  /// A validated call gate: its entry size (2, 4 or 8) and parameter count.
  struct CallGate {
    var size: Int
    var parameterCount: Int
  }

  enum Target {
    case direct(SegmentCache, UInt64)
    /// Through a call gate: the gate, the new CS (RPL = new CPL), the entry point, the new CPL.
    case gate(CallGate, SegmentCache, UInt64, Int)
    /// A task switch to this TSS selector.
    case task(UInt16)
  }

  static func resolve(
    selector raw: UInt16, offset: UInt64, operandSize: Int, isCall: Bool, state: CPUState,
    memory: some SystemMemoryAccess
  ) throws(Fault) -> Target {
    let mode = OperatingMode(state)
    let mask: UInt64 = operandSize == 2 ? 0xFFFF : operandSize == 4 ? 0xFFFF_FFFF : ~0
    if mode == .real || mode == .virtual8086 {
      return .direct(
        try SegmentLoader.checkFarTransfer(selector: raw, offset: offset & mask, state: state, memory: memory),
        offset & mask)
    }
    let selector = SegmentSelector(raw)
    guard !selector.isNull else { throw .gp(0) }
    let code = SelectorErrorCode.selector(raw, external: false)
    let (descriptor, _) = try DescriptorTables.read(selector, state: state, memory: memory)
    if descriptor.isCodeOrData {
      let cs = try SegmentLoader.checkFarTransfer(selector: raw, offset: offset & mask, state: state, memory: memory)
      return .direct(cs, offset & mask)
    }
    let ia32e = mode.isIA32e
    switch descriptor.type {
    case SystemDescriptorType.callGate,
      SystemDescriptorType.callGate16 where !ia32e:
      break
    case SystemDescriptorType.tssAvailable where !ia32e, SystemDescriptorType.tss16Available where !ia32e:
      // A TSS: DPL must admit both CPL and RPL (SDM vol. 3, "Task Switching").
      guard descriptor.dpl >= state.cpl, descriptor.dpl >= selector.rpl else { throw .gp(code) }
      guard descriptor.present else { throw .np(code) }
      return .task(raw)
    case SystemDescriptorType.taskGate where !ia32e:
      let taskGate = GateDescriptor(low: descriptor.raw)
      guard taskGate.dpl >= state.cpl, taskGate.dpl >= selector.rpl else { throw .gp(code) }
      guard taskGate.present else { throw .np(code) }
      return .task(taskGate.selector)
    default:
      throw .gp(code)
    }
    // Call gate (SDM vol. 3, "Accessing a Code Segment Through a Call Gate").
    let gate: GateDescriptor
    if ia32e {
      let (wide, _) = try DescriptorTables.readSystem16(selector, state: state, memory: memory)
      gate = GateDescriptor(low: wide.low.raw, high: wide.high)
      guard gate.upperTypeIsZero else { throw .gp(code) }
    } else {
      gate = GateDescriptor(low: descriptor.raw)
    }
    let cpl = state.cpl
    guard gate.dpl >= cpl, gate.dpl >= selector.rpl else { throw .gp(code) }
    guard gate.present else { throw .np(code) }
    let csSelector = SegmentSelector(gate.selector)
    guard !csSelector.isNull else { throw .gp(0) }
    let csCode = SelectorErrorCode.selector(gate.selector, external: false)
    let (cs, csAddress) = try DescriptorTables.read(csSelector, state: state, memory: memory)
    guard cs.isCode, cs.dpl <= cpl else { throw .gp(csCode) }
    if ia32e { guard cs.long, !cs.defaultBig else { throw .gp(csCode) } }
    if !isCall && !cs.conforming && cs.dpl != cpl { throw .gp(csCode) }
    guard cs.present else { throw .np(csCode) }
    let newCPL = isCall && !cs.conforming ? cs.dpl : cpl
    let size = ia32e ? 8 : descriptor.type == SystemDescriptorType.callGate16 ? 2 : 4
    let entry = size == 2 ? gate.offset & 0xFFFF : size == 4 ? gate.offset & 0xFFFF_FFFF : gate.offset
    if ia32e {
      guard Canonical.isCanonical(entry, la57: state.cr4 & CR4.la57 != 0) else { throw .gp(0) }
    } else {
      guard entry <= UInt64(cs.limit) else { throw .gp(0) }
    }
    try DescriptorTables.markAccessed(cs, at: csAddress, memory: memory)
    var cache = SegmentLoader.accessedCache(cs, selector: csSelector.withRPL(newCPL).raw)
    if ia32e { cache.base = 0 }
    return .gate(CallGate(size: size, parameterCount: ia32e ? 0 : gate.parameterCount), cache, entry, newCPL)
  }

  /// CALL through a call gate to a more privileged non-conforming segment: new stack from the
  /// TSS, old SS:ESP and the parameters copied to it, then CS:EIP.
  static func callToInnerLevel(
    gate: CallGate, cs: SegmentCache, rip: UInt64, newCPL: Int, oldCS: UInt64, returnRIP: UInt64,
    mode: OperatingMode, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    let oldSS = state.segment(.ss)
    let oldRSP = state.gpr(4)
    var newSS: SegmentCache
    var stack: SystemStack
    if mode.isIA32e {
      let rsp = try InterruptDelivery.readTSS64(
        offset: 4 + 8 * UInt64(newCPL), state: state, memory: memory, external: false)
      guard Canonical.isCanonical(rsp, la57: state.cr4 & CR4.la57 != 0) else { throw .ss(0) }
      newSS = SegmentCache(selector: UInt16(newCPL), base: 0, limit: 0, attributes: UInt16(newCPL) << 5)
      stack = SystemStack(cache: newSS, pointer: rsp, long64: true, supervisor: newCPL < 3, faultCode: 0)
    } else {
      let (ssSelector, esp) = try InterruptDelivery.readLegacyStackPointer(
        level: newCPL, state: state, memory: memory, external: false)
      let (ss, ssAddress) = try InterruptDelivery.checkInnerStack(
        ssSelector, cpl: newCPL, state: state, memory: memory, external: false)
      try DescriptorTables.markAccessed(ss, at: ssAddress, memory: memory)
      newSS = SegmentLoader.accessedCache(ss, selector: ssSelector)
      stack = SystemStack(
        cache: newSS, pointer: esp, long64: false, supervisor: newCPL < 3,
        faultCode: SelectorErrorCode.selector(ssSelector, external: false))
    }
    try stack.push(UInt64(oldSS.selector), size: gate.size, memory: memory)
    try stack.push(oldRSP, size: gate.size, memory: memory)
    if gate.parameterCount > 0 {
      var caller = SystemStack(state: state, mode: mode, supervisor: state.cpl < 3, faultCode: 0)
      var parameters: [UInt64] = []
      for _ in 0..<gate.parameterCount { parameters.append(try caller.pop(size: gate.size, memory: memory)) }
      for parameter in parameters.reversed() { try stack.push(parameter, size: gate.size, memory: memory) }
    }
    try stack.push(oldCS, size: gate.size, memory: memory)
    try stack.push(returnRIP, size: gate.size, memory: memory)
    state.setSegment(.ss, newSS)
    state.setGPR(4, stack.pointer)
    state.rip = rip
    SegmentLoader.commitCodeSegment(cs, cpl: newCPL, state: state)
  }
}

/// Hardware task switching through a 32-bit TSS (SDM vol. 3, chapter "Task Management", section
/// "Task Switching"): by far JMP or CALL to a TSS or task gate, by an interrupt or exception
/// through a task gate, and by IRET with NT set. 16-bit TSSs are reported as
/// `UnimplementedFeature.taskSwitch`; IA-32e mode has no task switching (#GP).
///
/// Checks that fail before the outgoing state is saved fault in the old task; once the new task's
/// registers are loaded, descriptor checks fault in the new task (#TS/#NP/#SS with the
/// offending selector), as the SDM prescribes. The debug trap flag (T) is not modelled.
public enum TaskSwitch {
  /// What caused the switch.
  public enum Source: Sendable, Equatable {
    case jump
    case call
    case iret
    /// An interrupt or exception through a task gate; the error code is pushed on the new task's stack.
    case interrupt(errorCode: UInt32?)

    var nests: Bool {
      switch self {
      case .call, .interrupt: return true
      case .jump, .iret: return false
      }
    }
  }

  /// Offsets in the 32-bit TSS.
  enum Offset {
    static let link: UInt64 = 0x00
    static let cr3: UInt64 = 0x1C
    static let eip: UInt64 = 0x20
    static let eflags: UInt64 = 0x24
    static let gprs: UInt64 = 0x28
    static let segments: UInt64 = 0x48
    static let ldt: UInt64 = 0x60
  }

  /// Switches to the task whose TSS selector is `raw`. `returnRIP` is the EIP saved in the
  /// outgoing TSS. Returns the effects (a CR3 load flushes the TLB).
  @discardableResult
  public static func perform(
    to raw: UInt16, source: Source, returnRIP: UInt64, external: Bool = false, state: CPUState,
    memory: some SystemMemoryAccess
  ) throws(Fault) -> SystemEffects {
    guard !OperatingMode(state).isIA32e else { throw .gp(0) }
    let selector = SegmentSelector(raw)
    let code = SelectorErrorCode.selector(raw, external: external)
    let badSelector: Fault = source == .iret ? .ts(code) : .gp(code)
    guard !selector.isLocal, !selector.isNull else { throw badSelector }
    let (descriptor, descriptorAddress): (SegmentDescriptor, UInt64)
    do throws(Fault) {
      (descriptor, descriptorAddress) = try DescriptorTables.read(
        selector, state: state, memory: memory, external: external)
    } catch {
      if error.exceptionVector == ExceptionVector.generalProtection { throw badSelector }
      throw error
    }
    if descriptor.isCodeOrData { throw badSelector }
    switch descriptor.type {
    case SystemDescriptorType.tss16Available, SystemDescriptorType.tss16Busy:
      throw .notImplemented(.taskSwitch)
    case SystemDescriptorType.tssAvailable where source != .iret, SystemDescriptorType.tssBusy where source == .iret:
      break
    default:
      throw badSelector
    }
    guard descriptor.present else { throw .np(code) }
    guard descriptor.limit >= 0x67 else { throw .ts(code) }
    let newBase = descriptor.base
    // Read the incoming TSS completely before changing anything (faults belong to the old task).
    var image: [UInt64] = []
    image.reserveCapacity(26)
    for i in 0..<26 { image.append(try memory.readLinear(newBase &+ UInt64(4 * i), size: 4, supervisor: true)) }
    func field(_ offset: UInt64) -> UInt64 { image[Int(offset / 4)] }

    let oldTR = state.segment(.tr)
    guard UInt8(oldTR.attributes & 0xF) == SystemDescriptorType.tssBusy, oldTR.limit >= 0x67 else {
      if oldTR.attributes & 0xF == UInt16(SystemDescriptorType.tss16Busy) { throw .notImplemented(.taskSwitch) }
      throw .ts(SelectorErrorCode.selector(oldTR.selector, external: external))
    }
    // Save the outgoing task.
    var oldFlags = state.rflags
    if source == .iret { oldFlags &= ~Flags.nt }
    let oldBase = oldTR.base
    try memory.writeLinear(oldBase &+ Offset.eip, size: 4, value: returnRIP, supervisor: true)
    try memory.writeLinear(oldBase &+ Offset.eflags, size: 4, value: oldFlags, supervisor: true)
    for i in 0..<8 {
      try memory.writeLinear(oldBase &+ Offset.gprs &+ UInt64(4 * i), size: 4, value: state.gpr(i), supervisor: true)
    }
    for (i, register) in [SegmentRegister.es, .cs, .ss, .ds, .fs, .gs].enumerated() {
      let value = UInt64(state.segment(register).selector)
      try memory.writeLinear(oldBase &+ Offset.segments &+ UInt64(4 * i), size: 2, value: value, supervisor: true)
    }
    if source == .jump || source == .iret {
      try setBusy(false, selector: SegmentSelector(oldTR.selector), state: state, memory: memory)
    }
    var newFlags = field(Offset.eflags) | Flags.reserved1
    if source.nests {
      try memory.writeLinear(newBase &+ Offset.link, size: 2, value: UInt64(oldTR.selector), supervisor: true)
      newFlags |= Flags.nt
    }
    if source != .iret {
      let busyByte = (descriptor.raw >> 40) & 0xFF | 2
      try memory.writeLinear(descriptorAddress &+ 5, size: 1, value: busyByte, supervisor: true)
    }

    // Load the incoming task: from here on, faults are in the new task's context.
    var tr = descriptor.cache(selector: raw)
    tr.attributes |= 2
    state.setSegment(.tr, tr)
    state.cr0 |= CR0.ts
    var effects: SystemEffects = []
    if state.cr0 & CR0.pg != 0 {
      state.cr3 = field(Offset.cr3)
      effects.insert(.flushNonGlobalTLB)
    }
    state.rflags = newFlags
    state.rip = field(Offset.eip)
    for i in 0..<8 { state.setGPR(i, field(Offset.gprs + UInt64(4 * i))) }
    let selectors = (0..<6).map { UInt16(truncatingIfNeeded: field(Offset.segments + UInt64(4 * $0))) }
    let ldtSelector = UInt16(truncatingIfNeeded: field(Offset.ldt))
    for (i, register) in [SegmentRegister.es, .cs, .ss, .ds, .fs, .gs].enumerated() {
      state.setSegment(register, SegmentCache(selector: selectors[i], base: 0, limit: 0, attributes: 0))
    }
    state.setSegment(.ldtr, SegmentCache(selector: ldtSelector, base: 0, limit: 0, attributes: 0))
    effects.insert(.modeChanged)
    try loadTaskSegments(selectors: selectors, ldt: ldtSelector, external: external, state: state, memory: memory)
    if case .interrupt(let errorCode?) = source {
      var stack = SystemStack(state: state, mode: OperatingMode(state), supervisor: state.cpl < 3, faultCode: 0)
      try stack.push(UInt64(errorCode), size: 4, memory: memory)
      state.setGPR(4, stack.pointer)
    }
    guard state.rip <= UInt64(state.segment(.cs).limit) else { throw .gp(0) }
    return effects
  }

  /// Sets or clears the busy bit of the TSS descriptor `selector` in the GDT.
  static func setBusy(
    _ busy: Bool, selector: SegmentSelector, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    let address = try DescriptorTables.locate(selector, state: state)
    let byte = try memory.readLinear(address &+ 5, size: 1, supervisor: true)
    try memory.writeLinear(address &+ 5, size: 1, value: busy ? byte | 2 : byte & ~2, supervisor: true)
  }

  /// Loads LDTR, CS, SS, DS, ES, FS and GS of the new task with the task-switch checks
  /// (SDM vol. 3, "Task Switching", step 12 and table "Exception Conditions Checked During a
  /// Task Switch").
  static func loadTaskSegments(
    selectors: [UInt16], ldt: UInt16, external: Bool, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    // LDT.
    let ldtSelector = SegmentSelector(ldt)
    let ldtCode = SelectorErrorCode.selector(ldt, external: external)
    if ldtSelector.isNull {
      state.setSegment(.ldtr, SegmentCache(selector: ldt, base: 0, limit: 0, attributes: 0))
    } else {
      guard !ldtSelector.isLocal else { throw .ts(ldtCode) }
      let located = try lookupForTask(ldtSelector, code: ldtCode, state: state, memory: memory)
      guard !located.0.isCodeOrData, located.0.type == SystemDescriptorType.ldt, located.0.present else {
        throw .ts(ldtCode)
      }
      state.setSegment(.ldtr, located.0.cache(selector: ldt))
    }
    let registers: [SegmentRegister] = [.es, .cs, .ss, .ds, .fs, .gs]
    if state.rflags & Flags.vm != 0 {
      for (register, selector) in zip(registers, selectors) {
        state.setSegment(
          register, SegmentCache(selector: selector, base: UInt64(selector) << 4, limit: 0xFFFF, attributes: 0xF3))
      }
      state.cpl = 3
      state.codeMode = .bits16
      return
    }
    // CS decides the new CPL.
    let csRaw = selectors[1]
    let cs = SegmentSelector(csRaw)
    let csCode = SelectorErrorCode.selector(csRaw, external: external)
    guard !cs.isNull else { throw .ts(csCode) }
    let (csDescriptor, csAddress) = try lookupForTask(cs, code: csCode, state: state, memory: memory)
    guard csDescriptor.isCode else { throw .ts(csCode) }
    if csDescriptor.conforming {
      guard csDescriptor.dpl <= cs.rpl else { throw .ts(csCode) }
    } else {
      guard csDescriptor.dpl == cs.rpl else { throw .ts(csCode) }
    }
    guard csDescriptor.present else { throw .np(csCode) }
    try DescriptorTables.markAccessed(csDescriptor, at: csAddress, memory: memory)
    let cpl = cs.rpl
    SegmentLoader.commitCodeSegment(SegmentLoader.accessedCache(csDescriptor, selector: csRaw), cpl: cpl, state: state)
    // SS.
    let ssRaw = selectors[2]
    let ss = SegmentSelector(ssRaw)
    let ssCode = SelectorErrorCode.selector(ssRaw, external: external)
    guard !ss.isNull else { throw .ts(ssCode) }
    let (ssDescriptor, ssAddress) = try lookupForTask(ss, code: ssCode, state: state, memory: memory)
    guard ssDescriptor.writable, ss.rpl == cpl, ssDescriptor.dpl == cpl else { throw .ts(ssCode) }
    guard ssDescriptor.present else { throw .ss(ssCode) }
    try DescriptorTables.markAccessed(ssDescriptor, at: ssAddress, memory: memory)
    state.setSegment(.ss, SegmentLoader.accessedCache(ssDescriptor, selector: ssRaw))
    // Data segments.
    for (register, raw) in zip(registers, selectors) where register != .cs && register != .ss {
      let selector = SegmentSelector(raw)
      let dataCode = SelectorErrorCode.selector(raw, external: external)
      if selector.isNull {
        state.setSegment(register, SegmentCache(selector: raw, base: 0, limit: 0, attributes: 0))
        continue
      }
      let (d, address) = try lookupForTask(selector, code: dataCode, state: state, memory: memory)
      guard d.readable else { throw .ts(dataCode) }
      if d.isData || !d.conforming {
        guard d.dpl >= cpl, d.dpl >= selector.rpl else { throw .ts(dataCode) }
      }
      guard d.present else { throw .np(dataCode) }
      try DescriptorTables.markAccessed(d, at: address, memory: memory)
      state.setSegment(register, SegmentLoader.accessedCache(d, selector: raw))
    }
  }

  /// A descriptor lookup whose table-limit failure is #TS(selector) instead of #GP.
  static func lookupForTask(
    _ selector: SegmentSelector, code: UInt32, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) -> (SegmentDescriptor, UInt64) {
    let address: UInt64
    do throws(Fault) {
      address = try DescriptorTables.locate(selector, state: state)
    } catch {
      throw .ts(code)
    }
    return (SegmentDescriptor(raw: try memory.readLinear(address, size: 8, supervisor: true)), address)
  }
}

/// Hardware task switching through 32-bit and 16-bit TSSs (SDM vol. 3, chapter "Task Management",
/// sections "Task Switching" and "16-Bit Task-State Segment"): by far JMP or CALL to a TSS or task
/// gate, by an interrupt or exception through a task gate, and by IRET with NT set. IA-32e mode has
/// no task switching (#GP).
///
/// Checks that fail before the outgoing state is saved fault in the old task; once the new task's
/// registers are loaded, descriptor checks fault in the new task (#TS/#NP/#SS with the
/// offending selector), as the SDM prescribes. The debug trap flag (T) of the new TSS is reported
/// by `SystemUnit` (`taskDebugTrapRequested`).
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

  /// Where a TSS keeps the dynamic state a task switch saves and loads.
  struct Format {
    /// Field width in bytes (IP, FLAGS and general registers; selectors are always 2 bytes).
    let width: Int
    /// The smallest limit the TSS descriptor may have (#TS below it).
    let minimumLimit: UInt64
    /// CR3 (the 16-bit TSS has none: the task keeps the current page tables).
    let cr3: UInt64?
    let ip: UInt64
    let flags: UInt64
    /// AX/EAX, then CX, DX, BX, SP, BP, SI, DI, one field each.
    let gprs: UInt64
    /// ES, CS, SS, DS, then (32-bit only) FS and GS, one field each.
    let segments: [SegmentRegister]
    let segmentBase: UInt64
    let ldt: UInt64
    /// Fields read up front (offset 0 through the LDT selector).
    var fieldCount: Int { Int(ldt) / width + 1 }

    static let bits32 = Format(
      width: 4, minimumLimit: 0x67, cr3: 0x1C, ip: 0x20, flags: 0x24, gprs: 0x28,
      segments: [.es, .cs, .ss, .ds, .fs, .gs], segmentBase: 0x48, ldt: 0x60)
    static let bits16 = Format(
      width: 2, minimumLimit: 0x2B, cr3: nil, ip: 0x0E, flags: 0x10, gprs: 0x12,
      segments: [.es, .cs, .ss, .ds], segmentBase: 0x22, ldt: 0x2A)

    /// The format of a TSS descriptor type (available or busy), nil for other types.
    static func of(type: UInt8) -> Format? {
      switch type {
      case SystemDescriptorType.tssAvailable, SystemDescriptorType.tssBusy: return .bits32
      case SystemDescriptorType.tss16Available, SystemDescriptorType.tss16Busy: return .bits16
      default: return nil
      }
    }
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
    // JMP, CALL and interrupts need an available TSS, IRET returns to a busy one.
    let busy = descriptor.type & 2 != 0
    guard let format = Format.of(type: descriptor.type), busy == (source == .iret) else { throw badSelector }
    guard descriptor.present else { throw .np(code) }
    guard descriptor.limit >= format.minimumLimit else { throw .ts(code) }
    let newBase = descriptor.base
    // Read the incoming TSS completely before changing anything (faults belong to the old task).
    var image: [UInt64] = []
    image.reserveCapacity(format.fieldCount)
    for i in 0..<format.fieldCount {
      image.append(try memory.readLinear(newBase &+ UInt64(format.width * i), size: format.width, supervisor: true))
    }
    func field(_ offset: UInt64) -> UInt64 { image[Int(offset) / format.width] }

    let oldTR = state.segment(.tr)
    let oldType = UInt8(oldTR.attributes & 0xF)
    guard oldType == SystemDescriptorType.tssBusy || oldType == SystemDescriptorType.tss16Busy,
      let oldFormat = Format.of(type: oldType), oldTR.limit >= oldFormat.minimumLimit
    else {
      throw .ts(SelectorErrorCode.selector(oldTR.selector, external: external))
    }
    // Save the outgoing task (a 16-bit TSS keeps only the low halves of IP, FLAGS and registers).
    var oldFlags = state.rflags
    if source == .iret { oldFlags &= ~Flags.nt }
    let oldBase = oldTR.base
    let width = oldFormat.width
    try memory.writeLinear(oldBase &+ oldFormat.ip, size: width, value: returnRIP, supervisor: true)
    try memory.writeLinear(oldBase &+ oldFormat.flags, size: width, value: oldFlags, supervisor: true)
    for i in 0..<8 {
      let offset = oldBase &+ oldFormat.gprs &+ UInt64(width * i)
      try memory.writeLinear(offset, size: width, value: state.gpr(i), supervisor: true)
    }
    for (i, register) in oldFormat.segments.enumerated() {
      let value = UInt64(state.segment(register).selector)
      try memory.writeLinear(
        oldBase &+ oldFormat.segmentBase &+ UInt64(width * i), size: 2, value: value, supervisor: true)
    }
    if source == .jump || source == .iret {
      try setBusy(false, selector: SegmentSelector(oldTR.selector), state: state, memory: memory)
    }
    // A 16-bit TSS has no upper FLAGS half: VM and the other high flags end up clear.
    var newFlags = field(format.flags) | Flags.reserved1
    if source.nests {
      try memory.writeLinear(newBase, size: 2, value: UInt64(oldTR.selector), supervisor: true)
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
    if let cr3 = format.cr3, state.cr0 & CR0.pg != 0 {
      state.cr3 = field(cr3)
      effects.insert(.flushNonGlobalTLB)
    }
    state.rflags = newFlags
    state.rip = field(format.ip)
    for i in 0..<8 {
      // The SDM leaves the upper halves undefined after a 16-bit TSS load; the model sets them.
      let value = field(format.gprs + UInt64(format.width * i))
      state.setGPR(i, format.width == 2 ? 0xFFFF_0000 | value : value)
    }
    let selectors = (0..<format.segments.count).map {
      UInt16(truncatingIfNeeded: field(format.segmentBase + UInt64(format.width * $0)))
    }
    let ldtSelector = UInt16(truncatingIfNeeded: field(format.ldt))
    for (i, register) in format.segments.enumerated() {
      state.setSegment(register, SegmentCache(selector: selectors[i], base: 0, limit: 0, attributes: 0))
    }
    state.setSegment(.ldtr, SegmentCache(selector: ldtSelector, base: 0, limit: 0, attributes: 0))
    effects.formUnion([.modeChanged, .taskSwitched])
    try loadTaskSegments(
      format.segments, selectors: selectors, ldt: ldtSelector, external: external, state: state, memory: memory)
    if case .interrupt(let errorCode?) = source {
      var stack = SystemStack(state: state, mode: OperatingMode(state), supervisor: state.cpl < 3, faultCode: 0)
      try stack.push(UInt64(errorCode), size: format.width, memory: memory)
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

  /// Loads LDTR and `registers` (ES CS SS DS, and FS GS from a 32-bit TSS; CS and SS at indices 1
  /// and 2) of the new task with the task-switch checks
  /// (SDM vol. 3, "Task Switching", step 12 and table "Exception Conditions Checked During a
  /// Task Switch").
  static func loadTaskSegments(
    _ registers: [SegmentRegister], selectors: [UInt16], ldt: UInt16, external: Bool, state: CPUState,
    memory: some SystemMemoryAccess
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

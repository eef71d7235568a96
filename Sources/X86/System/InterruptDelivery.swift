/// Which kind of event is being delivered through the IDT; it decides the DPL check, the EXT bit of
/// error codes and whether RF is set in the pushed RFLAGS.
public enum EventKind: Sendable, Equatable {
  /// An exception the processor raised (fault, trap or abort).
  case exception
  /// An external interrupt or NMI.
  case external
  /// A software interrupt instruction.
  case software(SoftwareInterrupt)

  /// INT n, INT3, INTO and INT1 (ICEBP). INT n, INT3 and INTO check the gate's DPL against CPL;
  /// INT1 behaves like a hardware #DB (no DPL check, EXT set).
  public enum SoftwareInterrupt: Sendable, Equatable {
    case intN
    case int3
    case into
    case int1
  }

  /// Whether faults raised during delivery set EXT in their error code.
  var isExternal: Bool {
    if case .software(let s) = self { return s == .int1 }
    return true
  }

  /// Whether the gate DPL must be >= CPL (SDM vol. 3, "Protection of Exception- and
  /// Interrupt-Handler Procedures").
  var checksGateDPL: Bool {
    if case .software(let s) = self { return s != .int1 }
    return false
  }
}

/// The result of trying to deliver an event.
public enum DeliveryOutcome: Sendable, Equatable {
  /// The handler's context is loaded: the next instruction is the handler's first.
  case delivered
  /// Delivered through a task gate: CR3, LDTR and TR changed; flush the non-global TLB entries.
  case taskSwitched
  /// A fault while delivering a double fault: the processor shuts down (the VM's shutdown exit).
  case tripleFault
  /// The model reached a path it does not implement (for example a task gate): stop with an
  /// internal error.
  case unimplemented(UnimplementedFeature)
  /// A descriptor-table or stack access needs the embedder (MMIO): answer it, then deliver again
  /// (nothing was committed).
  case event(CPUEvent)
}

/// Exception and interrupt delivery through the legacy IDT (protected and virtual-8086 mode) and the
/// IA-32e IDT, with double-fault escalation (SDM vol. 3, chapter "Interrupt and Exception
/// Handling"). Real mode is not delivered here: the CPU core's `deliverReal` is the one routine for
/// the IVT; given a real-mode state, `deliver` answers `.unimplemented(.realModeDelivery)`.
public enum InterruptDelivery {
  /// Delivers event `vector`.
  /// - Parameters:
  ///   - errorCode: pushed when non-nil (only exceptions that define one; nil for INT n).
  ///   - pageFaultAddress: when non-nil and the event is #PF, CR2 is loaded with it. (A #PF raised
  ///     by the memory interface during delivery must have set CR2 itself: `Fault` has no address.)
  ///   - returnRIP: the RIP saved in the frame: the faulting instruction for faults, the next
  ///     instruction for traps, software interrupts and external interrupts.
  ///   - instructionRIP: the RIP saved if delivery itself faults (the start of the instruction that
  ///     raised the event); defaults to `returnRIP`.
  /// Faults during delivery escalate per SDM table "Conditions for Generating a Double Fault":
  /// benign first events let the second be delivered serially, contributory-contributory and
  /// page-fault-then-contributory/page-fault become #DF(0), a fault while delivering #DF is a
  /// triple fault.
  public static func deliver(
    vector: UInt8, errorCode: UInt32? = nil, pageFaultAddress: UInt64? = nil, kind: EventKind, returnRIP: UInt64,
    instructionRIP: UInt64? = nil, state: CPUState, memory: some SystemMemoryAccess
  ) -> DeliveryOutcome {
    if vector == ExceptionVector.pageFault, kind == .exception, let pageFaultAddress { state.cr2 = pageFaultAddress }
    var event = (vector: vector, errorCode: errorCode, kind: kind, rip: returnRIP)
    // A real chain ends within a few attempts (event, serial faults, #DF, shutdown); the bound only guards
    // against a memory interface that keeps raising benign exceptions.
    for _ in 0..<8 {
      do throws(Fault) {
        let switched = try deliverOnce(
          vector: event.vector, errorCode: event.errorCode, kind: event.kind, returnRIP: event.rip, state: state,
          memory: memory)
        return switched ? .taskSwitched : .delivered
      } catch {
        if let feature = error.unimplementedFeature { return .unimplemented(feature) }
        guard case .exception(let second, let secondCode) = error else {
          if case .event(let e) = error { return .event(e) }
          return .tripleFault
        }
        let rip = instructionRIP ?? returnRIP
        switch escalation(first: event.vector, firstKind: event.kind, second: second) {
        case .serial:
          event = (second, secondCode, .exception, rip)
        case .doubleFault:
          event = (ExceptionVector.doubleFault, 0, .exception, rip)
        case .tripleFault:
          return .tripleFault
        }
      }
    }
    return .tripleFault
  }

  /// Delivers an exception thrown by an instruction or by the system layer (`.event` faults are
  /// handed back as `.event`).
  public static func deliver(
    _ fault: Fault, returnRIP: UInt64, pageFaultAddress: UInt64? = nil, state: CPUState,
    memory: some SystemMemoryAccess
  ) -> DeliveryOutcome {
    if let feature = fault.unimplementedFeature { return .unimplemented(feature) }
    switch fault {
    case .event(let e):
      return .event(e)
    case .exception(let vector, let errorCode):
      return deliver(
        vector: vector, errorCode: errorCode, pageFaultAddress: pageFaultAddress, kind: .exception,
        returnRIP: returnRIP, state: state, memory: memory)
    }
  }

  /// Exception classes for double-fault detection.
  enum ExceptionClass {
    case benign
    case contributory
    case pageFault
    case doubleFault
  }

  static func exceptionClass(_ vector: UInt8, kind: EventKind) -> ExceptionClass {
    guard kind == .exception else { return .benign }
    switch vector {
    case 0, 10, 11, 12, 13: return .contributory
    case 14: return .pageFault
    case 8: return .doubleFault
    default: return .benign
    }
  }

  enum Escalation {
    case serial
    case doubleFault
    case tripleFault
  }

  /// What a fault (`second`) during delivery of `first` becomes.
  static func escalation(first: UInt8, firstKind: EventKind, second: UInt8) -> Escalation {
    let secondClass = exceptionClass(second, kind: .exception)
    switch exceptionClass(first, kind: firstKind) {
    case .benign:
      return .serial
    case .contributory:
      return secondClass == .contributory ? .doubleFault : .serial
    case .pageFault:
      return secondClass == .contributory || secondClass == .pageFault ? .doubleFault : .serial
    case .doubleFault:
      return secondClass == .benign ? .serial : .tripleFault
    }
  }

  /// Fault-class exceptions push RFLAGS with RF set so the faulting instruction can restart
  /// without re-triggering an instruction breakpoint (SDM vol. 3, "Resume Flag").
  static func setsResumeFlag(_ vector: UInt8, kind: EventKind) -> Bool {
    guard kind == .exception else { return false }
    switch vector {
    case 0, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19, 20, 21: return true
    default: return false
    }
  }

  /// One delivery attempt; throws the fault that interrupted it without changing CPU state
  /// (stack memory may already be written, as on hardware). Returns true when the event went
  /// through a task gate.
  @discardableResult
  static func deliverOnce(
    vector: UInt8, errorCode: UInt32?, kind: EventKind, returnRIP: UInt64, state: CPUState,
    memory: some SystemMemoryAccess
  ) throws(Fault) -> Bool {
    var flags = state.rflags
    if setsResumeFlag(vector, kind: kind) { flags |= Flags.rf }
    let mode = OperatingMode(state)
    switch mode {
    case .real:
      // Real mode has one delivery routine, `CPU.deliverReal`: it knows each CPU model's stack
      // wrap and FLAGS image (8086, 80286, 80386, host64), which this layer does not.
      throw .notImplemented(.realModeDelivery)
    case .long64, .compatibility:
      try deliverLong(
        vector: vector, errorCode: errorCode, kind: kind, flags: flags, returnRIP: returnRIP,
        state: state, memory: memory)
      return false
    case .protected, .virtual8086:
      if mode == .virtual8086, kind.checksGateDPL, state.rflags & Flags.iopl != Flags.iopl {
        // INT n in virtual-8086 mode with IOPL < 3 (no VME): #GP(0).
        throw .gp(0)
      }
      return try deliverProtected(
        vector: vector, errorCode: errorCode, kind: kind, flags: flags, returnRIP: returnRIP, state: state,
        memory: memory)
    }
  }

  // MARK: IA-32e mode

  /// IA-32e delivery (SDM vol. 3, "Exception and Interrupt Handling in 64-bit Mode"): 16-byte
  /// interrupt/trap gates to a 64-bit code segment, stack switch to RSPn or an IST stack, a
  /// 16-byte-aligned frame of SS, RSP, RFLAGS, CS, RIP and the error code.
  static func deliverLong(
    vector: UInt8, errorCode: UInt32?, kind: EventKind, flags: UInt64, returnRIP: UInt64,
    state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    let ext = kind.isExternal
    let idtCode = SelectorErrorCode.idt(vector, external: ext)
    let gate = try DescriptorTables.readGate(vector, long: true, state: state, memory: memory, external: ext)
    guard gate.isSystem, gate.type == SystemDescriptorType.interruptGate || gate.type == SystemDescriptorType.trapGate,
      gate.upperTypeIsZero
    else { throw .gp(idtCode) }
    let cpl = state.cpl
    if kind.checksGateDPL && gate.dpl < cpl { throw .gp(SelectorErrorCode.idt(vector, external: false)) }
    guard gate.present else { throw .np(idtCode) }
    let (cs, csAddress) = try checkHandlerCodeSegment(gate.selector, state: state, memory: memory, external: ext)
    guard cs.long, !cs.defaultBig else { throw .gp(SelectorErrorCode.selector(gate.selector, external: ext)) }
    let newCPL = cs.conforming ? cpl : cs.dpl
    let la57 = state.cr4 & CR4.la57 != 0
    guard Canonical.isCanonical(gate.offset, la57: la57) else { throw .gp(ext ? 1 : 0) }

    var rsp = state.gpr(4)
    var ss = state.segment(.ss)
    if gate.ist != 0 {
      rsp = try readTSS64(offset: 0x24 + 8 * UInt64(gate.ist - 1), state: state, memory: memory, external: ext)
    } else if newCPL < cpl {
      rsp = try readTSS64(offset: 4 + 8 * UInt64(newCPL), state: state, memory: memory, external: ext)
    }
    if newCPL < cpl {
      ss = SegmentCache(selector: UInt16(newCPL), base: 0, limit: 0, attributes: UInt16(newCPL) << 5)
    }
    guard Canonical.isCanonical(rsp, la57: la57) else { throw .ss(ext ? 1 : 0) }
    var stack = SystemStack(
      cache: ss, pointer: rsp & ~0xF, long64: true, supervisor: newCPL < 3, faultCode: ext ? 1 : 0)
    stack.la57 = la57
    let oldSS = state.segment(.ss).selector
    try stack.push(UInt64(oldSS), size: 8, memory: memory)
    try stack.push(state.gpr(4), size: 8, memory: memory)
    try stack.push(flags, size: 8, memory: memory)
    try stack.push(UInt64(state.segment(.cs).selector), size: 8, memory: memory)
    try stack.push(returnRIP, size: 8, memory: memory)
    if let errorCode { try stack.push(UInt64(errorCode), size: 8, memory: memory) }
    try DescriptorTables.markAccessed(cs, at: csAddress, memory: memory)

    // Commit.
    if newCPL < cpl { state.setSegment(.ss, ss) }
    var csCache = SegmentLoader.accessedCache(cs, selector: SegmentSelector(gate.selector).withRPL(newCPL).raw)
    csCache.base = 0
    state.setGPR(4, stack.pointer)
    state.rip = gate.offset
    var newFlags = flags & ~(Flags.tf | Flags.nt | Flags.rf | Flags.vm)
    if gate.type == SystemDescriptorType.interruptGate { newFlags &= ~Flags.if }
    state.rflags = newFlags
    SegmentLoader.commitCodeSegment(csCache, cpl: newCPL, state: state)
  }

  /// Reads an 8-byte field of the 64-bit TSS; #TS(TR, EXT) beyond its limit.
  static func readTSS64(
    offset: UInt64, state: CPUState, memory: some SystemMemoryAccess, external: Bool
  ) throws(Fault) -> UInt64 {
    let tr = state.segment(.tr)
    guard offset + 7 <= UInt64(tr.limit) else { throw .ts(SelectorErrorCode.selector(tr.selector, external: external)) }
    return try memory.readLinear(tr.base &+ offset, size: 8, supervisor: true)
  }

  /// The handler code-segment checks shared by both IDT formats: non-null, inside its table, a
  /// code segment with DPL <= CPL, present.
  static func checkHandlerCodeSegment(
    _ raw: UInt16, state: CPUState, memory: some SystemMemoryAccess, external: Bool
  ) throws(Fault) -> (SegmentDescriptor, UInt64) {
    let selector = SegmentSelector(raw)
    guard !selector.isNull else { throw .gp(external ? 1 : 0) }
    let code = SelectorErrorCode.selector(raw, external: external)
    let (descriptor, address) = try DescriptorTables.read(selector, state: state, memory: memory, external: external)
    guard descriptor.isCode, descriptor.dpl <= state.cpl else { throw .gp(code) }
    guard descriptor.present else { throw .np(code) }
    return (descriptor, address)
  }

  // MARK: Legacy protected mode

  /// Protected-mode delivery (SDM vol. 3, "Exception and Interrupt Handling" and "Interrupt and
  /// Exception Handling in Virtual-8086 Mode"): 16/32-bit interrupt and trap gates, stack switch
  /// through SSn:ESPn of the current TSS, and from virtual-8086 mode the extra ES/DS/FS/GS frame.
  static func deliverProtected(
    vector: UInt8, errorCode: UInt32?, kind: EventKind, flags: UInt64, returnRIP: UInt64, state: CPUState,
    memory: some SystemMemoryAccess
  ) throws(Fault) -> Bool {
    let ext = kind.isExternal
    let idtCode = SelectorErrorCode.idt(vector, external: ext)
    let gate = try DescriptorTables.readGate(vector, long: false, state: state, memory: memory, external: ext)
    guard gate.isSystem else { throw .gp(idtCode) }
    let size: Int
    switch gate.type {
    case SystemDescriptorType.interruptGate16, SystemDescriptorType.trapGate16: size = 2
    case SystemDescriptorType.interruptGate, SystemDescriptorType.trapGate: size = 4
    case SystemDescriptorType.taskGate:
      if kind.checksGateDPL && gate.dpl < state.cpl { throw .gp(SelectorErrorCode.idt(vector, external: false)) }
      guard gate.present else { throw .np(idtCode) }
      try TaskSwitch.perform(
        to: gate.selector, source: .interrupt(errorCode: errorCode), returnRIP: returnRIP, external: ext,
        state: state, memory: memory)
      return true
    default: throw .gp(idtCode)
    }
    let cpl = state.cpl
    if kind.checksGateDPL && gate.dpl < cpl { throw .gp(SelectorErrorCode.idt(vector, external: false)) }
    guard gate.present else { throw .np(idtCode) }
    let (cs, csAddress) = try checkHandlerCodeSegment(gate.selector, state: state, memory: memory, external: ext)
    let csCode = SelectorErrorCode.selector(gate.selector, external: ext)
    let fromV86 = state.rflags & Flags.vm != 0
    let entry = size == 2 ? gate.offset & 0xFFFF : gate.offset & 0xFFFF_FFFF
    guard entry <= UInt64(cs.limit) else { throw .gp(ext ? 1 : 0) }

    let newCPL: Int
    var stack: SystemStack
    var newSS: SegmentCache? = nil
    let oldSS = state.segment(.ss)
    if !cs.conforming && cs.dpl < cpl {
      newCPL = cs.dpl
      if fromV86 && newCPL != 0 { throw .gp(csCode) }
      let (ssSelector, esp) = try readLegacyStackPointer(level: newCPL, state: state, memory: memory, external: ext)
      let ss = try checkInnerStack(ssSelector, cpl: newCPL, state: state, memory: memory, external: ext)
      let innerSS = SegmentLoader.accessedCache(ss.0, selector: ssSelector)
      newSS = innerSS
      stack = SystemStack(
        cache: innerSS, pointer: esp, long64: false, supervisor: newCPL < 3,
        faultCode: SelectorErrorCode.selector(ssSelector, external: ext))
      if fromV86 {
        for register in [SegmentRegister.gs, .fs, .ds, .es] {
          try stack.push(UInt64(state.segment(register).selector), size: size, memory: memory)
        }
      }
      try stack.push(UInt64(oldSS.selector), size: size, memory: memory)
      try stack.push(state.gpr(4), size: size, memory: memory)
      try DescriptorTables.markAccessed(ss.0, at: ss.1, memory: memory)
    } else if cs.conforming || cs.dpl == cpl {
      if fromV86 { throw .gp(csCode) }
      newCPL = cpl
      stack = SystemStack(state: state, mode: .protected, supervisor: cpl < 3, faultCode: ext ? 1 : 0)
    } else {
      throw .gp(csCode)
    }
    try stack.push(flags, size: size, memory: memory)
    try stack.push(UInt64(state.segment(.cs).selector), size: size, memory: memory)
    try stack.push(returnRIP, size: size, memory: memory)
    if let errorCode { try stack.push(UInt64(errorCode), size: size, memory: memory) }
    try DescriptorTables.markAccessed(cs, at: csAddress, memory: memory)

    // Commit.
    if let newSS { state.setSegment(.ss, newSS) }
    if fromV86 {
      for register in [SegmentRegister.es, .ds, .fs, .gs] {
        state.setSegment(register, SegmentCache(selector: 0, base: 0, limit: 0, attributes: 0))
      }
    }
    state.setGPR(4, stack.pointer)
    state.rip = entry
    var newFlags = flags & ~(Flags.tf | Flags.nt | Flags.rf | Flags.vm)
    if gate.type == SystemDescriptorType.interruptGate || gate.type == SystemDescriptorType.interruptGate16 {
      newFlags &= ~Flags.if
    }
    state.rflags = newFlags
    SegmentLoader.commitCodeSegment(
      SegmentLoader.accessedCache(cs, selector: SegmentSelector(gate.selector).withRPL(newCPL).raw), cpl: newCPL,
      state: state)
    return false
  }

  /// SSn:ESPn from a 32-bit TSS (or SSn:SPn from a 16-bit one); #TS(TR, EXT) beyond its limit.
  static func readLegacyStackPointer(
    level: Int, state: CPUState, memory: some SystemMemoryAccess, external: Bool
  ) throws(Fault) -> (UInt16, UInt64) {
    let tr = state.segment(.tr)
    let is32 = tr.attributes & 0x8 != 0
    let offset: UInt64 = is32 ? UInt64(level) * 8 + 4 : UInt64(level) * 4 + 2
    let span: UInt64 = is32 ? 5 : 3
    guard offset + span <= UInt64(tr.limit) else {
      throw .ts(SelectorErrorCode.selector(tr.selector, external: external))
    }
    let pointerSize = is32 ? 4 : 2
    let sp = try memory.readLinear(tr.base &+ offset, size: pointerSize, supervisor: true)
    let ss = try memory.readLinear(tr.base &+ offset &+ UInt64(pointerSize), size: 2, supervisor: true)
    return (UInt16(truncatingIfNeeded: ss), sp)
  }

  /// The checks on the inner stack segment taken from the TSS: #TS for a bad selector or
  /// descriptor, #SS when it is not present.
  static func checkInnerStack(
    _ raw: UInt16, cpl: Int, state: CPUState, memory: some SystemMemoryAccess, external: Bool
  ) throws(Fault) -> (SegmentDescriptor, UInt64) {
    let selector = SegmentSelector(raw)
    let code = SelectorErrorCode.selector(raw, external: external)
    guard !selector.isNull else { throw .ts(external ? 1 : 0) }
    let located: (descriptor: SegmentDescriptor, address: UInt64)
    do {
      located = try DescriptorTables.read(selector, state: state, memory: memory, external: external)
    } catch {
      if error.exceptionVector == ExceptionVector.generalProtection { throw .ts(code) }
      throw error
    }
    let descriptor = located.descriptor
    guard selector.rpl == cpl, descriptor.dpl == cpl, descriptor.writable else { throw .ts(code) }
    guard descriptor.present else { throw .ss(code) }
    return (descriptor, located.address)
  }
}

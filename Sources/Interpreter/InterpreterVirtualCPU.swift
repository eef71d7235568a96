import Synchronization
import VMM
import X86

/// The `interp` engine: runs the X86 CPU model instruction by instruction ("解释执行") behind the
/// same `VirtualCPU` protocol as `kvm`, so the VMM, its devices and its exit handling cannot tell
/// the two apart except by speed.
///
/// Exits and their completions:
/// - `.io`/`.mmio` reads, `.msrRead`, `.rdtsc`: answer with `.value` (the instruction re-executes
///   with it); writes, `.msrWrite`, `.invlpg`: the instruction resumes past the access (any
///   response but `.fault` acknowledges). `.fault` raises that exception at the instruction instead.
/// - `.cpuid`: answer with `.cpuid`.
/// - `.hypercall`: VMCALL/VMMCALL (at any CPL) has retired (the VMM decodes the registers);
///   `.value(v)` puts v in RAX (`.none` leaves RAX alone).
/// - `.halt`: the vCPU stays halted (`run` keeps returning `.halt`) until an injected interrupt or
///   NMI is delivered; with IF clear it is `.shutdown(.haltWithInterruptsDisabled)` (which an NMI
///   still ends: `injectNMI`).
/// - `.exception`: a vector in `exitControls.exceptionBitmap`, not delivered; state as before the
///   faulting instruction (CR2 already loaded for #PF).
/// - `.interruptWindow`: the window the VMM asked for opened, or a MOV to CR8 retired that set it
///   below `taskPriorityThreshold`.
public final class InterpreterVirtualCPU: VirtualCPU {
  public let engineName: String
  public let cpu: CPU
  private let memoryAdapter: GuestMemoryAdapter
  private let kickRequested = Atomic<Bool>(false)
  private var pendingVector: UInt8?
  /// The NMI latch: one NMI waits here until NMIs are unblocked.
  private var pendingNMI = false
  private var interruptWindowRequested = false
  /// What the last exit waits for from `complete(_:)`.
  private var awaiting = AwaitedCompletion.nothing
  /// In the HLT state (after a `.halt` exit) until an interrupt is delivered: `run` returns `.halt`.
  private var halted = false
  /// Instructions run between checks for a kick (bounds kick latency without slowing the loop).
  private let slice: UInt64 = 4096
  /// Pause-loop exiting: a spin of at least this many PAUSEs in a row (`CPU.pauseLoopLength`),
  /// seen at the end of a window of `slice` steps, ends the run (0: off); `pauseLoopExited` says
  /// so to the VMM.
  private var pauseLoopThreshold: UInt64 = 0
  private var pauseLoopExited = false

  /// The guest's time base: `InstructionClock` (1 ns per retired instruction) when deterministic,
  /// else the host's monotonic clock. RDTSC reads it as a 1 GHz counter (plus the guest's
  /// IA32_TSC offset); hand it to timer devices so they agree with the TSC.
  public let clock: any GuestClock

  /// A vCPU on its own (outside an `InterpreterVM`), for tests that drive one vCPU directly.
  /// - Parameter deterministic: time follows this vCPU's instruction count, so runs repeat exactly.
  public convenience init(memory: GuestMemory, model: CPUModel = .host64, deterministic: Bool = false) {
    self.init(memory: memory, model: model, clock: nil, ownInstructionClock: deterministic)
  }

  /// A vCPU of a VM whose guest clock is `clock` (nil: host time).
  init(
    memory: GuestMemory, model: CPUModel, clock: InstructionClock?, ownInstructionClock: Bool = false,
    engineName: String = "interp"
  ) {
    self.engineName = engineName
    memoryAdapter = GuestMemoryAdapter(memory)
    // The machine's code-page stamps: a device or loader writing over code (through GuestMemory),
    // or another vCPU, invalidates what this vCPU decoded from it.
    let stamps = memory.codeWrites
    precondition(CodeWriteTracker.pageSlots == CodePageTable.slotCount)
    let cpu = CPU(
      model: model, memory: memoryAdapter,
      codePages: CodePageTable(generation: stamps.generations, hasCode: stamps.hasCode))
    self.cpu = cpu
    if let clock {
      self.clock = clock
    } else if ownInstructionClock {
      self.clock = InstructionClock { [unowned cpu] in cpu.instructionsRetired }
    } else {
      self.clock = MonotonicClock()
    }
    let clock = self.clock
    cpu.readTSC = { clock.nanoseconds }
    applyExitControls()
  }

  /// Shows the guest `identity` through CPUID, and follows that vendor's behaviour where Intel and
  /// AMD differ (`CPUVendor`).
  public func present(_ identity: GuestCPUIdentity) {
    cpu.system.cpuid.vendor = identity.vendor
    cpu.system.cpuid.signature = identity.signature
  }

  public var exitControls = ExitControls() {
    didSet { applyExitControls() }
  }

  /// The interpreter traps every event the controls name, but it always leaves the guest on HLT:
  /// it has no interrupt source of its own to wait for (the VMM's PIC/PIT live outside it).
  public var unsupportedExitControls: [String] { exitControls.hltExiting ? [] : ["hlt-exiting"] }

  private func applyExitControls() {
    var traps: CPUTraps = []
    if exitControls.cpuidExiting { traps.insert(.cpuid) }
    if exitControls.rdtscExiting { traps.insert(.rdtsc) }
    if exitControls.invlpgExiting { traps.insert(.invlpg) }
    cpu.traps = traps
    cpu.exceptionTrapBitmap = exitControls.exceptionBitmap
    cpu.trappedMSRReads = exitControls.msrReadExits
    cpu.trappedMSRWrites = exitControls.msrWriteExits
    installAccessResponder()
  }

  public var instructionsRetired: UInt64? { cpu.instructionsRetired }

  public var engineCounters: [EngineCounter] {
    let translator = (cpu.blockExecutor?.counters ?? []).map {
      EngineCounter(name: $0.name, value: $0.value, description: $0.description)
    }
    return [
      EngineCounter(
        name: "fast-path-instructions", value: cpu.fastPathRetired,
        description: "instructions completed by pre-resolved fast handlers"),
      EngineCounter(
        name: "decoded-instructions", value: cpu.decodeCacheFills,
        description: "instructions decoded into the decode cache"),
    ] + translator
  }

  public func registers() throws(EngineError) -> Registers { cpu.state.registers() }
  /// Also leaves the HLT state: a VMM that rewrites the registers (a reset) wants the vCPU running.
  public func setRegisters(_ registers: Registers) throws(EngineError) {
    cpu.state.load(registers)
    halted = false
  }
  public func specialRegisters() throws(EngineError) -> SpecialRegisters { cpu.state.specialRegisters() }
  /// Decoded instructions (and dbt's translations made from them) survive when only what
  /// cannot change their decoding changed: the PV monitor switches CR3, CPL and CR0.TS on every
  /// trap, bounce and `iret`, and dropping every translation each time made `dbt` retranslate
  /// the whole kernel continuously. A change of CR0 (but TS), CR4, EFER or CS's L/D bits flushes.
  public func setSpecialRegisters(_ registers: SpecialRegisters) throws(EngineError) {
    let old = cpu.state.specialRegisters()
    cpu.state.load(registers)
    let sameDecoding =
      old.cr0 & ~UInt64(8) == registers.cr0 & ~UInt64(8) && old.cr4 == registers.cr4 && old.efer == registers.efer
      && old.cs.l == registers.cs.l && old.cs.db == registers.cs.db
    if sameDecoding { cpu.invalidateTranslationsKeepingDecodedCode() } else { cpu.invalidateTLB() }
    halted = false
  }

  /// Empties the model's TLB, global entries included (what a CR4.PGE toggle does), leaving the
  /// HLT state as it is. Decoded instructions and translated blocks stay: they are checked against
  /// the physical page a lookup translates to, and writes to code pages bump its generation.
  public func invalidateTranslations() throws(EngineError) { cpu.system.mmu.tlb.flushAll() }

  /// The X86 model's RESET state; the pending interrupt, window request, HLT state and any awaited
  /// completion are dropped.
  public func reset() throws(EngineError) {
    cpu.powerOnReset()
    pendingVector = nil
    pendingNMI = false
    interruptWindowRequested = false
    awaiting = .nothing
    halted = false
  }

  public func setMSRs(_ msrs: [UInt32: UInt64]) throws(EngineError) {
    for (index, value) in msrs {
      guard cpu.writeMSR(index, value) else {
        throw EngineError("interp: cannot set MSR 0x\(String(index, radix: 16)) to 0x\(String(value, radix: 16))")
      }
    }
  }

  public var readyForInterruptInjection: Bool { pendingVector == nil && cpu.canAcceptExternalInterrupt }

  public func injectInterrupt(vector: UInt8) throws(EngineError) {
    guard pendingVector == nil else { throw EngineError("interp: an interrupt is already pending injection") }
    pendingVector = vector
  }

  /// An injected interrupt waits for `run` to deliver it (the hybrid engine must run this vCPU,
  /// even at user level, until it has).
  public var interruptPending: Bool { pendingVector != nil }

  public func requestInterruptWindow(_ enabled: Bool) { interruptWindowRequested = enabled }

  /// Latches an NMI; `run` delivers it when the model can take one (`CPU.canAcceptNMI`).
  public func injectNMI() throws(EngineError) { pendingNMI = true }

  /// The NMI latch and the model's NMI blocking, for moving the guest to or from another vCPU
  /// (the hybrid engine's sides).
  public var nmiState: NMIState {
    get { NMIState(pending: pendingNMI, blocked: cpu.nmiBlocked) }
    set {
      pendingNMI = newValue.pending
      cpu.nmiBlocked = newValue.blocked
    }
  }

  /// CR8 in the model's state.
  public var taskPriority: UInt8 {
    get { UInt8(truncatingIfNeeded: cpu.state[offset: CPUStateLayout.cr8]) }
    set { cpu.state[offset: CPUStateLayout.cr8] = UInt64(newValue & 15) }
  }

  /// The model's `CPU.taskPriorityThreshold`: a MOV to CR8 below it ends `run` with
  /// `.interruptWindow` (under dbt too: the translator runs MOV to CR8 as a callout).
  public var taskPriorityThreshold: UInt8 {
    get { UInt8(cpu.taskPriorityThreshold) }
    set { cpu.taskPriorityThreshold = UInt64(newValue) }
  }

  /// The guest TSC: the clock RDTSC reads plus the guest's IA32_TSC offset.
  public func timeStampCounter() throws(EngineError) -> UInt64 {
    clock.nanoseconds &+ cpu.state[offset: CPUStateLayout.tscOffset]
  }

  /// The TSC counts guest nanoseconds: 1 GHz.
  public var timeStampCounterFrequency: UInt64 { 1_000_000_000 }

  public func setA20Gate(_ enabled: Bool) { cpu.a20Enabled = enabled }
  public var supportsA20Masking: Bool { true }

  public func kick() { kickRequested.store(true, ordering: .releasing) }

  public func setPauseLoopExiting(_ pauses: UInt64) {
    pauseLoopThreshold = pauses
    // PAUSE is counted (off the fast path) only while someone looks at the count.
    cpu.countsPauses = pauses != 0
  }

  public func takePauseLoopExit() -> Bool {
    defer { pauseLoopExited = false }
    return pauseLoopExited
  }

  /// The VMM's lightweight exits: port accesses the CPU model offers through its access responder
  /// while it runs, before making them events.
  @exclusivity(unchecked) public var lightweightExits: (any LightweightExitHandler)? {
    didSet { installAccessResponder() }
  }

  /// Gives the CPU model a responder that offers trapped port accesses to `lightweightExits` (its
  /// answer: the value read, 0 after a write; nil: the usual exit). Reinstalled when the exit
  /// controls change, so the closure holds what it needs without looking at this vCPU.
  private func installAccessResponder() {
    guard let handler = lightweightExits else {
      cpu.accessResponder = nil
      return
    }
    let allPorts = exitControls.exitOnAllPorts
    let ports = exitControls.ioExitPorts
    // The runner clears the handler before it goes away.
    cpu.accessResponder = { [unowned(unsafe) handler] event in
      let access: PortAccess
      switch event {
      case .portIn(let port, let size):
        access = PortAccess(port: port, size: size, isWrite: false)
      case .portOut(let port, let size, let value):
        access = PortAccess(port: port, size: size, isWrite: true, value: UInt32(truncatingIfNeeded: value))
      default:
        return nil
      }
      guard allPorts || ports.contains(access.port), let response = handler.respond(to: .io(access)) else {
        return nil
      }
      // The access happened: any answer but a value reads as 0.
      if case .value(let v) = response { return v }
      return 0
    }
  }

  /// Answers the last exit. Responses an exit does not take are ignored (like `.value` after a
  /// port write), and so is a completion when no exit waits for one; `.fault` makes the exiting
  /// instruction raise that exception instead of completing.
  public func complete(_ response: ExitResponse) throws(EngineError) {
    let awaited = awaiting
    awaiting = .nothing
    if case .fault(let vector, let errorCode) = response, ![.nothing, .hypercall, .numericError].contains(awaited) {
      cpu.completeWithFault(vector: vector, errorCode: errorCode)
      return
    }
    switch awaited {
    case .nothing, .acknowledgement:
      break
    case .value:
      if case .value(let v) = response { cpu.complete(value: v) } else { cpu.complete(value: 0) }
    case .cpuid:
      if case .cpuid(let a, let b, let c, let d) = response {
        cpu.completeCPUID(eax: a, ebx: b, ecx: c, edx: d)
      } else {
        cpu.completeCPUID(eax: 0, ebx: 0, ecx: 0, edx: 0)
      }
    case .hypercall:
      if case .value(let v) = response { cpu.state.setGPR(0, v) }
    case .numericError:
      // IGNNE# asserted: the instruction runs; otherwise the CPU stays frozen until an interrupt.
      if case .value(let v) = response, v != 0 { cpu.ignoreNumericErrors = true } else { halted = true }
    }
  }

  public func run(budget: UInt64?) throws(EngineError) -> VMExit {
    var remaining = budget ?? .max
    while true {
      if kickRequested.exchange(false, ordering: .acquiring) { return .kicked }
      if pendingNMI && cpu.canAcceptNMI {
        pendingNMI = false
        halted = false
        if let event = cpu.deliverNMI(), let exit = translate(event) { return exit }
      }
      if let v = pendingVector, cpu.canAcceptExternalInterrupt {
        pendingVector = nil
        halted = false
        if let event = cpu.deliverExternalInterrupt(vector: v), let exit = translate(event) { return exit }
      }
      if interruptWindowRequested && pendingVector == nil && cpu.canAcceptExternalInterrupt {
        interruptWindowRequested = false
        return .interruptWindow
      }
      // The hybrid engine's handover: user-level code runs on its other vCPU.
      if cpu.stopsAtUserLevel && cpu.runsAtUserLevel { return .kicked }
      if halted { return .halt }
      if remaining == 0 { return .budgetExhausted }
      // The budget counts steps: retired instructions and delivered exceptions alike, so a guest
      // stuck re-faulting (each delivery faulting again) still ends its run.
      // While an NMI waits for the handler's IRET, step one instruction at a time so it is
      // delivered right at the instruction boundary after that IRET.
      let chunk = pendingNMI ? 1 : min(slice, remaining)
      let before = cpu.instructionsRetired
      let event = cpu.run(budget: chunk)
      if case .budgetExhausted = event {
        remaining -= chunk
        if pauseLoopThreshold != 0 && cpu.pauseLoopLength >= pauseLoopThreshold {
          cpu.pauseLoopLength = 0
          pauseLoopExited = true
          return .kicked
        }
        continue
      }
      let ran = cpu.instructionsRetired &- before
      remaining = ran >= remaining ? 0 : remaining - ran
      if let exit = translate(event) { return exit }
    }
  }

  /// Maps a CPU-model event to the VMM's exit model; nil for events the engine absorbs.
  private func translate(_ event: CPUEvent) -> VMExit? {
    switch event {
    case .portIn(let port, let size):
      if !exitControls.exitOnAllPorts && !exitControls.ioExitPorts.contains(port) {
        cpu.complete(value: size >= 4 ? 0xFFFF_FFFF : (1 << UInt64(size * 8)) - 1)
        return nil
      }
      awaiting = .value
      return .io(PortAccess(port: port, size: size, isWrite: false))
    case .portOut(let port, let size, let value):
      if !exitControls.exitOnAllPorts && !exitControls.ioExitPorts.contains(port) { return nil }
      awaiting = .acknowledgement
      return .io(PortAccess(port: port, size: size, isWrite: true, value: UInt32(truncatingIfNeeded: value)))
    case .mmioRead(let address, let size):
      awaiting = .value
      return .mmio(MMIOAccess(address: address, size: size, isWrite: false))
    case .mmioWrite(let address, let size, let value):
      awaiting = .acknowledgement
      return .mmio(MMIOAccess(address: address, size: size, isWrite: true, value: value))
    case .halt:
      halted = true
      // A latched NMI that can be taken now ends the HLT at once (`run` delivers it).
      if pendingNMI && cpu.canAcceptNMI { return nil }
      return cpu.state.rflags & Flags.if == 0 ? .shutdown(.haltWithInterruptsDisabled) : .halt
    case .floatingPointError:
      awaiting = .numericError
      return .floatingPointError
    case .tripleFault:
      return .shutdown(.tripleFault)
    case .exception(let vector, let errorCode):
      return .exception(vector: vector, errorCode: errorCode)
    case .hypercall:
      // VMCALL retired; the VMM reads the number and arguments from the registers
      // (`HypercallDispatcher`), and `.value(v)` completes it with v in RAX.
      awaiting = .hypercall
      return .hypercall
    case .cpuid(let leaf, let subleaf):
      awaiting = .cpuid
      return .cpuid(leaf: leaf, subleaf: subleaf)
    case .msrRead(let index):
      awaiting = .value
      return .msrRead(index: index)
    case .msrWrite(let index, let value):
      awaiting = .acknowledgement
      return .msrWrite(index: index, value: value)
    case .rdtsc:
      awaiting = .value
      return .rdtsc
    case .invlpg(let address):
      awaiting = .acknowledgement
      return .invlpg(address: address)
    case .taskPriorityLowered:
      // The VMM's local APIC may deliver what the task priority held back.
      return .interruptWindow
    case .budgetExhausted:
      return nil
    case .internalError(let reason):
      return .internalError(
        InternalErrorReport(
          reason: "interp: \(reason)", registers: cpu.state.registers(),
          specialRegisters: cpu.state.specialRegisters(), bytesAtRIP: cpu.bytesAtRIP()))
    }
  }
}

/// What an exit of the interpreter waits for before the guest continues.
enum AwaitedCompletion: Equatable {
  /// No exit is pending (or it needs no answer).
  case nothing
  /// A write was reported (port, MMIO, MSR, INVLPG): the instruction resumes past it.
  case acknowledgement
  /// A read (port, MMIO, MSR, RDTSC): `.value` is the data.
  case value
  /// A trapped CPUID: `.cpuid` is the answer.
  case cpuid
  /// A retired VMCALL: `.value` goes to RAX.
  case hypercall
  /// FERR# with CR0.NE clear: `.value(1)` is IGNNE# asserted, `.value(0)` a freeze until an interrupt.
  case numericError
}

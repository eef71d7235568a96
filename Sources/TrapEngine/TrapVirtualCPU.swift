import CKVM
import Interpreter
import KVMEngine
import TrapAndEmulate
import VMM
import X86

#if canImport(Glibc)
  import Glibc
#endif

/// The trap engine's vCPU. The VMM sees the virtual CPU (`GuestCPU`: the guest's CR0, CR3, CR4,
/// EFER, GDTR, IDTR, segments, virtual IF and CPL); the real KVM vCPU runs the guest's ring-0 and
/// ring-3 code at real ring 3 (ring compression) with the monitor's GDT, IDT and TSS, real CR3 =
/// the active shadow root, EFER.SCE clear (SYSCALL traps as #UD and is emulated) and IF always set.
///
/// Each trap arrives as the monitor stub's hypercall exit: the monitor reads the vector, error code
/// and the guest's RIP, RSP and RFLAGS from the stub's frame, then emulates (#GP, #UD: the
/// instruction on the virtual CPU, or on the X86 model when it is no privileged instruction),
/// resolves shadow faults (#PF), or reflects the exception through the guest's IDT. External
/// interrupts the VMM injects are reflected when the virtual IF allows (the VMM's local APIC has
/// applied the task priority, CR8, before it injected), NMIs whenever the guest has not blocked
/// them (`VirtualInterruptGate`).
public final class TrapVirtualCPU: VirtualCPU {
  /// `trap`.
  public let engineName = "trap"
  /// The VM.
  public let vm: TrapVirtualMachine
  /// The vCPU's index.
  public let index: Int
  /// The real vCPU.
  public let real: KVMVirtualCPU
  /// The virtual CPU.
  public let guest: GuestCPU
  /// The shadow page tables.
  public let shadows: ShadowPageTables
  /// The trapped-instruction emulator.
  public let emulator: PrivilegedInstructionEmulator
  /// The monitor's own counters.
  public private(set) var statistics = TrapEngineStatistics()

  /// What the last exit waits for in `complete`.
  private enum Awaiting {
    case nothing, portIn, modelIn, msrRead, msrWrite, hypercall, passthrough
  }

  /// RFLAGS bits the guest changes natively at real ring 3 (the rest are virtual).
  static let nativeFlags = Flags.arithmetic | Flags.df | Flags.tf | Flags.nt | Flags.id

  private var awaiting = Awaiting.nothing
  /// Injected interrupts held until the virtual IF admits them, and the NMI latch.
  private var interrupts = VirtualInterruptGate()
  private var windowRequested = false
  private var halted = false
  /// STI set the virtual IF: no interrupt before the next guest instruction retires.
  private var interruptShadow = false
  /// The guest has not run natively since the monitor last emulated or reflected something: a
  /// waiting interrupt is delivered only after it has (the next trap at another RIP, or a kick
  /// that stopped the guest inside `KVM_RUN`; not one that made `KVM_RUN` return before entering,
  /// `KVMVirtualCPU.lastRunEnteredGuest`), so a timer faster than the trap path cannot livelock
  /// the guest in its handler. STI's interrupt shadow ends the same way, at the next native run.
  private var needsProgress = false
  /// A string I/O instruction (INS, OUTS, with or without REP) at this virtual RIP runs on the
  /// model, one exit per element, until it retires.
  private var modelStringIO: UInt64?
  /// The real vCPU must be entered as it is: it was stopped (kicked) inside a monitor stub, half-way
  /// into a trap, or KVM still has to finish an MMIO or port access it emulated. `run` continues it
  /// before anything else, and no interrupt is accepted meanwhile.
  private var realInsideMonitor = false
  /// The virtual RIP the real vCPU was last entered at.
  private var entryRIP: UInt64 = 0
  /// The real vCPU's registers must be loaded from the virtual state before it runs.
  private var realRegistersStale = true
  /// The real vCPU's special registers must be loaded before it runs.
  private var realSpecialStale = true
  /// Why the guest's state cannot run here (a paging mode the shadows lack), reported by `run`.
  private var unsupportedReason: String?
  /// An exit decided while completing the last one (a fault the VMM asked for ended in shutdown).
  private var deferredExit: VMExit?
  /// Whether CR4.UMIP is set on the real vCPU (off after KVM refused it).
  private var umip: Bool
  /// The real TLB must be flushed before the guest runs again (shadow entries were removed or
  /// made read-only): loading the special registers alone does not flush it on this host.
  private var realTLBFlush = false
  /// `run` returns `.kicked` as soon as the virtual CPL is 0 (after the trap that entered the
  /// guest's kernel): the hybrid engine runs kernel code on its other vCPU. Off: no effect.
  public var stopsAtKernelEntry = false
  /// `shadows.removals` at the last real TLB flush.
  private var removalsAtFlush: UInt64 = 0
  /// The real x87/SSE state `copyRealFPUToModel` last read, until the real vCPU runs again or
  /// the model's state is loaded into it; `fpuImageAtCopy` is the model's image just after.
  private var fpuAtCopy: kvm_fpu?
  private var fpuImageAtCopy = [UInt8](repeating: 0, count: 416)
  /// Set from the environment (TRIVISOR_TRAP_TRACE): every trap is printed on standard error.
  private let trace = getenv("TRIVISOR_TRAP_TRACE") != nil

  /// vCPU `index` of `vm`.
  init(vm: TrapVirtualMachine, index: Int) throws(EngineError) {
    self.vm = vm
    self.index = index
    self.umip = vm.umip
    real = try vm.kvm.createKVMVCPU(index: index)
    guest = GuestCPU(memory: vm.memory)
    do throws(ShadowPagingError) {
      shadows = try ShadowPageTables(
        memory: vm.memory, pool: ShadowFramePool(range: vm.poolRange),
        protectedRanges: [vm.monitor.reservedRange],
        monitorRootEntries: [DeprivilegedMonitorPages.rootSlot: vm.monitor.rootEntry])
    } catch {
      throw EngineError("trap: \(error)")
    }
    emulator = PrivilegedInstructionEmulator(cpu: guest, shadows: shadows)
    var controls = ExitControls()
    controls.exitOnAllPorts = true
    real.exitControls = controls
    try real.setMSRs(DeprivilegedMonitorPages.syscallMSRs)
    // Every trap reads the real registers and most reload the special registers: through
    // kvm_run, not an ioctl each (about 7 µs each on this project's nested hosts).
    try real.setSyncedState([.registers, .specialRegisters, .events])
  }

  // MARK: Registers (the virtual CPU's)

  /// The virtual general registers, RIP and RFLAGS.
  public func registers() throws(EngineError) -> Registers { guest.state.registers() }

  /// Sets the virtual general registers, RIP and RFLAGS.
  public func setRegisters(_ registers: Registers) throws(EngineError) {
    guest.state.load(registers)
    realRegistersStale = true
    halted = false
  }

  /// The virtual segments, descriptor tables, control registers and EFER.
  public func specialRegisters() throws(EngineError) -> SpecialRegisters { guest.state.specialRegisters() }

  /// Loads the virtual special registers and activates the shadow of the new paging state.
  public func setSpecialRegisters(_ registers: SpecialRegisters) throws(EngineError) {
    guest.state.load(registers)
    guest.core.invalidateTLB()
    halted = false
    activateShadow()
  }

  /// Writes virtual MSRs (the model's).
  public func setMSRs(_ msrs: [UInt32: UInt64]) throws(EngineError) {
    for (index, value) in msrs {
      guard guest.core.writeMSR(index, value) else {
        throw EngineError("trap: cannot set MSR 0x\(String(index, radix: 16)) to 0x\(String(value, radix: 16))")
      }
    }
    activateShadow()
  }

  /// RESET: the real vCPU's and the virtual CPU's, pending events dropped.
  public func reset() throws(EngineError) {
    try real.reset()
    try real.setMSRs(DeprivilegedMonitorPages.syscallMSRs)
    fpuAtCopy = nil
    guest.core.powerOnReset()
    interrupts = VirtualInterruptGate()
    windowRequested = false
    halted = false
    interruptShadow = false
    needsProgress = false
    awaiting = .nothing
    deferredExit = nil
    realInsideMonitor = false
    modelStringIO = nil
    unsupportedReason = "paging off after reset"
    realRegistersStale = true
    realSpecialStale = true
  }

  /// Makes the shadow of the virtual paging state and CPL active (noting why it cannot be).
  private func activateShadow() {
    do throws(ShadowPagingError) {
      try emulator.activateShadow()
      unsupportedReason = nil
    } catch {
      unsupportedReason = "trap: \(error)"
    }
    realSpecialStale = true
  }

  // MARK: Interrupts

  /// The guest can take an interrupt now (virtual IF set, no interrupt shadow, nothing half-way)
  /// and none is waiting.
  public var readyForInterruptInjection: Bool { canTakeInterrupt && !interrupts.holdsInterrupt }

  private var canTakeInterrupt: Bool {
    !realInsideMonitor && guest.interruptsEnabled && !interruptShadow && (!needsProgress || halted)
      && awaiting == .nothing
  }

  /// The guest was just handed to this vCPU from elsewhere (the hybrid's return to user mode,
  /// after its kernel side retired the IRETQ or SYSRET): as after an instruction the monitor
  /// emulated, a waiting interrupt is taken only once the guest ran natively here, or a timer
  /// faster than the switch would take every tick before the first user instruction.
  public func requireNativeProgress() { needsProgress = true }

  /// Holds `vector`; `run` reflects it through the guest's IDT once the virtual IF admits it.
  public func injectInterrupt(vector: UInt8) throws(EngineError) {
    if trace { traceLine("trap: inject \(vector)") }
    interrupts.hold(vector)
  }

  /// Latches an NMI; `run` reflects it (vector 2) unless NMIs are blocked (until the guest's IRET).
  public func injectNMI() throws(EngineError) {
    if trace { traceLine("trap: inject NMI") }
    interrupts.latchNMI()
  }

  /// The NMI latch and blocking, for moving the guest to or from another vCPU (the hybrid).
  public var nmiState: NMIState {
    get { NMIState(pending: interrupts.nmiPending, blocked: interrupts.nmiBlocked) }
    set { interrupts.restoreNMI(pending: newValue.pending, blocked: newValue.blocked) }
  }

  /// Asks for `.interruptWindow` once the virtual IF allows an interrupt.
  public func requestInterruptWindow(_ enabled: Bool) { windowRequested = enabled }

  /// The virtual CR8.
  public var taskPriority: UInt8 {
    get { UInt8(truncatingIfNeeded: guest.taskPriority) }
    set { guest.state[offset: CPUStateLayout.cr8] = UInt64(newValue & 15) }
  }

  /// A MOV to CR8 (emulated: it traps at real ring 3) that leaves the virtual CR8 below it ends
  /// `run` with `.interruptWindow`, and what the VMM then injects is taken before the next guest
  /// instruction.
  public var taskPriorityThreshold: UInt8 = 0
  /// The virtual CR8 when `run` was entered: only a MOV to CR8 during the run that went below the
  /// threshold ends it.
  private var taskPriorityAtEntry: UInt64 = 0

  /// The real vCPU's TSC.
  public func timeStampCounter() throws(EngineError) -> UInt64 { try real.timeStampCounter() }
  /// The real vCPU's TSC rate.
  public var timeStampCounterFrequency: UInt64 { real.timeStampCounterFrequency }

  /// The exit controls: HLT, port and MSR exits are honoured (those instructions trap).
  public var exitControls = ExitControls() {
    didSet {
      var honoured = exitControls
      honoured.cpuidExiting = false
      honoured.rdtscExiting = false
      honoured.invlpgExiting = false
      honoured.exceptionBitmap = 0
      unsupportedExitControls = exitControls.differences(from: honoured)
    }
  }
  /// CPUID, RDTSC and INVLPG exiting and the exception bitmap (CPUID and RDTSC run natively).
  public private(set) var unsupportedExitControls: [String] = []

  /// Address line 20 stays open, as on kvm.
  public func setA20Gate(_ enabled: Bool) {}
  /// No A20 masking.
  public var supportsA20Masking: Bool { false }

  /// Interrupts `KVM_RUN`.
  public func kick() { real.kick() }

  /// Drops every shadow (they refill from the guest's tables).
  public func invalidateTranslations() throws(EngineError) {
    shadows.flush()
    guest.core.invalidateTLB()
    realSpecialStale = true
    realTLBFlush = true
  }

  /// The hybrid engine's return to user mode: its kernel side wrote guest page-table frames
  /// `frames` past the shadows' write protection. The leaves built from entries that changed are
  /// dropped (`resyncChangedEntries`), the model's TLB too, and the real TLB is flushed before the
  /// guest runs only if a shadow entry was removed or downgraded since its last flush (a switch
  /// between cached shadow roots alone needs none).
  public func resyncShadows(afterWritesTo frames: some Sequence<UInt64>) {
    for frame in frames { shadows.resyncChangedEntries(inFrame: frame) }
    _ = shadows.takeRealTLBFlush()
    guest.core.invalidateTLB()
    realTLBFlush = shadows.removals != removalsAtFlush
    realSpecialStale = true
  }

  /// Not counted: guest code runs natively.
  public var instructionsRetired: UInt64? { nil }

  /// Traps by kind, shadow faults and resyncs.
  public var engineCounters: [EngineCounter] {
    statistics.counters(shadows: shadows.statistics, emulator: emulator.statistics)
  }

  // MARK: Completion

  /// Answers the last exit.
  public func complete(_ response: ExitResponse) throws(EngineError) {
    let awaited = awaiting
    awaiting = .nothing
    switch awaited {
    case .nothing:
      break
    case .portIn:
      if case .value(let v) = response {
        emulator.completePortIn(UInt32(truncatingIfNeeded: v))
      } else {
        emulator.completePortIn(0)
      }
      realRegistersStale = true
    case .modelIn:
      if case .value(let v) = response { guest.core.complete(value: v) } else { guest.core.complete(value: 0) }
    case .msrRead, .msrWrite:
      if case .fault(let vector, let code) = response {
        deferredExit = apply(emulator.reflect(vector: vector, errorCode: code))
      } else {
        if awaited == .msrRead {
          let v: UInt64
          if case .value(let x) = response { v = x } else { v = 0 }
          guest.state.setGPR(0, v & 0xFFFF_FFFF)
          guest.state.setGPR(2, v >> 32)
        }
        guest.state.rip &+= 2
      }
      realRegistersStale = true
    case .hypercall:
      if case .value(let v) = response {
        guest.state.setGPR(0, v)
        realRegistersStale = true
      }
    case .passthrough:
      try real.complete(response)
    }
  }

  // MARK: Running

  /// Runs the guest until an exit the VMM must see.
  public func run(budget: UInt64?) throws(EngineError) -> VMExit {
    if let exit = deferredExit {
      deferredExit = nil
      return exit
    }
    taskPriorityAtEntry = guest.taskPriority
    while true {
      if !realInsideMonitor {
        if stopsAtKernelEntry && guest.state.cpl == 0 { return .kicked }
        if let reason = unsupportedReason { return .internalError(report(reason)) }
        if let rip = modelStringIO {
          if guest.state.rip == rip {
            if let exit = stepModelStringIO() { return exit }
            continue
          }
          modelStringIO = nil
        }
        // A MOV to CR8 retired below the threshold: the VMM's local APIC has an interrupt for the
        // guest now, taken before the next guest instruction.
        if guest.taskPriority < UInt64(taskPriorityThreshold) && guest.taskPriority < taskPriorityAtEntry {
          needsProgress = false
          return .interruptWindow
        }
        if interrupts.nmiDeliverable && awaiting == .nothing {
          interrupts.takeNMI()
          halted = false
          statistics.interruptsReflected += 1
          if trace { traceLine("trap: deliver NMI at rip \(String(guest.state.rip, radix: 16))") }
          if let exit = apply(emulator.reflect(vector: ExceptionVector.nmi, kind: .external)) { return exit }
          continue
        }
        if canTakeInterrupt, let v = interrupts.nextVector {
          interrupts.take(v)
          halted = false
          statistics.interruptsReflected += 1
          if trace {
            traceLine(
              "trap: deliver \(v) at rip \(String(guest.state.rip, radix: 16)) cs \(String(guest.state.segment(.cs).selector, radix: 16)) cpl \(guest.state.cpl)"
            )
          }
          if let exit = apply(emulator.reflect(vector: v, kind: .external)) { return exit }
          continue
        }
        if windowRequested && canTakeInterrupt && !interrupts.holdsInterrupt {
          windowRequested = false
          return .interruptWindow
        }
        if halted {
          if trace {
            traceLine(
              "trap: halted, IF \(guest.interruptsEnabled) window \(windowRequested) shadow \(interruptShadow) awaiting \(awaiting) CR8 \(guest.taskPriority) held \(interrupts.holdsInterrupt)"
            )
          }
          return guest.interruptsEnabled ? .halt : .shutdown(.haltWithInterruptsDisabled)
        }
        interruptShadow = false
        entryRIP = guest.state.rip
        try loadRealState()
      }
      realInsideMonitor = false
      fpuAtCopy = nil
      let exit = try real.run(budget: budget)
      switch exit {
      case .hypercall:
        let r = try real.registers()
        guard
          let stub = DeprivilegedMonitorPages.stubIndex(
            returnAddress: r.rip, trapLength: KVMHypercallTrap.instruction.count)
        else {
          // The guest's own hypercall (its hypercall page's OUT to the trap port, at ring 3).
          try real.complete(.none)
          pull(r)
          awaiting = .hypercall
          return .hypercall
        }
        try real.complete(.none)
        if let exit = try monitorTrap(stub, r) { return exit }
      case .mmio(let access):
        pull(try real.registers())
        awaiting = access.isWrite ? .nothing : .passthrough
        // KVM finishes the instruction (the value read, RIP past it) on the next KVM_RUN: until
        // then nothing may load the real vCPU's registers or deliver an interrupt.
        realInsideMonitor = true
        return exit
      case .io(let access):
        pull(try real.registers())
        awaiting = access.isWrite ? .nothing : .passthrough
        realInsideMonitor = true
        return exit
      case .kicked, .budgetExhausted:
        let r = try real.registers()
        if r.rip >= DeprivilegedMonitorPages.stubAddress(0) && r.rip < DeprivilegedMonitorPages.stackTop(index) {
          // Kicked inside a monitor stub (they run slowly at ring 0 here): the trap finishes on
          // the next run before anything else touches the real vCPU.
          realInsideMonitor = true
          return exit
        }
        if try realEventInFlight() {
          // KVM holds an exception it has not delivered yet (to a monitor stub): the real vCPU
          // must take it from exactly this state.
          realInsideMonitor = true
          return exit
        }
        pull(r)
        // The guest ran until the kick, unless the kick landed before the entry (while the monitor
        // emulated or the VMM handled the last exit): then no guest instruction ran, and taking a
        // waiting interrupt now would deliver one after another at the same instruction for as
        // long as the timer fires faster than the trap path (a handler's IRET, then a tick, again).
        if real.lastRunEnteredGuest { needsProgress = false }
        return exit
      case .internalError:
        return exit
      case .shutdown:
        return .internalError(report("trap: the real vCPU shut down (a fault inside the monitor)"))
      default:
        return .internalError(report("trap: unexpected exit of the real vCPU: \(exit.reasonName)"))
      }
    }
  }

  /// Whether KVM holds an exception or interrupt for the real vCPU that it has not delivered yet
  /// (`KVM_GET_VCPU_EVENTS`), as after a kick that landed between a fault and its delivery.
  private func realEventInFlight() throws(EngineError) -> Bool {
    let events = try real.pendingEvents()
    return events.exception.injected != 0 || events.exception.pending != 0 || events.interrupt.injected != 0
  }

  /// Takes the real vCPU's registers as the virtual ones (after an exit at the guest's own RIP).
  private func pull(_ r: Registers) {
    let flags = guest.state.rflags
    for i in 0..<16 { guest.state.setGPR(i, r[encoding: i]) }
    guest.state.rip = r.rip
    guest.state.rflags = flags & ~Self.nativeFlags | r.rflags & Self.nativeFlags | Flags.reserved1
  }

  /// Loads the real vCPU from the virtual state where it is stale.
  private func loadRealState() throws(EngineError) {
    if realTLBFlush {
      try flushRealTLB()
      realTLBFlush = false
    }
    if realSpecialStale {
      do throws(EngineError) {
        try real.setSpecialRegisters(realSpecialRegisters())
      } catch {
        guard umip else { throw error }
        umip = false
        try real.setSpecialRegisters(realSpecialRegisters())
      }
      realSpecialStale = false
    }
    if realRegistersStale {
      var r = guest.state.registers()
      r.rflags = r.rflags & Self.nativeFlags | Flags.if | Flags.reserved1
      try real.setRegisters(r)
      realRegistersStale = false
    }
  }

  /// Makes KVM forget what it derived from the shadow tables. On this host KVM itself shadows the
  /// VM's page tables (kvm_pvm: shadow paging, no EPT) and, like any shadow MMU, trusts that a
  /// write-protected table changes only by the guest's own writes, which it intercepts. The
  /// monitor edits the shadow tables from the host side, past that protection, so after removing
  /// or downgrading shadow entries it has KVM drop its own shadow pages (and the real TLB with
  /// them), which KVM rebuilds on demand: `KVMVirtualCPU.invalidateTranslations`, one move of a
  /// spare memory slot (`KVMVirtualMachine.dropShadowPageTables`; loading the special registers,
  /// even a MOV to CR3 executed at ring 0, does not). Where KVM walks the shadow tables with
  /// EPT/NPT instead, the same call reloads the real CR3, which flushes the real TLB.
  private func flushRealTLB() throws(EngineError) {
    try real.invalidateTranslations()
    statistics.realTLBFlushes += 1
    removalsAtFlush = shadows.removals
    realSpecialStale = true
  }

  /// The real vCPU's special registers: the monitor's ring-3 state on the active shadow root, with
  /// the guest's FS and GS bases and CR0.TS.
  private func realSpecialRegisters() -> SpecialRegisters {
    var s = DeprivilegedMonitorPages.specialRegisters(vcpu: index, cr3: shadows.activeRoot)
    s.efer = EFER.lme | EFER.lma | EFER.nxe
    s.cr0 |= guest.state.cr0 & CR0.ts
    if umip { s.cr4 |= CR4.umip }
    s.fs.base = guest.state.segment(.fs).base
    s.gs.base = guest.state.segment(.gs).base
    return s
  }

  // MARK: Traps

  /// Serves a trap of monitor stub `stub`; an exit for the VMM, or nil to resume.
  private func monitorTrap(_ stub: UInt64, _ r: Registers) throws(EngineError) -> VMExit? {
    statistics.traps += 1
    guard stub < 256, let frameAddress = vm.monitor.stackPhysical(vcpu: index, linear: r.rsp),
      let frame = try? vm.memory.read(frameAddress, count: 56)
    else { return .internalError(report("trap: a trap the monitor cannot read (stub \(stub))")) }
    let w = (0..<7).map { i in (0..<8).reduce(UInt64(0)) { $0 | UInt64(frame[i * 8 + $1]) << (8 * $1) } }
    guard w[3] & 3 == 3 else { return .internalError(report("trap: the monitor itself faulted (vector \(w[0]))")) }
    let vector = UInt8(truncatingIfNeeded: w[0])
    let errorCode = DeprivilegedMonitorPages.pushesErrorCode(w[0]) ? UInt32(truncatingIfNeeded: w[1]) : nil
    pull(Registers(r, rip: w[2], rsp: w[5], rflags: w[4]))
    realRegistersStale = true
    realSpecialStale = true
    if trace {
      traceLine(
        "trap: vector \(vector) code \(errorCode.map { String($0, radix: 16) } ?? "-") rip \(String(w[2], radix: 16)) cpl \(guest.state.cpl) gs \(String(guest.state.segment(.gs).base, radix: 16))"
      )
    }
    if guest.state.rip != entryRIP { needsProgress = false }
    interruptShadow = false
    defer { needsProgress = true }
    switch vector {
    case ExceptionVector.pageFault:
      statistics.pageFaultTraps += 1
      return try pageFault(errorCode: errorCode ?? 0)
    case ExceptionVector.invalidTSS, ExceptionVector.segmentNotPresent, ExceptionVector.stackFault:
      // A guest selector met the monitor's GDT (IRETQ to the guest's CS, a segment load), or a
      // genuine fault: the model runs the instruction on the guest's tables and decides.
      statistics.generalProtectionTraps += 1
      return emulateTrapped()
    case ExceptionVector.generalProtection, ExceptionVector.invalidOpcode:
      if vector == ExceptionVector.invalidOpcode {
        statistics.invalidOpcodeTraps += 1
      } else {
        statistics.generalProtectionTraps += 1
      }
      return emulateTrapped()
    case 3, 4:
      statistics.otherExceptionTraps += 1
      statistics.exceptionsReflected += 1
      return apply(emulator.reflect(vector: vector, kind: .software(vector == 3 ? .int3 : .into)))
    case 0..<32:
      statistics.otherExceptionTraps += 1
      statistics.exceptionsReflected += 1
      return apply(emulator.reflect(vector: vector, errorCode: errorCode))
    default:
      return .internalError(report("trap: unexpected vector \(vector) at the monitor"))
    }
  }

  /// A real #PF: filled from the guest's tables, a page-table write emulated, or the guest's own.
  private func pageFault(errorCode: UInt32) throws(EngineError) -> VMExit? {
    let syscallEntry = DeprivilegedMonitorPages.stubAddress(DeprivilegedMonitorPages.syscallStub)
    if guest.state.rip == syscallEntry { return syscallTrap() }
    let address = try real.specialRegisters().cr2
    let kind: MemoryAccessKind =
      errorCode & PageFault.Bit.instructionFetch != 0
      ? .execute : errorCode & PageFault.Bit.write != 0 ? .write : .read
    let resolution = shadows.handleFault(linear: address, kind: kind)
    if trace { traceLine("trap:   #PF at \(String(address, radix: 16)): \(resolution)") }
    switch resolution {
    case .filled, .spurious:
      if shadows.takeRealTLBFlush() { realTLBFlush = true }
      return nil
    case .guestFault(let fault):
      statistics.exceptionsReflected += 1
      return apply(
        emulator.reflect(
          vector: ExceptionVector.pageFault, errorCode: fault.errorCode, pageFaultAddress: fault.address))
    case .pageTableWrite:
      return apply(try onModel { emulator.executeOnModel() })
    case .monitorRegion:
      statistics.exceptionsReflected += 1
      let code =
        errorCode & (PageFault.Bit.write | PageFault.Bit.instructionFetch)
        | (guest.state.cpl == 3 ? PageFault.Bit.user : 0)
      return apply(emulator.reflect(vector: ExceptionVector.pageFault, errorCode: code, pageFaultAddress: address))
    case .forbiddenFrame(let physical):
      return .internalError(
        report("trap: the guest maps the monitor's reserved memory (0x\(String(physical, radix: 16)))"))
    }
  }

  /// SYSCALL from real ring 3 on this host: with EFER.SCE clear it still runs, jumps to the real
  /// LSTAR (the monitor's SYSCALL stub) and faults there at ring 3 with RCX and R11 written. The
  /// guest's SYSCALL is found at RCX - 2 and emulated on the virtual CPU (its STAR, LSTAR, SFMASK).
  private func syscallTrap() -> VMExit? {
    let state = guest.state
    state.rip = state.gpr(1) &- 2
    state.rflags = state.rflags & ~Self.nativeFlags | state.gpr(11) & Self.nativeFlags | Flags.reserved1
    guard let bytes = try? guestBytes(2), bytes == [0x0F, 0x05] else {
      return .internalError(report("trap: an entry at the monitor's SYSCALL stub without a SYSCALL"))
    }
    statistics.syscallTraps += 1
    return apply(emulator.emulate())
  }

  /// A #GP or #UD: the MSR exits the VMM asked for, else the emulator, else the X86 model.
  private func emulateTrapped() -> VMExit? {
    if guest.state.cpl == 0, let bytes = try? guestBytes(2) {
      let msr = UInt32(truncatingIfNeeded: guest.state.gpr(1))
      if bytes == [0x0F, 0x32], exitControls.msrReadExits.contains(msr) {
        awaiting = .msrRead
        return .msrRead(index: msr)
      }
      if bytes == [0x0F, 0x30], exitControls.msrWriteExits.contains(msr) {
        awaiting = .msrWrite
        let value = guest.state.gpr(2) << 32 | guest.state.gpr(0) & 0xFFFF_FFFF
        return .msrWrite(index: msr, value: value)
      }
    }
    // INT n traps at real ring 3 (the monitor's gates are DPL 0; this host's KVM reports it as
    // #UD): delivered through the guest's IDT as the software interrupt it is, past the instruction.
    if let bytes = try? guestBytes(2), bytes.count == 2, bytes[0] == 0xCD {
      if !gateAllowsSoftwareInterrupt(bytes[1]) {
        statistics.exceptionsReflected += 1
        return apply(
          emulator.reflect(vector: ExceptionVector.generalProtection, errorCode: UInt32(bytes[1]) << 3 | 2))
      }
      guest.state.rip &+= 2
      statistics.exceptionsReflected += 1
      return apply(emulator.reflect(vector: bytes[1], kind: .software(.intN)))
    }
    var result = emulator.emulate()
    if case .notEmulated = result.action {
      if let bytes = try? guestBytes(15), Self.isStringIO(bytes) {
        modelStringIO = guest.state.rip
        return stepModelStringIO()
      }
      do throws(EngineError) {
        result = try onModel { emulator.executeOnModel() }
      } catch {
        return .internalError(report("trap: \(error)"))
      }
    }
    return apply(result)
  }

  /// Runs `body` (an instruction on the model) with the real vCPU's x87 and SSE state loaded into
  /// the model and stored back afterwards: guest code uses XMM registers the model must see (a
  /// page-table page cleared with SSE stores).
  private func onModel(_ body: () -> EmulationResult) throws(EngineError) -> EmulationResult {
    let fpu = try copyRealFPUToModel()
    let result = body()
    try copyModelFPUToReal(fpu)
    return result
  }

  /// Copies the real vCPU's x87 and SSE state into the virtual CPU's state (the model's FXSAVE
  /// image and XMM registers) and returns the real state it read.
  @discardableResult public func copyRealFPUToModel() throws(EngineError) -> kvm_fpu {
    var fpu = try real.fpuState()
    defer {
      fpuAtCopy = fpu
      saveModelFPUImage(into: &fpuImageAtCopy)
    }
    let raw = guest.state.raw
    withUnsafeBytes(of: &fpu.xmm) {
      raw.advanced(by: CPUStateLayout.xmm).copyMemory(from: $0.baseAddress!, byteCount: 256)
    }
    withUnsafeBytes(of: &fpu.fpr) {
      raw.advanced(by: CPUStateLayout.fxLegacy + 32).copyMemory(from: $0.baseAddress!, byteCount: 128)
    }
    let legacy = raw.advanced(by: CPUStateLayout.fxLegacy)
    legacy.storeBytes(of: fpu.fcw, toByteOffset: 0, as: UInt16.self)
    legacy.storeBytes(of: fpu.fsw, toByteOffset: 2, as: UInt16.self)
    legacy.storeBytes(of: fpu.ftwx, toByteOffset: 4, as: UInt8.self)
    legacy.storeBytes(of: fpu.last_opcode, toByteOffset: 6, as: UInt16.self)
    legacy.storeBytes(of: fpu.last_ip, toByteOffset: 8, as: UInt64.self)
    legacy.storeBytes(of: fpu.last_dp, toByteOffset: 16, as: UInt64.self)
    legacy.storeBytes(of: fpu.mxcsr, toByteOffset: 24, as: UInt32.self)
    return fpu
  }

  /// Loads the virtual CPU's x87 and SSE state into the real vCPU (`base`: the rest of the real
  /// state, the real vCPU's own when nil).
  /// Nothing is loaded when the model's image is still the one `copyRealFPUToModel` made and the
  /// real vCPU has not run since: the real state is that image already (a KVM_SET_FPU saved).
  public func copyModelFPUToReal(_ base: kvm_fpu? = nil) throws(EngineError) {
    if fpuAtCopy != nil, modelFPUImageEquals(fpuImageAtCopy) { return }
    var fpu: kvm_fpu
    if let base { fpu = base } else if let fpuAtCopy { fpu = fpuAtCopy } else { fpu = try real.fpuState() }
    let raw = guest.state.raw
    let legacy = raw.advanced(by: CPUStateLayout.fxLegacy)
    withUnsafeMutableBytes(of: &fpu.xmm) {
      $0.baseAddress!.copyMemory(from: raw.advanced(by: CPUStateLayout.xmm), byteCount: 256)
    }
    withUnsafeMutableBytes(of: &fpu.fpr) {
      $0.baseAddress!.copyMemory(from: raw.advanced(by: CPUStateLayout.fxLegacy + 32), byteCount: 128)
    }
    fpu.fcw = legacy.load(fromByteOffset: 0, as: UInt16.self)
    fpu.fsw = legacy.load(fromByteOffset: 2, as: UInt16.self)
    fpu.ftwx = legacy.load(fromByteOffset: 4, as: UInt8.self)
    fpu.mxcsr = legacy.load(fromByteOffset: 24, as: UInt32.self)
    try real.setFPU(fpu)
    fpuAtCopy = nil
  }

  /// The model's x87/SSE image (the XMM registers, then the FXSAVE area's first 160 bytes) into
  /// `image`.
  private func saveModelFPUImage(into image: inout [UInt8]) {
    let raw = guest.state.raw
    image.withUnsafeMutableBytes {
      $0.baseAddress!.copyMemory(from: raw.advanced(by: CPUStateLayout.xmm), byteCount: 256)
      $0.baseAddress!.advanced(by: 256).copyMemory(from: raw.advanced(by: CPUStateLayout.fxLegacy), byteCount: 160)
    }
  }

  /// Whether the model's x87/SSE image is `image`.
  private func modelFPUImageEquals(_ image: [UInt8]) -> Bool {
    let raw = guest.state.raw
    return image.withUnsafeBytes {
      memcmp($0.baseAddress!, raw.advanced(by: CPUStateLayout.xmm), 256) == 0
        && memcmp($0.baseAddress!.advanced(by: 256), raw.advanced(by: CPUStateLayout.fxLegacy), 160) == 0
    }
  }

  /// Whether `bytes` start with INS or OUTS (after prefixes).
  static func isStringIO(_ bytes: [UInt8]) -> Bool {
    for byte in bytes {
      switch byte {
      case 0xF2, 0xF3, 0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x40...0x4F: continue
      case 0x6C...0x6F: return true
      default: return false
      }
    }
    return false
  }

  /// One step of the string I/O instruction on the model: an element's port access, or nil when
  /// the step retired without one.
  private func stepModelStringIO() -> VMExit? {
    guest.core.invalidateTLB()
    _ = guest.memory.takeWrittenRanges()
    let event = guest.core.step()
    shadows.noteGuestWrites(guest.memory.takeWrittenRanges())
    if shadows.takeRealTLBFlush() { realTLBFlush = true }
    realRegistersStale = true
    realSpecialStale = true
    switch event {
    case nil:
      return nil
    case .portOut(let port, let size, let value):
      statistics.portAccesses += 1
      return .io(PortAccess(port: port, size: size, isWrite: true, value: UInt32(truncatingIfNeeded: value)))
    case .portIn(let port, let size):
      statistics.portAccesses += 1
      awaiting = .modelIn
      return .io(PortAccess(port: port, size: size, isWrite: false))
    case .exception(let vector, let code):
      modelStringIO = nil
      return apply(emulator.reflect(vector: vector, errorCode: code))
    case let other?:
      modelStringIO = nil
      return .internalError(report("trap: string I/O on the model ended in \(other)"))
    }
  }

  /// Whether INT `vector` may use the guest's gate at the virtual CPL (inside the IDT's limit,
  /// gate DPL >= CPL); if not, the INT raises #GP(vector * 8 + 2) at itself.
  private func gateAllowsSoftwareInterrupt(_ vector: UInt8) -> Bool {
    let state = guest.state
    let offset = UInt64(vector) * 16
    guard offset + 15 <= UInt64(state.idtr.limit),
      let attributes = try? guest.system.memory.readLinear(state.idtr.base &+ offset &+ 5, size: 1, supervisor: true)
    else { return true }
    return Int((attributes >> 5) & 3) >= state.cpl
  }

  /// `count` bytes at the virtual RIP through the guest's tables.
  private func guestBytes(_ count: Int) throws -> [UInt8] {
    let state = guest.state
    let (_, host) = try guest.system.mmu.translate(state.rip, kind: .execute, user: state.cpl == 3, state: state)
    guard let host, Int(state.rip & 0xFFF) + count <= 0x1000 else { return [] }
    return (0..<count).map { host.load(fromByteOffset: $0, as: UInt8.self) }
  }

  /// Carries out what the emulator decided; an exit for the VMM, or nil to resume.
  private func apply(_ result: EmulationResult) -> VMExit? {
    realRegistersStale = true
    realSpecialStale = true
    if result.shadowRootChanged { realTLBFlush = true }
    if result.interruptShadow { interruptShadow = true }
    if result.returnedFromInterrupt { interrupts.noteInterruptReturn() }
    if trace { traceLine("trap:   -> \(result.action)") }
    switch result.action {
    case .resume:
      return nil
    case .reflect(let vector, let code):
      statistics.exceptionsReflected += 1
      return apply(emulator.reflect(vector: vector, errorCode: code))
    case .halt:
      statistics.halts += 1
      halted = true
      return nil
    case .portIn(let port, let size):
      if !exitControls.exitOnAllPorts && !exitControls.ioExitPorts.contains(port) {
        emulator.completePortIn(size >= 4 ? 0xFFFF_FFFF : (1 << UInt32(size * 8)) - 1)
        return nil
      }
      statistics.portAccesses += 1
      awaiting = .portIn
      return .io(PortAccess(port: port, size: size, isWrite: false))
    case .portOut(let port, let size, let value):
      if !exitControls.exitOnAllPorts && !exitControls.ioExitPorts.contains(port) { return nil }
      statistics.portAccesses += 1
      return .io(PortAccess(port: port, size: size, isWrite: true, value: value))
    case .tripleFault:
      return .shutdown(.tripleFault)
    case .notEmulated(let what):
      return .internalError(report("trap: cannot emulate \(what)"))
    case .unsupported(let what):
      return .internalError(report("trap: unsupported: \(what)"))
    }
  }

  /// An error report with the virtual registers and the bytes at the virtual RIP.
  private func report(_ reason: String) -> InternalErrorReport {
    InternalErrorReport(
      reason: reason, registers: guest.state.registers(), specialRegisters: guest.state.specialRegisters(),
      bytesAtRIP: guest.core.bytesAtRIP())
  }
}

/// Writes `line` and a newline to standard error (the trap trace).
func traceLine(_ line: String) {
  let bytes = Array((line + "\n").utf8)
  _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

extension Registers {
  /// `r` with RIP, RSP and RFLAGS replaced (the guest's, from a trap frame).
  init(_ r: Registers, rip: UInt64, rsp: UInt64, rflags: UInt64) {
    self = r
    self.rip = rip
    self.rsp = rsp
    self.rflags = rflags
  }
}

import Interpreter
import TrapEngine
import VMM
import X86

#if canImport(Glibc)
  import Glibc
#endif

/// The hybrid's vCPU: the guest runs on `dbt` (binary translation, exact) while its CPL is 0..2
/// and on `trap` (natively, trap-and-emulate) while it is 3. The architectural state moves at
/// each switch: the X86 model's state page (general registers, RIP, RFLAGS, segments, descriptor
/// tables, control registers, EFER, the SYSCALL MSRs, the GS bases, XMM and the FXSAVE image),
/// with the x87/SSE state taken from or loaded into the real KVM vCPU on the trap side.
///
/// - dbt to trap: the X86 model stops `run` before the first user-level instruction
///   (`CPU.stopsAtUserLevel`), after SYSRET, IRETQ or any other return to ring 3. The kernel
///   edited its page tables on the dbt side, behind the shadows' write protection: the frames the
///   shadows were built through are watched while the dbt side runs (`CPU.watchWrites(page:)`),
///   and on the way back the shadow leaves built from entries that changed in a written frame are
///   dropped (`TrapVirtualCPU.resyncShadows(afterWritesTo:)`); the rest stay.
/// - trap to dbt: the trap side stops once the virtual CPL is 0 (`stopsAtKernelEntry`), after the
///   monitor entered the kernel (SYSCALL, an exception or INT n, delivered by the X86 model's
///   system layer on the guest's IDT). Interrupts the VMM injects while the user side runs are
///   delivered by the dbt side, through the model.
///
/// RDTSC on the dbt side reads the trap side's TSC, so guest time is one clock on both sides.
/// CPUID differs: user code's runs natively (KVM's answer), kernel code's on the model.
public final class HybridVirtualCPU: VirtualCPU {
  /// `hybrid`.
  public let engineName = "hybrid"
  /// The user-mode side.
  public let trap: TrapVirtualCPU
  /// The kernel-mode side.
  public let dbt: InterpreterVirtualCPU
  /// Whether the trap side holds the guest now.
  public private(set) var onTrap = false
  /// Switches from dbt to trap (returns to user mode).
  public private(set) var switchesToUser: UInt64 = 0
  /// Switches from trap to dbt (kernel entries and interrupts).
  public private(set) var switchesToKernel: UInt64 = 0

  /// An interrupt injected while the trap side runs: the dbt side delivers it.
  private var pendingVector: UInt8?
  private var windowRequested = false
  /// Which side the last exit came from (its completion goes there).
  private var lastExitFromTrap = false
  /// Whether the dbt side's stores to the trap side's page-table frames are tracked
  /// (`watchedFrames`); without it every return to user mode drops all shadows. Off when guest
  /// RAM is so large that two of its pages share a code-page mark (`CPU.watchWrites(page:)`,
  /// more than 256 MiB), or with `TRIVISOR_HYBRID_DROP_SHADOWS` set in the environment (for
  /// comparison). Code run from outside RAM (firmware ROM) may share a mark with a RAM page.
  public let tracksPageTableWrites: Bool
  /// The guest page-table frames the trap side shadowed when the dbt side took the guest: armed
  /// with `CPU.watchWrites(page:)`, checked on the way back to user mode.
  private var watchedFrames: [UInt64] = []
  /// Page-table frames the dbt side wrote, found on returns to user mode.
  public private(set) var pageTableFramesWritten: UInt64 = 0

  /// The pair; the dbt side holds the guest first (RESET is at CPL 0).
  init(trap: TrapVirtualCPU, dbt: InterpreterVirtualCPU) {
    self.trap = trap
    self.dbt = dbt
    trap.stopsAtKernelEntry = true
    tracksPageTableWrites =
      getenv("TRIVISOR_HYBRID_DROP_SHADOWS") == nil
      && trap.shadows.memory.ramSize <= UInt64(CPU.watchedPageSlots) << 12
    dbt.cpu.stopsAtUserLevel = true
    // RDTSC on the dbt side reads the real vCPU's TSC (KVM_GET_MSRS, a system call each), less the
    // model's IA32_TSC offset it adds: one guest clock on both sides.
    dbt.cpu.readTSC = { [unowned(unsafe) trap, unowned(unsafe) dbt] in
      ((try? trap.timeStampCounter()) ?? 0) &- dbt.cpu.state[offset: CPUStateLayout.tscOffset]
    }
    applyExitControls()
  }

  /// The side that holds the guest.
  private var active: any VirtualCPU { onTrap ? trap : dbt }

  // MARK: State

  /// The active side's registers.
  public func registers() throws(EngineError) -> Registers { try active.registers() }
  /// Sets the active side's registers.
  public func setRegisters(_ registers: Registers) throws(EngineError) { try active.setRegisters(registers) }
  /// The active side's special registers.
  public func specialRegisters() throws(EngineError) -> SpecialRegisters { try active.specialRegisters() }
  /// Sets the active side's special registers.
  public func setSpecialRegisters(_ registers: SpecialRegisters) throws(EngineError) {
    try active.setSpecialRegisters(registers)
  }
  /// Sets the active side's MSRs.
  public func setMSRs(_ msrs: [UInt32: UInt64]) throws(EngineError) { try active.setMSRs(msrs) }

  /// Both sides reset; the dbt side holds the guest.
  public func reset() throws(EngineError) {
    try trap.reset()
    try dbt.reset()
    onTrap = false
    pendingVector = nil
    windowRequested = false
    trap.requestInterruptWindow(false)
    dbt.requestInterruptWindow(false)
  }

  /// Copies the architectural part of the X86 model's state page (not the translator's slots).
  static func copyState(from source: CPUState, to target: CPUState) {
    let ranges = [
      0..<CPUStateLayout.translatorExit, CPUStateLayout.segmentAccess..<CPUStateLayout.segmentAccess + 6,
      CPUStateLayout.xcr0..<CPUStateLayout.xcr0 + 8, CPUStateLayout.xmm..<CPUStateLayout.fxLegacy + 160,
    ]
    for r in ranges {
      target.raw.advanced(by: r.lowerBound).copyMemory(from: source.raw.advanced(by: r.lowerBound), byteCount: r.count)
    }
  }

  /// The guest returns to user mode: its state goes to the trap side.
  private func switchToTrap() throws(EngineError) {
    Self.copyState(from: dbt.cpu.state, to: trap.guest.state)
    trap.nmiState = dbt.nmiState
    try trap.copyModelFPUToReal()
    // The kernel may have changed its page tables on the dbt side, unseen by the shadows.
    if tracksPageTableWrites {
      var written: [UInt64] = []
      for frame in watchedFrames where dbt.cpu.pageWrittenSinceWatch(frame >> 12) { written.append(frame) }
      pageTableFramesWritten &+= UInt64(written.count)
      trap.resyncShadows(afterWritesTo: written)
    } else {
      try trap.invalidateTranslations()
    }
    try trap.setSpecialRegisters(trap.guest.state.specialRegisters())
    try trap.setRegisters(trap.guest.state.registers())
    trap.requireNativeProgress()
    trap.requestInterruptWindow(windowRequested)
    dbt.requestInterruptWindow(false)
    onTrap = true
    switchesToUser &+= 1
  }

  /// The guest enters its kernel (or an interrupt waits): its state goes to the dbt side.
  private func switchToDBT() throws(EngineError) {
    try trap.copyRealFPUToModel()
    Self.copyState(from: trap.guest.state, to: dbt.cpu.state)
    dbt.nmiState = trap.nmiState
    try dbt.setRegisters(dbt.cpu.state.registers())
    if tracksPageTableWrites {
      watchedFrames.removeAll(keepingCapacity: true)
      for frame in trap.shadows.pageTableFrames {
        watchedFrames.append(frame)
        dbt.cpu.watchWrites(page: frame >> 12)
      }
    }
    dbt.requestInterruptWindow(windowRequested)
    trap.requestInterruptWindow(false)
    onTrap = false
    switchesToKernel &+= 1
  }

  // MARK: Running

  /// Runs the guest on whichever side its CPL calls for until an exit the VMM must see.
  public func run(budget: UInt64?) throws(EngineError) -> VMExit {
    while true {
      if onTrap {
        if let v = pendingVector {
          pendingVector = nil
          try switchToDBT()
          try dbt.injectInterrupt(vector: v)
          continue
        }
        if trap.guest.state.cpl != 3 {
          try switchToDBT()
          continue
        }
        let exit = try trap.run(budget: budget)
        lastExitFromTrap = true
        if case .kicked = exit, trap.guest.state.cpl != 3 {
          try switchToDBT()
          continue
        }
        if case .interruptWindow = exit { windowRequested = false }
        return exit
      }
      // An interrupt queued on the dbt side (delivered for the user side) must be delivered there
      // before the guest goes back to user mode: switching first left it queued and never
      // delivered while user code ran, so the PIC's in-service bit stayed set and no timer tick
      // came again (the self-test hung in a user loop waiting to be preempted).
      if dbt.cpu.state.cpl == 3 && !dbt.interruptPending {
        try switchToTrap()
        continue
      }
      let exit = try dbt.run(budget: budget)
      lastExitFromTrap = false
      switch exit {
      case .kicked where dbt.cpu.state.cpl == 3:
        // Either the handover or a kick the VMM made (the dbt side reports both alike): the VMM
        // sees the exit, so a timer's kick is never swallowed; its next run goes on at ring 3.
        // A kick latched while the trap side ran (`kick()` kicks both) can end this run before
        // the interrupt queued here is delivered: the guest then stays here, and the next run
        // delivers it (switching to the trap side left it queued for good, and the VMM, seeing
        // it pending, injected nothing more: the guest spun in user mode with no timer).
        if dbt.interruptPending && dbt.cpu.canAcceptExternalInterrupt { return .kicked }
        try switchToTrap()
        return .kicked
      case .interruptWindow:
        windowRequested = false
      default:
        break
      }
      return exit
    }
  }

  /// Answers the last exit on the side it came from.
  public func complete(_ response: ExitResponse) throws(EngineError) {
    if lastExitFromTrap { try trap.complete(response) } else { try dbt.complete(response) }
  }

  // MARK: Interrupts

  /// The active side can take an interrupt now.
  public var readyForInterruptInjection: Bool {
    onTrap
      ? pendingVector == nil && !dbt.interruptPending && trap.readyForInterruptInjection
      : dbt.readyForInterruptInjection
  }

  /// Queues `vector`: on the dbt side directly, else for the dbt side to deliver on the next run.
  public func injectInterrupt(vector: UInt8) throws(EngineError) {
    if !onTrap { return try dbt.injectInterrupt(vector: vector) }
    guard pendingVector == nil else { throw EngineError("hybrid: an interrupt is already pending injection") }
    pendingVector = vector
  }

  /// Latches an NMI on the side that holds the guest; the latch and the NMI blocking move with
  /// the guest at each switch (`NMIState`). On the trap side it is reflected through the guest's
  /// IDT at the next instruction boundary the monitor sees, and the handler then runs on dbt.
  public func injectNMI() throws(EngineError) { try active.injectNMI() }

  /// Asks the active side for `.interruptWindow` (and the other after a switch).
  public func requestInterruptWindow(_ enabled: Bool) {
    windowRequested = enabled
    active.requestInterruptWindow(enabled)
  }

  /// The active side's CR8 (it moves with the state at each switch).
  public var taskPriority: UInt8 {
    get { onTrap ? trap.taskPriority : dbt.taskPriority }
    set {
      if onTrap { trap.taskPriority = newValue } else { dbt.taskPriority = newValue }
    }
  }

  /// Given to both sides (MOV to CR8 runs on the dbt side: user code cannot write CR8).
  public var taskPriorityThreshold: UInt8 = 0 {
    didSet {
      trap.taskPriorityThreshold = taskPriorityThreshold
      dbt.taskPriorityThreshold = taskPriorityThreshold
    }
  }

  /// The trap side's (the real vCPU's) TSC: the dbt side reads it too.
  public func timeStampCounter() throws(EngineError) -> UInt64 { try trap.timeStampCounter() }
  /// The real vCPU's TSC rate.
  public var timeStampCounterFrequency: UInt64 { trap.timeStampCounterFrequency }

  /// Given to both sides.
  public var exitControls = ExitControls() {
    didSet { applyExitControls() }
  }

  private func applyExitControls() {
    trap.exitControls = exitControls
    dbt.exitControls = exitControls
  }

  /// What the trap side cannot honour (it runs user code).
  public var unsupportedExitControls: [String] { trap.unsupportedExitControls }

  /// No A20 masking (the trap side has none).
  public func setA20Gate(_ enabled: Bool) {}
  /// No A20 masking.
  public var supportsA20Masking: Bool { false }

  /// Port accesses answered inside the dbt side's run.
  public var lightweightExits: (any LightweightExitHandler)? {
    get { dbt.lightweightExits }
    set { dbt.lightweightExits = newValue }
  }

  /// Kicks both sides (the caller's thread cannot know which one runs).
  public func kick() {
    trap.kick()
    dbt.kick()
  }

  /// Drops both sides' translations.
  public func invalidateTranslations() throws(EngineError) {
    try trap.invalidateTranslations()
    try dbt.invalidateTranslations()
  }

  /// Not counted: user code runs natively.
  public var instructionsRetired: UInt64? { nil }

  /// The switches, then the trap side's and the dbt side's counters.
  public var engineCounters: [EngineCounter] {
    [
      EngineCounter(
        name: "hybrid-switches-to-user", value: switchesToUser,
        description: "returns to user mode: state moved from dbt to the trap vCPU"),
      EngineCounter(
        name: "hybrid-switches-to-kernel", value: switchesToKernel,
        description: "kernel entries and interrupts: state moved from the trap vCPU to dbt"),
      EngineCounter(
        name: "hybrid-pt-frames-written", value: pageTableFramesWritten,
        description: "shadowed page-table frames the kernel side wrote (resynced on the return to user mode)"),
    ] + trap.engineCounters + dbt.engineCounters
  }
}

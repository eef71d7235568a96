/// The protocol every engine implements for one virtual CPU. The VMM drives it only through these
/// calls and the `VMExit` values `run` returns; it never sees how guest instructions execute.
///
/// Threading: all calls come from the thread that owns the vCPU, except `kick()`, which any thread
/// may call to make a running `run()` return `.kicked` promptly.
public protocol VirtualCPU: AnyObject {
  /// The engine's name as the command line spells it (`kvm`, `interp`).
  var engineName: String { get }

  /// Enters the guest and runs until the next exit. With a `budget`, the engine returns
  /// `.budgetExhausted` after about that many guest instructions (engines that cannot count
  /// instructions treat it as a hint).
  func run(budget: UInt64?) throws(EngineError) -> VMExit

  /// Hands the VMM's answer to the last exit back to the guest; call before the next `run`.
  func complete(_ response: ExitResponse) throws(EngineError)

  func registers() throws(EngineError) -> Registers
  func setRegisters(_ registers: Registers) throws(EngineError)
  func specialRegisters() throws(EngineError) -> SpecialRegisters
  func setSpecialRegisters(_ registers: SpecialRegisters) throws(EngineError)
  /// Writes model-specific registers (EFER, PAT, the SYSCALL MSRs ...) before the first run.
  func setMSRs(_ msrs: [UInt32: UInt64]) throws(EngineError)

  /// Puts the vCPU in its power-on (RESET) state for a machine reset: pending events and any
  /// injected interrupt dropped, the HLT state left, registers at their reset values (real mode at
  /// the reset vector). The VMM then loads the boot state of the reset machine.
  func reset() throws(EngineError)

  /// True when an external interrupt can be injected now (IF=1, no interrupt shadow, none pending).
  var readyForInterruptInjection: Bool { get }
  /// Queues external interrupt `vector` for delivery on the next entry.
  func injectInterrupt(vector: UInt8) throws(EngineError)
  /// Asks for a `.interruptWindow` exit as soon as the guest can take an interrupt.
  func requestInterruptWindow(_ enabled: Bool)
  /// Raises the vCPU's NMI input: the guest takes vector 2 as soon as NMIs are not blocked (they
  /// are from an NMI's delivery until the next IRET), whatever RFLAGS.IF says, and leaves HLT for
  /// it. While one waits, another is lost (the processor latches one).
  func injectNMI() throws(EngineError)

  /// CR8, the task priority (0-15), which is the local APIC's TPR bits 7:4 (SDM vol. 3, "Task
  /// Priority in IA-32e Mode"). With the VMM's interrupt controllers the run loop reads it after
  /// every exit and writes it when the guest writes the TPR through its local APIC
  /// (`VCPURunner+TaskPriority.swift`), so both must be cheap: no system call. Setting it between
  /// exits takes effect at the next entry.
  var taskPriority: UInt8 { get set }
  /// The task-priority threshold (VMX's TPR threshold, 0-15): while it is above 0, a MOV to CR8
  /// that leaves CR8 below it ends `run` with `.interruptWindow` once it retired, so the VMM can
  /// deliver the interrupt of that priority class its local APIC held back before the next guest
  /// instruction. The run loop keeps it at or below `taskPriority` at every entry.
  var taskPriorityThreshold: UInt8 { get set }

  /// The guest's time-stamp counter now (what RDTSC would read), for the local APIC's
  /// TSC-deadline timer.
  func timeStampCounter() throws(EngineError) -> UInt64
  /// The guest TSC's rate in ticks per second.
  var timeStampCounterFrequency: UInt64 { get }

  /// The exit controls in force; setting them applies what the engine can honour.
  var exitControls: ExitControls { get set }
  /// Controls the engine cannot honour as requested, by name (empty when all are honoured).
  var unsupportedExitControls: [String] { get }

  /// Opens or closes the A20 gate (keyboard controller / port 0x92). Engines that cannot mask
  /// address line 20 (KVM keeps it open, as QEMU does under KVM) ignore it and say so in
  /// `supportsA20Masking`.
  func setA20Gate(_ enabled: Bool)
  var supportsA20Masking: Bool { get }

  /// Where `run` may offer exits the VMM answers without `run` returning (`LightweightExitHandler`);
  /// the run loop sets it while it drives the vCPU. Engines that cannot offer any ignore it.
  var lightweightExits: (any LightweightExitHandler)? { get set }

  /// Makes a running or the next `run()` return `.kicked` promptly. Safe from any thread.
  func kick()

  /// Drops every translation the engine caches (its TLB and what it derived from it), as a
  /// full TLB flush does: the paravirtual ABI's flushes after page-table updates.
  func invalidateTranslations() throws(EngineError)

  /// Guest instructions retired so far, when the engine can count them.
  var instructionsRetired: UInt64? { get }

  /// The engine's own counters so far (empty when it has none).
  var engineCounters: [EngineCounter] { get }

  /// Pause-loop exiting (VirtualCPU+PauseLoop.swift): with `pauses` > 0, `run` ends as `.kicked`
  /// once the guest spins (`pauses` PAUSEs in one of the engine's windows of guest work).
  func setPauseLoopExiting(_ pauses: UInt64)
  /// True once after `run` ended because the guest spun (`setPauseLoopExiting`).
  func takePauseLoopExit() -> Bool
}

extension VirtualCPU {
  /// By default an engine offers no lightweight exits (kvm: its exits reach userspace already).
  public var lightweightExits: (any LightweightExitHandler)? {
    get { nil }
    set {}
  }
  /// By default the special registers are loaded again, which makes an engine drop its cached
  /// translations (KVM flushes when the loaded state changes the MMU's context).
  public func invalidateTranslations() throws(EngineError) { try setSpecialRegisters(try specialRegisters()) }
  /// By default an engine reports no counters of its own.
  public var engineCounters: [EngineCounter] { [] }
  /// By default an engine has no NMI input.
  public func injectNMI() throws(EngineError) { throw EngineError("\(engineName): cannot inject an NMI") }
  /// By default the TSC counts guest nanoseconds from 0 (engines override it with their own).
  public func timeStampCounter() throws(EngineError) -> UInt64 { 0 }
  /// By default 1 GHz: one tick per guest nanosecond.
  public var timeStampCounterFrequency: UInt64 { 1_000_000_000 }
}

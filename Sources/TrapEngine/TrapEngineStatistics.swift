import TrapAndEmulate
import VMM

/// What the trap engine's monitor did, for `--stats` (`VirtualCPU.engineCounters`): traps by kind,
/// how they ended, and the shadow page tables' and emulator's own counters.
public struct TrapEngineStatistics: Sendable, Equatable {
  /// Traps into the monitor (every stub entry).
  public var traps: UInt64 = 0
  /// #GP traps (privileged instructions, INT n through a monitor gate, guest selectors).
  public var generalProtectionTraps: UInt64 = 0
  /// #UD traps (SYSCALL and SYSRET with the real EFER.SCE clear, UD2 ...).
  public var invalidOpcodeTraps: UInt64 = 0
  /// SYSCALLs trapped (at the monitor's SYSCALL stub, or as #UD) and emulated.
  public var syscallTraps: UInt64 = 0
  /// #PF traps (shadow faults and the guest's own page faults).
  public var pageFaultTraps: UInt64 = 0
  /// Other exceptions trapped and reflected to the guest (#DE, #DB, #BP, #NM ...).
  public var otherExceptionTraps: UInt64 = 0
  /// Port accesses emulated and handed to the VMM.
  public var portAccesses: UInt64 = 0
  /// HLTs emulated.
  public var halts: UInt64 = 0
  /// External interrupts reflected through the guest's IDT.
  public var interruptsReflected: UInt64 = 0
  /// Real TLB flushes (the monitor's ring-0 MOV to CR3).
  public var realTLBFlushes: UInt64 = 0
  /// Guest exceptions reflected through the guest's IDT (from traps and from emulation).
  public var exceptionsReflected: UInt64 = 0

  /// All zero.
  public init() {}

  /// The counters, with the shadow paging's and the emulator's, as engine counters.
  func counters(shadows: ShadowPagingStatistics, emulator: TrapEmulationStatistics) -> [EngineCounter] {
    [
      EngineCounter(name: "trap-traps", value: traps, description: "traps into the monitor"),
      EngineCounter(name: "trap-gp", value: generalProtectionTraps, description: "#GP traps"),
      EngineCounter(name: "trap-ud", value: invalidOpcodeTraps, description: "#UD traps"),
      EngineCounter(name: "trap-syscall", value: syscallTraps, description: "SYSCALL traps"),
      EngineCounter(name: "trap-pf", value: pageFaultTraps, description: "#PF traps"),
      EngineCounter(name: "trap-other", value: otherExceptionTraps, description: "other exception traps"),
      EngineCounter(name: "trap-port-io", value: portAccesses, description: "port accesses emulated"),
      EngineCounter(name: "trap-halts", value: halts, description: "HLTs emulated"),
      EngineCounter(name: "trap-interrupts", value: interruptsReflected, description: "interrupts reflected"),
      EngineCounter(name: "trap-tlb-flushes", value: realTLBFlushes, description: "real TLB flushes"),
      EngineCounter(name: "trap-exceptions", value: exceptionsReflected, description: "exceptions reflected"),
      EngineCounter(
        name: "trap-emulated", value: emulator.instructionsEmulated, description: "trapped instructions emulated"),
      EngineCounter(
        name: "trap-model-executions", value: emulator.modelExecutions,
        description: "instructions run on the X86 model"),
      EngineCounter(name: "shadow-faults", value: shadows.shadowFaults, description: "shadow page faults"),
      EngineCounter(name: "shadow-fills", value: shadows.fills, description: "shadow entries filled"),
      EngineCounter(
        name: "shadow-guest-faults", value: shadows.guestFaults, description: "page faults reflected to the guest"),
      EngineCounter(
        name: "shadow-pt-writes", value: shadows.pageTableWrites, description: "guest page-table writes emulated"),
      EngineCounter(name: "shadow-resyncs", value: shadows.resyncs, description: "shadow entries resynced"),
      EngineCounter(name: "shadow-switches", value: shadows.contextSwitches, description: "shadow switches"),
      EngineCounter(name: "shadow-flushes", value: shadows.flushes, description: "shadow flushes"),
      EngineCounter(
        name: "shadow-unshadowed", value: shadows.unshadowedFrames,
        description: "frames unshadowed after a flood of writes"),
    ]
  }
}

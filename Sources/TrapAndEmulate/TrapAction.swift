import X86

/// What the monitor does after the emulator handled a trap.
public enum TrapAction: Sendable, Equatable {
  /// Resume the guest from the (updated) virtual state.
  case resume
  /// Reflect this exception to the guest (`PrivilegedInstructionEmulator.reflect`): the virtual RIP
  /// is still the faulting instruction's, and for a #PF the virtual CR2 holds the address.
  case reflect(vector: UInt8, errorCode: UInt32?)
  /// HLT retired: wait until a virtual interrupt can be delivered, then resume.
  case halt
  /// IN: the monitor reads `size` bytes at `port` from the VMM's port bus and passes the value to
  /// `PrivilegedInstructionEmulator.completePortIn`, which retires the instruction.
  case portIn(port: UInt16, size: Int)
  /// OUT, already retired: the monitor writes `value` (`size` bytes) to `port` on the VMM's bus.
  case portOut(port: UInt16, size: Int, value: UInt32)
  /// Reflecting an event faulted while delivering a double fault: the guest shuts down.
  case tripleFault
  /// An instruction this emulator does not handle (its mnemonic, or why): the monitor decides.
  case notEmulated(String)
  /// The guest entered a state the trap engine cannot run (a paging mode the shadows lack): stop.
  case unsupported(String)
}

/// The outcome of one emulated trap: the action and what changed for the monitor.
public struct EmulationResult: Sendable, Equatable {
  /// What to do next.
  public var action: TrapAction
  /// The real CR3 must be loaded with `ShadowPageTables.activeRoot` (another address space, the
  /// other privilege's shadow, or rebuilt shadows), or the real TLB flushed.
  public var shadowRootChanged = false
  /// The virtual CPL changed (IRETQ, SYSRET, SYSCALL, an event reflected from user mode).
  public var privilegeChanged = false
  /// Virtual interrupts may now be deliverable (IF went from 0 to 1, or CR8 went down): the
  /// monitor checks its pending virtual interrupts.
  public var interruptWindowOpened = false
  /// STI that set IF: no interrupt before the next instruction retires.
  public var interruptShadow = false
  /// IRET retired: NMIs are no longer blocked (`VirtualInterruptGate.noteInterruptReturn`).
  public var returnedFromInterrupt = false

  /// A result with `action` and nothing else changed.
  public init(action: TrapAction) { self.action = action }
}

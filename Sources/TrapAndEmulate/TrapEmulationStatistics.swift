/// What the trapped-instruction emulator did, for `--stats` next to the shadow-paging counters.
public struct TrapEmulationStatistics: Sendable, Equatable {
  /// Trapped instructions emulated (`PrivilegedInstructionEmulator.emulate`), whatever the outcome.
  public var instructionsEmulated: UInt64 = 0
  /// Of those, the ones that raised a fault for the guest (#GP, #UD, #PF ...).
  public var faultsRaised: UInt64 = 0
  /// Of those, the ones the emulator left to the monitor (not a trapping instruction).
  public var notEmulated: UInt64 = 0
  /// Instructions executed on the model for the monitor (`executeOnModel`: page-table stores).
  public var modelExecutions: UInt64 = 0
  /// Exceptions and interrupts reflected to the guest through its IDT (`reflect`).
  public var eventsReflected: UInt64 = 0

  /// All zero.
  public init() {}

  /// The counters as `name value` lines, for the `--stats` report.
  public var lines: [String] {
    [
      "trapped instructions emulated \(instructionsEmulated)", "emulation faults \(faultsRaised)",
      "not emulated \(notEmulated)", "model executions \(modelExecutions)", "events reflected \(eventsReflected)",
    ]
  }
}

/// A vCPU's NMI state outside the architectural registers: the processor's NMI latch (one NMI
/// waiting for delivery) and its blocking (an NMI was delivered and no IRET has executed since).
/// An engine that moves a running guest between two vCPUs of its own (the hybrid: a trap vCPU for
/// user code, a dbt vCPU for kernel code) carries it over, so an NMI handler entered on one side
/// still holds the next NMI back on the other, and a latched NMI is not lost in the switch.
public struct NMIState: Sendable, Equatable {
  /// An NMI waits for delivery.
  public var pending: Bool
  /// NMIs are blocked until the next IRET.
  public var blocked: Bool

  /// The state with `pending` latched and `blocked` set as given.
  public init(pending: Bool, blocked: Bool) {
    self.pending = pending
    self.blocked = blocked
  }
}

/// The trap engine's virtual interrupt acceptance: which of the events the VMM injected the
/// deprivileged guest may take now. The real vCPU always runs with IF set, so the monitor decides
/// from the virtual CPU's state, as the processor's interrupt logic would:
///
/// - External interrupts the VMM injected wait here (a virtual IRR, one bit per vector) until the
///   virtual IF is set and no interrupt shadow is in force (the monitor checks both); the highest
///   goes first. The task priority (CR8) is not looked at here: it is the VMM's local APIC's TPR,
///   and that APIC injects only what its processor priority lets through (the 8259's interrupts
///   need none), as a processor's APIC presents to the core only what its priority allows.
/// - An NMI is latched (one at a time, as the processor's NMI latch) and taken whatever the
///   virtual IF says, unless NMIs are blocked: from an NMI's delivery until the guest's next IRET.
public struct VirtualInterruptGate: Sendable, Equatable {
  /// The held external vectors: bit `v % 64` of word `v / 64`.
  private var held: [UInt64] = [0, 0, 0, 0]
  /// An NMI waits for delivery.
  public private(set) var nmiPending = false
  /// An NMI was delivered and the guest has not executed IRET since: further NMIs wait.
  public private(set) var nmiBlocked = false

  /// No event held, NMIs unblocked (the state after RESET).
  public init() {}

  /// Holds external interrupt `vector` until it can be taken (a vector already held stays one).
  public mutating func hold(_ vector: UInt8) {
    held[Int(vector >> 6)] |= 1 << UInt64(vector & 63)
  }

  /// Whether any external interrupt is held.
  public var holdsInterrupt: Bool { held.contains { $0 != 0 } }

  /// The highest held vector (the virtual IF is the caller's to check), or nil.
  public var nextVector: UInt8? {
    for word in stride(from: 3, through: 0, by: -1) where held[word] != 0 {
      return UInt8(word * 64 + 63 - held[word].leadingZeroBitCount)
    }
    return nil
  }

  /// Removes `vector` from the held ones (it is being delivered).
  public mutating func take(_ vector: UInt8) {
    held[Int(vector >> 6)] &= ~(1 << UInt64(vector & 63))
  }

  /// Sets the NMI latch and blocking as another CPU left them (the hybrid engine's hand-over).
  public mutating func restoreNMI(pending: Bool, blocked: Bool) {
    nmiPending = pending
    nmiBlocked = blocked
  }

  /// Latches an NMI (a second one while one is latched is the same one).
  public mutating func latchNMI() { nmiPending = true }

  /// Whether the latched NMI may be delivered now (NMIs are not blocked).
  public var nmiDeliverable: Bool { nmiPending && !nmiBlocked }

  /// The latched NMI is being delivered: NMIs are blocked until the next IRET.
  public mutating func takeNMI() {
    nmiPending = false
    nmiBlocked = true
  }

  /// The guest executed IRET: NMIs are no longer blocked.
  public mutating func noteInterruptReturn() { nmiBlocked = false }
}

/// The trap engine's virtual interrupt acceptance: which of the events the VMM injected the
/// deprivileged guest may take now. The real vCPU always runs with IF set, so the monitor decides
/// from the virtual CPU's state, as the processor's interrupt logic would:
///
/// - External interrupts the VMM injected wait here (a virtual IRR, one bit per vector) until the
///   virtual IF is set (the monitor checks that, with the interrupt shadow) and the vector's
///   priority class (vector bits 7:4) is above the virtual task priority (CR8): a vector whose
///   class is at or below CR8 is held, not lost, and taken once CR8 drops below its class. The
///   highest vector that may be taken goes first. CR8 = 0 holds nothing (vectors 0-15 too).
/// - An NMI is latched (one at a time, as the processor's NMI latch) and taken whatever the
///   virtual IF and CR8 say, unless NMIs are blocked: from an NMI's delivery until the guest's
///   next IRET.
public struct VirtualInterruptGate: Sendable, Equatable {
  /// The held external vectors: bit `v % 64` of word `v / 64`.
  private var held: [UInt64] = [0, 0, 0, 0]
  /// An NMI waits for delivery.
  public private(set) var nmiPending = false
  /// An NMI was delivered and the guest has not executed IRET since: further NMIs wait.
  public private(set) var nmiBlocked = false
  /// The task priority last seen by `noteTaskPriority` (to notice when it goes down).
  private var lastTaskPriority: UInt64 = 0

  /// No event held, NMIs unblocked (the state after RESET).
  public init() {}

  /// Whether an external interrupt with `vector` may be taken at task priority `taskPriority`
  /// (CR8, 0-15): its priority class must be above it. With CR8 = 0 every vector may.
  public static func admits(vector: UInt8, taskPriority: UInt64) -> Bool {
    taskPriority == 0 || UInt64(vector >> 4) > taskPriority
  }

  /// Holds external interrupt `vector` until it can be taken (a vector already held stays one).
  public mutating func hold(_ vector: UInt8) {
    held[Int(vector >> 6)] |= 1 << UInt64(vector & 63)
  }

  /// Whether any external interrupt is held, deliverable or not.
  public var holdsInterrupt: Bool { held.contains { $0 != 0 } }

  /// The highest held vector that task priority `taskPriority` admits (the virtual IF is the
  /// caller's to check), or nil.
  public func deliverableVector(taskPriority: UInt64) -> UInt8? {
    for word in stride(from: 3, through: 0, by: -1) where held[word] != 0 {
      let vector = UInt8(word * 64 + 63 - held[word].leadingZeroBitCount)
      return Self.admits(vector: vector, taskPriority: taskPriority) ? vector : nil
    }
    return nil
  }

  /// Removes `vector` from the held ones (it is being delivered).
  public mutating func take(_ vector: UInt8) {
    held[Int(vector >> 6)] &= ~(1 << UInt64(vector & 63))
  }

  /// Records the current task priority; true when it is lower than the one recorded before (held
  /// interrupts may have become deliverable).
  public mutating func noteTaskPriority(_ taskPriority: UInt64) -> Bool {
    defer { lastTaskPriority = taskPriority }
    return taskPriority < lastTaskPriority
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

import VMM

/// Guest time derived from the instruction count, for `--deterministic` runs: every retired
/// instruction advances time by a fixed amount, so timer interrupts land at the same instruction
/// on every run and the guest prints the same output.
///
/// A halted guest retires no instructions, so the run loop must move time forward itself while
/// the vCPU waits in HLT: `advance(to:)` the next timer deadline (time never goes backwards).
public final class InstructionClock: InstructionDrivenClock {
  private let source: () -> UInt64
  /// Nanoseconds per instruction (default 1: a 1 GHz, one-instruction-per-cycle machine).
  public let nanosecondsPerInstruction: UInt64
  /// Time skipped while halted.
  private var skipped: UInt64 = 0

  public init(nanosecondsPerInstruction: UInt64 = 1, instructions: @escaping () -> UInt64) {
    self.nanosecondsPerInstruction = nanosecondsPerInstruction
    self.source = instructions
  }

  public var nanoseconds: UInt64 { source() &* nanosecondsPerInstruction &+ skipped }

  public func instructions(until deadline: UInt64) -> UInt64 {
    let now = nanoseconds
    guard deadline > now else { return 1 }
    return max(1, (deadline - now + nanosecondsPerInstruction - 1) / nanosecondsPerInstruction)
  }

  /// Moves time forward to `deadline` (no effect when it already passed).
  public func advance(to deadline: UInt64) {
    let now = nanoseconds
    if deadline > now { skipped &+= deadline - now }
  }
}

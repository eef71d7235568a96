import X86

/// What a whole-program flag liveness analysis (`sbt`'s `FlagLiveness`) needs to know of one
/// block, with the back end's own rules: each instruction's flag reads and sure writes, where it
/// may leave the block, and where the block goes at its end.
extension BlockCompiler {
  /// One instruction's part in the flow of the arithmetic flags (RFLAGS bits).
  package struct FlagStep: Equatable, Sendable {
    /// Flags it reads.
    package var reads: UInt64
    /// Flags it always writes (one it may keep counts as not written).
    package var writes: UInt64
    /// It may side-exit before it runs, to the interpreter (every flag live before it).
    package var mayLeaveBefore: Bool
    /// The target of a conditional branch taken out of the middle of the block after it.
    package var takenTo: UInt64?

    /// A step with every field given.
    package init(reads: UInt64, writes: UInt64, mayLeaveBefore: Bool = false, takenTo: UInt64? = nil) {
      self.reads = reads
      self.writes = writes
      self.mayLeaveBefore = mayLeaveBefore
      self.takenTo = takenTo
    }
  }

  /// `block`'s instructions as flag steps, and where it goes at its end: the RIPs of its direct
  /// successors, nil for a place not known ahead of time (RET, an indirect branch, a callout or a
  /// privilege transfer: every flag counts as live there).
  package static func flagFlow(_ block: GuestBlock) -> (steps: [FlagStep], successors: [UInt64?]) {
    var steps: [FlagStep] = []
    let n = block.instructions.count
    for (k, g) in block.instructions.enumerated() {
      let e = flagEffect(g)
      let taken = g.form == .jcc && k < n - 1 ? staticTarget(g, mode: block.mode) : nil
      steps.append(FlagStep(reads: e.reads, writes: e.writes, mayLeaveBefore: maySideExit(g), takenTo: taken))
    }
    guard let last = block.instructions.last else { return ([], []) }
    switch last.form {
    case .jcc: return (steps, [last.nextRIP, staticTarget(last, mode: block.mode)])
    case .jmpRel, .callRel: return (steps, [staticTarget(last, mode: block.mode)])
    default:
      // A block cut short (its length, the page's end) falls through; any other end goes where
      // only run time knows.
      return (steps, endsBlock(last) ? [nil] : [last.nextRIP])
    }
  }
}

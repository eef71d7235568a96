import Translator

/// Flag liveness across blocks and whole functions, from the control-flow graph discovery found
/// (issue #18: an optimization too slow for run time): for each block, which arithmetic flags
/// (RFLAGS bits CF PF AF ZF SF OF) some path from its start reads before writing them. A successor
/// outside the graph, an indirect branch, a return, a callout, a possible side exit and the end of
/// the known code count as reading every flag. The least fixed point of the usual backward
/// equations, computed by rounds until nothing changes.
///
/// The back end uses it at block exits (`BlockCompiler.CrossBlockFlags`): a direct branch to a
/// block of the same page whose flags are all dead there leaves without capturing the guest's
/// flags from the host's RFLAGS, to that block's host-flags entry.
package struct FlagLiveness {
  /// Every arithmetic flag (what an unknown successor reads).
  package static let all: UInt64 = 0x8D5

  /// One block of the graph: its steps and successors (`BlockCompiler.flagFlow`).
  package struct Node: Sendable {
    /// Its instructions in order.
    package var steps: [BlockCompiler.FlagStep]
    /// Where it goes at its end; nil: not known ahead of time.
    package var successors: [UInt64?]

    /// A node with the given steps and successors.
    package init(steps: [BlockCompiler.FlagStep], successors: [UInt64?]) {
      self.steps = steps
      self.successors = successors
    }

    /// The node of a discovered block.
    package init(_ block: GuestBlock) {
      (steps, successors) = BlockCompiler.flagFlow(block)
    }
  }

  /// The flags live at each block's start, by the block's RIP.
  package private(set) var liveIn: [UInt64: UInt64]
  /// Rounds over the graph until the result held.
  package private(set) var rounds = 0

  /// The analysis of `graph` (blocks by start RIP).
  package init(_ graph: [UInt64: Node]) {
    liveIn = graph.mapValues { _ in 0 }
    // Blocks in decreasing RIP order: code mostly flows forward, so most successors come first.
    let order = graph.keys.sorted(by: >)
    var changed = true
    while changed {
      changed = false
      rounds += 1
      for rip in order {
        let new = Self.transfer(graph[rip]!, liveIn)
        if new != liveIn[rip] {
          liveIn[rip] = new
          changed = true
        }
      }
    }
  }

  /// The flags live at `rip`: those `liveIn` has, every flag for a place outside the graph.
  package func live(at rip: UInt64?) -> UInt64 {
    guard let rip, let l = liveIn[rip] else { return Self.all }
    return l
  }

  /// The flags live at the end of `node` (the union over its successors).
  package static func liveOut(_ node: Node, _ liveIn: [UInt64: UInt64]) -> UInt64 {
    node.successors.reduce(0) { acc, s in acc | (s.flatMap { liveIn[$0] } ?? all) }
  }

  /// The flags live at `node`'s start given those live at every block's start.
  static func transfer(_ node: Node, _ liveIn: [UInt64: UInt64]) -> UInt64 {
    var live = liveOut(node, liveIn)
    for step in node.steps.reversed() {
      if let t = step.takenTo { live |= liveIn[t] ?? all }
      live = (live & ~step.writes) | step.reads
      if step.mayLeaveBefore { live = all }
    }
    return live
  }
}

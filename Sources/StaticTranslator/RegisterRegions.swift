import Translator

/// Register allocation across blocks (issue #18: an optimization too slow for run time): over the
/// control-flow graph discovery found, each loop that spans two or more blocks of one page (a
/// strongly connected set of blocks, a call inside it counting as reaching its return site),
/// together with the functions it calls directly in the same page, becomes a *register region*.
/// Its blocks share one assignment of guest registers to the back end's six cache registers, the
/// ones the region uses most; a direct branch between two of them keeps those registers in host
/// registers (`BlockCompiler.RegisterRegion`): no write-back before it, no loads after it.
///
/// A block that loops to itself keeps its own choice in `dbt` (its hot loop runs in one block):
/// it joins a region only when the region's assignment holds every register it would cache on
/// its own, so that its inner loop never runs with fewer registers than `dbt` gives it.
package struct RegisterRegions {
  /// A block of the graph, as the analysis sees it.
  package struct Node: Sendable {
    /// Guest register uses (`BlockCompiler.registerUses`).
    package var uses: [Int]
    /// Guest registers written (bit per register).
    package var written: UInt32
    /// What the block caches on its own (`BlockCompiler.ownCacheChoice`).
    package var ownChoice: [Int]
    /// It ends in a direct branch to its own start.
    package var loopsToItself: Bool
    /// RIPs it leaves for by direct branches (both ways of Jcc, JMP, CALL's target, the next
    /// instruction, conditional branches out of its middle).
    package var successors: [UInt64]
    /// The return site of the CALL it ends with, if any (reached later through RET: no link).
    package var returnSite: UInt64?

    /// The node of a discovered block.
    package init(_ block: GuestBlock) {
      uses = BlockCompiler.registerUses(block)
      written = BlockCompiler.registersWritten(block)
      ownChoice = BlockCompiler.ownCacheChoice(block)
      loopsToItself = BlockCompiler.loopsToItself(block)
      let flow = BlockCompiler.flagFlow(block)
      successors = flow.successors.compactMap { $0 } + flow.steps.compactMap(\.takenTo)
      if let last = block.instructions.last, last.form == .callRel { returnSite = last.nextRIP }
    }

    /// A node with every field given (tests).
    package init(
      uses: [Int], written: UInt32, ownChoice: [Int], loopsToItself: Bool, successors: [UInt64], returnSite: UInt64?
    ) {
      self.uses = uses
      self.written = written
      self.ownChoice = ownChoice
      self.loopsToItself = loopsToItself
      self.successors = successors
      self.returnSite = returnSite
    }
  }

  /// Each region block's decision, by RIP; blocks in no region are absent.
  package private(set) var decisions: [UInt64: BlockCompiler.RegisterRegion] = [:]
  /// The regions found: their blocks' RIPs, sorted.
  package private(set) var regions: [[UInt64]] = []

  /// Callee blocks join a region only while it has fewer blocks than this (a loop itself is
  /// never cut).
  static let maximumBlocks = 64

  /// The regions of `graph` (blocks by start RIP).
  package init(_ graph: [UInt64: Node]) {
    var pages: [UInt64: [UInt64]] = [:]
    for rip in graph.keys { pages[rip & ~0xFFF, default: []].append(rip) }
    for page in pages.keys.sorted() {
      regionsOfPage(pages[page]!.sorted(), graph)
    }
  }

  /// Finds the regions of one page's blocks.
  private mutating func regionsOfPage(_ rips: [UInt64], _ graph: [UInt64: Node]) {
    let inPage = Set(rips)
    func edges(_ rip: UInt64, returns: Bool) -> [UInt64] {
      let n = graph[rip]!
      var e = n.successors
      if returns, let r = n.returnSite { e.append(r) }
      return e.filter { inPage.contains($0) }
    }
    var claimed = Set<UInt64>()
    for scc in Self.stronglyConnected(rips, edges: { edges($0, returns: true) }) where scc.count >= 2 {
      guard scc.allSatisfy({ !claimed.contains($0) }) else { continue }
      // The loop and what it calls in the page: blocks reached from its CALL targets by direct
      // branches (and return sites), not yet in a region.
      var members = Set(scc)
      var pending = scc.compactMap { rip in graph[rip]!.returnSite.flatMap { _ in graph[rip]!.successors.first } }
      while let next = pending.popLast(), members.count < Self.maximumBlocks {
        guard inPage.contains(next), !claimed.contains(next), members.insert(next).inserted else { continue }
        pending += edges(next, returns: true)
      }
      // The assignment: the most used registers over the members, until every member that
      // loops to itself finds its own choice in it.
      var guests: [Int] = []
      while true {
        var uses = [Int](repeating: 0, count: 16)
        for rip in members {
          let n = graph[rip]!
          for r in 0..<16 { uses[r] += n.uses[r] * (n.loopsToItself ? 16 : 1) }
        }
        guests = Array(
          (0..<16).filter { uses[$0] > 0 }.sorted { uses[$0] > uses[$1] || (uses[$0] == uses[$1] && $0 < $1) }
            .prefix(6))
        let misfits = members.filter { rip in
          let n = graph[rip]!
          return n.loopsToItself && !n.ownChoice.allSatisfy(guests.contains)
        }
        if misfits.isEmpty { break }
        members.subtract(misfits)
      }
      guard members.count >= 2, !guests.isEmpty else { continue }
      claimed.formUnion(members)
      decide(members, guests: guests, graph)
    }
  }

  /// Each member's decision: the shared assignment, the links that keep registers live (direct
  /// branches to another member), which members are entered that way, and what may be left
  /// unstored at their entry (a forward union over those links, to its fixed point).
  private mutating func decide(_ members: Set<UInt64>, guests: [Int], _ graph: [UInt64: Node]) {
    let assigned = guests.reduce(UInt32(0)) { $0 | 1 << UInt32($1) }
    var targets: [UInt64: Set<UInt64>] = [:]
    var entered = Set<UInt64>()
    for rip in members {
      let t = Set(graph[rip]!.successors.filter { $0 != rip && members.contains($0) })
      targets[rip] = t
      entered.formUnion(t)
    }
    var dirty = [UInt64: UInt32](uniqueKeysWithValues: members.map { ($0, 0) })
    var changed = true
    while changed {
      changed = false
      for rip in members.sorted() {
        let out = (dirty[rip]! | graph[rip]!.written) & assigned
        for t in targets[rip]! where dirty[t]! | out != dirty[t]! {
          dirty[t]! |= out
          changed = true
        }
      }
    }
    for rip in members {
      decisions[rip] = BlockCompiler.RegisterRegion(
        guests: guests, dirtyAtEntry: dirty[rip]!, liveTargets: targets[rip]!, liveEntry: entered.contains(rip))
    }
    regions.append(members.sorted())
  }

  /// The strongly connected components of the graph over `nodes` (Tarjan's algorithm, without
  /// recursion), in no particular order.
  static func stronglyConnected(_ nodes: [UInt64], edges: (UInt64) -> [UInt64]) -> [[UInt64]] {
    var index: [UInt64: Int] = [:]
    var low: [UInt64: Int] = [:]
    var onStack = Set<UInt64>()
    var stack: [UInt64] = []
    var result: [[UInt64]] = []
    var next = 0
    for root in nodes where index[root] == nil {
      // Each frame: the node and the edges still to visit.
      var frames: [(node: UInt64, rest: [UInt64])] = []
      func open(_ v: UInt64) {
        index[v] = next
        low[v] = next
        next += 1
        stack.append(v)
        onStack.insert(v)
        frames.append((v, edges(v)))
      }
      open(root)
      while !frames.isEmpty {
        let v = frames[frames.count - 1].node
        if let w = frames[frames.count - 1].rest.popLast() {
          if index[w] == nil {
            open(w)
          } else if onStack.contains(w) {
            low[v] = min(low[v]!, index[w]!)
          }
          continue
        }
        frames.removeLast()
        if let parent = frames.last?.node { low[parent] = min(low[parent]!, low[v]!) }
        if low[v] == index[v] {
          var component: [UInt64] = []
          while true {
            let w = stack.removeLast()
            onStack.remove(w)
            component.append(w)
            if w == v { break }
          }
          result.append(component)
        }
      }
    }
    return result
  }
}

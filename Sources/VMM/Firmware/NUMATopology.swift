/// A virtual NUMA layout for the guest: which vCPUs and which guest-physical RAM belong to which
/// node, and how far apart the nodes are. The platform tables describe it in the ACPI SRAT
/// (processor and memory affinity, proximity domain = node index) and SLIT (the distances).
///
/// Rules `validate(cpuCount:memory:)` checks before any table is written: 1 to `maximumNodes`
/// nodes; every vCPU index `0..<cpuCount` in exactly one node; memory ranges non-empty, each
/// inside one RAM region, not overlapping, and together covering all guest RAM (Linux ignores an
/// SRAT that leaves RAM out); a square distance matrix with 10 on the diagonal and more than 10
/// elsewhere (255: unreachable), as the SLIT requires.
public struct NUMATopology: Sendable, Equatable {
  /// One node (proximity domain).
  public struct Node: Sendable, Equatable {
    /// vCPU indices (equal to their APIC IDs) on this node.
    public var cpus: [Int]
    /// Guest-physical RAM ranges on this node (may be empty: a CPU-only node).
    public var memory: [Range<UInt64>]
    /// A node with these vCPUs and RAM ranges.
    public init(cpus: [Int], memory: [Range<UInt64>]) {
      self.cpus = cpus
      self.memory = memory
    }
  }

  /// The distance of a node to itself in the SLIT.
  public static let localDistance: UInt8 = 10
  /// The distance between different nodes when none is given.
  public static let defaultRemoteDistance: UInt8 = 20
  /// The most nodes accepted (the SLIT grows with the square of the count).
  public static let maximumNodes = 64

  /// The nodes; node `i` is proximity domain `i`.
  public var nodes: [Node]
  /// `distances[i][j]`: the relative distance from node `i` to node `j` (SLIT entry).
  public var distances: [[UInt8]]

  /// A topology of `nodes`, with `distances` or, when nil, 10 to itself and 20 to every other node.
  public init(nodes: [Node], distances: [[UInt8]]? = nil) {
    self.nodes = nodes
    self.distances =
      distances
      ?? (0..<nodes.count).map { i in
        (0..<nodes.count).map { j in i == j ? Self.localDistance : Self.defaultRemoteDistance }
      }
  }

  /// `nodeCount` nodes sharing `cpuCount` vCPUs (consecutive blocks, as even as integer division
  /// makes them) and `memory`'s RAM (consecutive shares of whole 2 MiB, the last node taking the
  /// rest; a share may span the 3-4 GiB hole as two ranges), default distances.
  public static func evenlySplit(nodeCount: Int, cpuCount: Int, memory: GuestMemory) throws(LoaderError)
    -> NUMATopology
  {
    guard (1...maximumNodes).contains(nodeCount) else {
      throw LoaderError("vNUMA needs 1 to \(maximumNodes) nodes, not \(nodeCount)")
    }
    let ram = memory.regions.filter { $0.kind == .ram }
    let total = ram.reduce(0) { $0 + $1.size }
    let granule: UInt64 = 2 << 20
    let share = total / UInt64(nodeCount) / granule * granule
    guard share > 0 else {
      throw LoaderError("\(total >> 20) MiB of RAM cannot be split into \(nodeCount) vNUMA nodes of whole 2 MiB")
    }
    var nodes: [Node] = []
    var regionIndex = 0
    var offset: UInt64 = 0  // into ram[regionIndex]
    for n in 0..<nodeCount {
      let first = n * cpuCount / nodeCount
      let last = (n + 1) * cpuCount / nodeCount
      var want = n == nodeCount - 1 ? UInt64.max : share
      var ranges: [Range<UInt64>] = []
      while want > 0, regionIndex < ram.count {
        let r = ram[regionIndex]
        let take = min(want, r.size - offset)
        ranges.append((r.guestAddress + offset)..<(r.guestAddress + offset + take))
        offset += take
        if want != .max { want -= take }
        if offset == r.size {
          regionIndex += 1
          offset = 0
        }
      }
      nodes.append(Node(cpus: Array(first..<last), memory: ranges))
    }
    return NUMATopology(nodes: nodes)
  }

  /// Throws a one-line error naming the first rule (see the type) this topology breaks for a
  /// guest with `cpuCount` vCPUs and `memory`.
  public func validate(cpuCount: Int, memory: GuestMemory) throws(LoaderError) {
    guard (1...Self.maximumNodes).contains(nodes.count) else {
      throw LoaderError("vNUMA needs 1 to \(Self.maximumNodes) nodes, not \(nodes.count)")
    }
    var owner = [Int?](repeating: nil, count: cpuCount)
    for (n, node) in nodes.enumerated() {
      for cpu in node.cpus {
        guard (0..<cpuCount).contains(cpu) else {
          throw LoaderError("vNUMA node \(n) lists vCPU \(cpu); the guest has vCPUs 0-\(cpuCount - 1)")
        }
        if let other = owner[cpu] {
          throw LoaderError("vCPU \(cpu) is in vNUMA nodes \(other) and \(n)")
        }
        owner[cpu] = n
      }
    }
    if let orphan = owner.firstIndex(where: { $0 == nil }) {
      throw LoaderError("vCPU \(orphan) is in no vNUMA node")
    }
    var ranges: [(range: Range<UInt64>, node: Int)] = []
    for (n, node) in nodes.enumerated() {
      for r in node.memory {
        guard !r.isEmpty else { throw LoaderError("vNUMA node \(n) has an empty memory range") }
        guard let region = memory.region(containing: r.lowerBound, length: r.upperBound - r.lowerBound),
          region.kind == .ram
        else {
          throw LoaderError(
            "vNUMA node \(n) memory 0x\(hex(r.lowerBound))-0x\(hex(r.upperBound - 1)) is not inside one RAM region")
        }
        if let other = ranges.first(where: { $0.range.overlaps(r) }) {
          throw LoaderError(
            "vNUMA memory 0x\(hex(r.lowerBound))-0x\(hex(r.upperBound - 1)) of node \(n) overlaps node \(other.node)")
        }
        ranges.append((r, n))
      }
    }
    let sorted = ranges.map(\.range).sorted { $0.lowerBound < $1.lowerBound }
    for region in memory.regions where region.kind == .ram {
      var covered = region.guestAddress
      for r in sorted where r.lowerBound <= covered && r.upperBound > covered {
        covered = r.upperBound
      }
      guard covered >= region.end else {
        throw LoaderError("vNUMA memory ranges leave RAM from 0x\(hex(covered)) in no node")
      }
    }
    guard distances.count == nodes.count, distances.allSatisfy({ $0.count == nodes.count }) else {
      throw LoaderError("vNUMA distances must be a \(nodes.count)x\(nodes.count) matrix")
    }
    for i in 0..<nodes.count {
      for j in 0..<nodes.count {
        let d = distances[i][j]
        if i == j, d != Self.localDistance {
          throw LoaderError("vNUMA distance of node \(i) to itself must be \(Self.localDistance), not \(d)")
        }
        if i != j, d <= Self.localDistance {
          throw LoaderError(
            "vNUMA distance from node \(i) to node \(j) must be more than \(Self.localDistance), not \(d)")
        }
      }
    }
  }
}

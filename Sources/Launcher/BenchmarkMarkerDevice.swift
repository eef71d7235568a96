import VMM

/// The VM exits of one marked benchmark region, per exit reason.
public struct BenchmarkExits: Codable, Equatable, Sendable {
  /// Exit reason name (`io-out`, `hlt`, ...) to count; only reasons that occurred.
  public var byReason: [String: UInt64]
  /// Guest instructions retired in the region, for engines that count them.
  public var instructions: UInt64? = nil
  /// Host time the region took.
  public var hostNanoseconds: UInt64? = nil
  /// The engine's own counters (`VirtualCPU.engineCounters`) that grew in the region, by name: the
  /// difference between the end and the begin marker (the trap engine's `trap-traps`: monitor
  /// traps). Each snapshot is taken while the engine serves that marker's own OUT, so the end
  /// marker's work is in it and the begin marker's is not. Nil when the engine has no counters.
  public var engineCounters: [String: UInt64]? = nil
  /// Guest millions of instructions per host second in the region (the interpreter's speed).
  public var mips: Double? {
    guard let instructions, let hostNanoseconds, hostNanoseconds > 0 else { return nil }
    return Double(instructions) / Double(hostNanoseconds) * 1000
  }
  /// A region with these exit counts; instructions and host time unknown until set.
  public init(byReason: [String: UInt64], instructions: UInt64? = nil, hostNanoseconds: UInt64? = nil) {
    self.byReason = byReason
    self.instructions = instructions
    self.hostNanoseconds = hostNanoseconds
  }
  /// Exits of every reason.
  public var total: UInt64 { byReason.values.reduce(0, +) }
}

/// Listens to the reference kernel's benchmark markers (docs/guest-kernel.md): a byte OUT of the
/// benchmark id to port 0x500 just before a benchmark and to 0x501 just after it, or in PV mode
/// (no port I/O) the marker hypercall `hypercallNumber` with the port and the id as arguments.
/// Each region's exits are the difference of the run's exit counters between the two markers.
///
/// The run loop records an exit just before the next VM entry, so at the begin marker's write the
/// counters hold every exit before it, and at the end marker's write they also hold the begin
/// marker's own exit (`io-out`, or `hypercall` for the marker hypercall), which is taken off: the
/// region counts exactly the exits the guest took between the two marker instructions (the end
/// marker's exit is not counted).
public final class BenchmarkMarkerDevice: PortIODevice {
  /// The begin (0x500) and end (0x501) marker ports.
  public static let ports: ClosedRange<UInt16> = 0x500...0x501
  /// Trivisor's marker hypercall (port, id): outside Xen's numbers, -ENOSYS where nothing serves it.
  public static let hypercallNumber: UInt64 = 0x40
  /// The exit the begin marker itself took.
  private var markerExit = ExitKind.ioOut

  private let statistics: ExitStatistics
  private let instructions: () -> UInt64?
  private let engineCounters: () -> [EngineCounter]
  private let clock = HostClock()
  private var begin: (id: Int, counts: [UInt64], instructions: UInt64?, time: UInt64, engine: [String: UInt64])?
  /// Benchmark id to its region's exits.
  public private(set) var regions: [Int: BenchmarkExits] = [:]

  /// - Parameters:
  ///   - instructions: the vCPU's retired-instruction count, when the engine knows it.
  ///   - engineCounters: the vCPU's engine counters (`VirtualCPU.engineCounters`), read at each marker.
  public init(
    statistics: ExitStatistics, instructions: @escaping () -> UInt64? = { nil },
    engineCounters: @escaping () -> [EngineCounter] = { [] }
  ) {
    self.statistics = statistics
    self.instructions = instructions
    self.engineCounters = engineCounters
  }

  /// Reads as all ones.
  public func read(port: UInt16, size: Int) -> UInt32 { 0xFFFF_FFFF }

  /// Serves the marker hypercall on `dispatcher` (a guest that cannot do port I/O: PV mode).
  public func serveMarkerHypercall(on dispatcher: HypercallDispatcher) {
    dispatcher.register(Self.hypercallNumber) { [self] call, _ in
      let port = call.arguments[0]
      guard Self.ports.contains(UInt16(truncatingIfNeeded: port)), port <= 0xFFFF else {
        return .value(Xen.Error.invalid.returnValue)
      }
      markerExit = .hypercall
      write(port: UInt16(port), size: 1, value: UInt32(truncatingIfNeeded: call.arguments[1]))
      return .value(0)
    }
  }

  /// A marker: records the counters (begin) or the region since the begin marker (end).
  public func write(port: UInt16, size: Int, value: UInt32) {
    let id = Int(value & 0xFF)
    let counts = ExitKind.allCases.map { statistics.count(of: $0) }
    let retired = instructions()
    let now = clock.nanoseconds
    var engine: [String: UInt64] = [:]
    for counter in engineCounters() { engine[counter.name] = counter.value }
    if port == Self.ports.lowerBound {
      begin = (id, counts, retired, now, engine)
      return
    }
    guard let start = begin, start.id == id else { return }
    begin = nil
    var byReason: [String: UInt64] = [:]
    for kind in ExitKind.allCases {
      var delta = counts[kind.rawValue] &- start.counts[kind.rawValue]
      if kind == markerExit { delta &-= 1 }  // the begin marker itself
      if delta > 0 && delta < 1 << 62 { byReason[kind.name] = delta }
    }
    var region = BenchmarkExits(byReason: byReason)
    if let before = start.instructions, let retired, retired >= before {
      region.instructions = retired - before
      region.hostNanoseconds = now &- start.time
    }
    if !engine.isEmpty {
      var grown: [String: UInt64] = [:]
      for (name, value) in engine {
        if let before = start.engine[name], value > before { grown[name] = value - before }
      }
      region.engineCounters = grown
    }
    regions[id] = region
  }
}

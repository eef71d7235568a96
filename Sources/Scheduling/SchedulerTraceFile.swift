/// The `--sched-trace` file: a scheduling run as text, one record per line, that
/// `trivisor sched-report` reads back. Times are nanoseconds from the start of the run.
///
///     # trivisor sched-trace 1
///     pcpus 2
///     vm 0 weight 256 cap -
///     vm 1 weight 512 cap 50
///     vcpu vm1.0
///     woke vm1.0 0
///     dispatched vm1.0 p0 0
///     descheduled vm1.0 p0 30000000
///     migrated vm1.0 p0 p1 30000000
///     priority vm1.0 OVER 30000000
///     parked vm1.0 30000000
///     blocked vm1.0 30000000
///     end 10000000000
public enum SchedulerTraceFile {
  /// The first line of every trace file.
  public static let magic = "# trivisor sched-trace 1"

  /// What a trace file describes besides its events.
  public struct Configuration: Sendable, Equatable {
    /// pCPUs.
    public var pcpus: Int
    /// VM shares, by VM index.
    public var shares: [VMShare]
    /// Every vCPU.
    public var vcpus: [VCPUID]

    /// A configuration of `pcpus` pCPUs, VMs with `shares` and `vcpus`.
    public init(pcpus: Int, shares: [VMShare], vcpus: [VCPUID]) {
      self.pcpus = pcpus
      self.shares = shares
      self.vcpus = vcpus
    }
  }

  /// A line the reader could not take: its number (from 1) and what is wrong.
  public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
    /// The line number, from 1.
    public var line: Int
    /// What is wrong with it.
    public var message: String
    /// "line N: message".
    public var description: String { "line \(line): \(message)" }
  }

  /// The header lines for `configuration`.
  public static func header(_ configuration: Configuration) -> String {
    var lines = [magic, "pcpus \(configuration.pcpus)"]
    for (i, s) in configuration.shares.enumerated() {
      lines.append("vm \(i) weight \(s.weight) cap \(s.cap.map(String.init) ?? "-")")
    }
    for v in configuration.vcpus { lines.append("vcpu \(v)") }
    return lines.joined(separator: "\n") + "\n"
  }

  /// One event as a line (with its newline).
  public static func line(_ event: SchedulerEvent) -> String {
    switch event {
    case .woke(let v, let t): return "woke \(v) \(t)\n"
    case .dispatched(let v, let p, let t): return "dispatched \(v) p\(p) \(t)\n"
    case .descheduled(let v, let p, let t): return "descheduled \(v) p\(p) \(t)\n"
    case .migrated(let v, let from, let to, let t): return "migrated \(v) p\(from) p\(to) \(t)\n"
    case .priorityChanged(let v, let priority, let t): return "priority \(v) \(priority) \(t)\n"
    case .parked(let v, let t): return "parked \(v) \(t)\n"
    case .blocked(let v, let t): return "blocked \(v) \(t)\n"
    }
  }

  /// The last line: the run ended at `time`.
  public static func end(at time: UInt64) -> String { "end \(time)\n" }

  /// Reads a whole trace file back: its configuration and the trace (finished at its `end` line,
  /// or at its last event when the run was cut short). Limits: 4096 pCPUs, 4096 VMs, 65536 vCPUs.
  public static func parse(_ text: String) throws(Error) -> (Configuration, SchedulerTrace) {
    var configuration = Configuration(pcpus: 0, shares: [], vcpus: [])
    var trace = SchedulerTrace()
    var known: Set<VCPUID> = []
    var last: UInt64 = 0
    var end: UInt64?
    var number = 0
    for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
      number += 1
      let words = raw.split(separator: " ").map(String.init)
      if number == 1 {
        guard raw == magic else { throw Error(line: 1, message: "not a trivisor sched-trace file (no '\(magic)')") }
        continue
      }
      guard let keyword = words.first, !keyword.hasPrefix("#") else { continue }
      func fail(_ message: String) -> Error { Error(line: number, message: message) }
      func count(_ n: Int) throws(Error) {
        guard words.count == n else {
          throw fail("'\(keyword)' needs \(n - 1) value(s) after it, not \(words.count - 1)")
        }
      }
      func time(_ s: String) throws(Error) -> UInt64 {
        guard let t = UInt64(s) else { throw fail("'\(s)' is not a time in nanoseconds") }
        guard end == nil else { throw fail("an event after the 'end' line") }
        last = max(last, t)
        return t
      }
      func vcpu(_ s: String) throws(Error) -> VCPUID {
        let parts = s.split(separator: ".")
        guard s.hasPrefix("vm"), parts.count == 2, let vm = Int(parts[0].dropFirst(2)), let n = Int(parts[1]),
          vm >= 0, n >= 0
        else { throw fail("'\(s)' is not a vCPU name like vm0.1") }
        return VCPUID(vm: vm, vcpu: n)
      }
      func declared(_ s: String) throws(Error) -> VCPUID {
        let v = try vcpu(s)
        guard known.contains(v) else { throw fail("vCPU \(v) was not declared with a 'vcpu' line") }
        return v
      }
      func pcpu(_ s: String) throws(Error) -> Int {
        guard s.hasPrefix("p"), let p = Int(s.dropFirst()), p >= 0, p < configuration.pcpus else {
          throw fail("'\(s)' is not a pCPU of this trace (p0 to p\(configuration.pcpus - 1))")
        }
        return p
      }
      switch keyword {
      case "pcpus":
        try count(2)
        guard let n = Int(words[1]), (1...4096).contains(n) else { throw fail("pcpus must be 1 to 4096") }
        configuration.pcpus = n
      case "vm":
        try count(6)
        guard Int(words[1]) == configuration.shares.count, configuration.shares.count < 4096 else {
          throw fail("VMs must be numbered 0, 1, ... in order (at most 4096)")
        }
        guard words[2] == "weight", let weight = Int(words[3]), weight > 0, words[4] == "cap" else {
          throw fail("expected 'vm N weight W cap C|-'")
        }
        let cap: Int?
        if words[5] == "-" {
          cap = nil
        } else {
          guard let c = Int(words[5]), c > 0 else { throw fail("cap '\(words[5])' is not a positive percentage") }
          cap = c
        }
        configuration.shares.append(VMShare(weight: weight, cap: cap))
      case "vcpu":
        try count(2)
        let v = try vcpu(words[1])
        guard v.vm < configuration.shares.count else { throw fail("vCPU \(v) of an undeclared VM") }
        guard known.count < 65536, known.insert(v).inserted else { throw fail("vCPU \(v) declared twice") }
        configuration.vcpus.append(v)
      case "woke":
        try count(3)
        trace.record(.woke(try declared(words[1]), time: try time(words[2])))
      case "dispatched":
        try count(4)
        trace.record(.dispatched(try declared(words[1]), pcpu: try pcpu(words[2]), time: try time(words[3])))
      case "descheduled":
        try count(4)
        trace.record(.descheduled(try declared(words[1]), pcpu: try pcpu(words[2]), time: try time(words[3])))
      case "migrated":
        try count(5)
        trace.record(
          .migrated(
            try declared(words[1]), from: try pcpu(words[2]), to: try pcpu(words[3]), time: try time(words[4])))
      case "priority":
        try count(4)
        let priority: SchedulingPriority
        switch words[2] {
        case "BOOST": priority = .boost
        case "UNDER": priority = .under
        case "OVER": priority = .over
        default: throw fail("'\(words[2])' is not a priority (BOOST, UNDER, OVER)")
        }
        trace.record(.priorityChanged(try declared(words[1]), priority, time: try time(words[3])))
      case "parked":
        try count(3)
        trace.record(.parked(try declared(words[1]), time: try time(words[2])))
      case "blocked":
        try count(3)
        trace.record(.blocked(try declared(words[1]), time: try time(words[2])))
      case "end":
        try count(2)
        end = try time(words[1])
      default:
        throw fail("unknown record '\(keyword)'")
      }
    }
    guard number >= 1, configuration.pcpus > 0 else {
      throw Error(line: max(number, 1), message: "no 'pcpus' line")
    }
    trace.finish(at: end ?? last)
    return (configuration, trace)
  }
}

import CNative
import X86

/// What the host CPU supports, from CPUID.
public struct HostCPU: Sendable {
  public let features: Set<HostFeature>
  /// Whose CPU it is (CPUID leaf 0): the model presents the same vendor, so instructions the
  /// vendors define differently follow the host.
  public var vendor: CPUVendor = .intel

  /// Reads CPUID on the host.
  public static func detect() -> HostCPU {
    var leaf1: [UInt32] = [0, 0, 0, 0]
    var leaf7: [UInt32] = [0, 0, 0, 0]
    var extended: [UInt32] = [0, 0, 0, 0]
    var maxLeaf: [UInt32] = [0, 0, 0, 0]
    cn_cpuid(0, 0, &maxLeaf)
    cn_cpuid(1, 0, &leaf1)
    if maxLeaf[0] >= 7 { cn_cpuid(7, 0, &leaf7) }
    cn_cpuid(0x8000_0001, 0, &extended)
    var set = Set<HostFeature>()
    if leaf1[2] & (1 << 23) != 0 { set.insert(.popcnt) }
    if leaf1[2] & 0x0018_0201 == 0x0018_0201 { set.insert(.sse42) }  // SSE3, SSSE3, SSE4.1, SSE4.2
    if leaf1[2] & (1 << 22) != 0 { set.insert(.movbe) }
    if leaf1[2] & (1 << 13) != 0 { set.insert(.cmpxchg16b) }
    if leaf7[1] & (1 << 3) != 0 && extended[2] & (1 << 5) != 0 { set.insert(.bmi1AndLzcnt) }
    if extended[2] & 1 != 0 { set.insert(.lahfSahf) }
    if leaf7[1] & (1 << 3) != 0 && leaf7[1] & (1 << 8) != 0 { set.insert(.bmi1AndBmi2) }
    var host = HostCPU(features: set)
    let name = [maxLeaf[1], maxLeaf[3], maxLeaf[2]].flatMap { word in
      (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * UInt32($0))) }
    }
    host.vendor = CPUVendor(identification: String(decoding: name, as: UTF8.self))
    return host
  }

  /// The classes this host can run, and notes for those it cannot.
  public func usableClasses(_ wanted: [InstructionClass]) -> (classes: [InstructionClass], notes: [String]) {
    var classes: [InstructionClass] = []
    var notes: [String] = []
    for c in wanted {
      if let f = c.requiredFeature, !features.contains(f) {
        notes.append("host CPU lacks \(f.rawValue): class '\(c.rawValue)' skipped")
        continue
      }
      classes.append(c)
    }
    if !features.contains(.cmpxchg16b) { notes.append("host CPU lacks CMPXCHG16B: not generated") }
    if !features.contains(.lahfSahf) { notes.append("host CPU lacks LAHF/SAHF in 64-bit mode: not generated") }
    return (classes, notes)
  }
}

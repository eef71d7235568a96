import CNative
import Foundation

/// User-Mode Instruction Prevention on the host: with CR4.UMIP set, SGDT, SIDT, SLDT, SMSW and
/// STR fault (#GP) at CPL 3 instead of storing the real tables' addresses and selectors. It matters
/// only for guest code run at real ring 3 (the future `trap` engine): there, with UMIP, a monitor
/// sees the five instructions trap and can emulate them with the guest's values; without it they
/// leak the host's. interp, dbt and kvm never run guest kernel code at real ring 3.
public struct HostUMIP: Sendable, Equatable, Codable {
  /// CPUID.(EAX=7,ECX=0):ECX bit 2: the CPU has UMIP.
  public var cpuHasUMIP: Bool
  /// The flag `umip` in /proc/cpuinfo: the kernel knows the feature and enables it (Linux sets
  /// CR4.UMIP on every CPU that has it unless booted with `clearcpuid=umip`).
  public var kernelEnablesUMIP: Bool

  /// A host with these answers (tests, and the future trap engine's table on another host).
  public init(cpuHasUMIP: Bool, kernelEnablesUMIP: Bool) {
    self.cpuHasUMIP = cpuHasUMIP
    self.kernelEnablesUMIP = kernelEnablesUMIP
  }

  /// What this host has.
  public static func detect() -> HostUMIP {
    var cpu = false
    #if arch(x86_64)
      var out: [UInt32] = [0, 0, 0, 0]
      cn_cpuid(0, 0, &out)
      if out[0] >= 7 {
        cn_cpuid(7, 0, &out)
        cpu = out[2] & (1 << 2) != 0
      }
    #endif
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    return HostUMIP(cpuHasUMIP: cpu, kernelEnablesUMIP: cpuinfoHasUMIP(info))
  }

  /// Whether the first `flags` line of /proc/cpuinfo text lists `umip`.
  public static func cpuinfoHasUMIP(_ cpuinfo: String) -> Bool {
    guard let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
    return line.split(separator: " ").contains("umip")
  }

  /// What the five UMIP instructions are expected to do in the `trap` engine on this host
  /// (the guest kernel at real ring 3), with and without UMIP: one line for the report.
  public var trapExpectation: String {
    let names = HoleProbe.allCases.filter(\.umipCovered).map(\.name).joined(separator: ", ")
    return "trap engine, \(names) at real ring 3: without UMIP leak, with UMIP trap and are emulated"
      + " (this host: \(cpuHasUMIP && kernelEnablesUMIP ? "with" : "without") UMIP)"
  }

  /// One line for the report.
  public var summary: String {
    "host UMIP: CPU \(cpuHasUMIP ? "has it" : "lacks it") (CPUID.7.0:ECX[2]), kernel "
      + "\(kernelEnablesUMIP ? "enables it" : "does not enable it") (/proc/cpuinfo flag umip)"
  }
}

import Launcher
import VMM
import X86

/// `trivisor run --cpu NAME`: which vendor's flavour of Trivisor's virtual CPU the guest sees.
enum CPUOption {
  /// The lines `--cpu help` prints.
  static var helpText: String {
    var lines = ["CPUs for --cpu (the same virtual CPU and features under each vendor):"]
    for vendor in CPUVendor.allCases {
      let signature = "0x" + String(vendor.signature, radix: 16)
      let behaviour =
        vendor == .intel
        ? "SYSCALL only in 64-bit mode; SYSENTER in IA-32e mode (default on interp)"
        : "SYSCALL also from compatibility mode (CSTAR); SYSENTER #UD in IA-32e mode"
      lines.append(
        "  \(vendor.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)) \(vendor.identification), signature \(signature): \(behaviour)"
      )
    }
    lines.append("Without --cpu, interp shows the intel flavour and kvm the host's own CPU.")
    return lines.joined(separator: "\n")
  }

  /// The identity `name` asks for; nil for none; a usage error for an unknown name.
  static func identity(_ name: String?) throws(UsageError) -> GuestCPUIdentity? {
    guard let name else { return nil }
    guard let vendor = CPUVendor(rawValue: name.lowercased()) else {
      let names = CPUVendor.allCases.map(\.rawValue).joined(separator: ", ")
      throw UsageError("unknown --cpu '\(name)' (choose from \(names); --cpu help describes them)")
    }
    return GuestCPUIdentity(vendor: vendor.identification, signature: vendor.signature)
  }
}

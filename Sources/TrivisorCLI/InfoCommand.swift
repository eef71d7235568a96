import ArgumentParser
import Foundation
import KVMEngine
import Launcher
import VMM

struct InfoCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "info",
    abstract: "Describe the host: /dev/kvm, its API version and capabilities, CPU virtualization flags."
  )

  func run() throws {
    var lines: [String] = []
    let cpu = HostCPUInfo.read()
    lines.append("host CPU: \(cpu.vendor ?? "unknown vendor"), \(cpu.model ?? "unknown model")")
    var flags: [String] = []
    if cpu.flags.contains("vmx") { flags.append("vmx (Intel VT-x)") }
    if cpu.flags.contains("svm") { flags.append("svm (AMD-V)") }
    lines.append("virtualization flags: \(flags.isEmpty ? "none visible" : flags.joined(separator: ", "))")
    if cpu.flags.contains("hypervisor") {
      lines.append(
        "note: this host is itself a virtual machine; its /dev/kvm is nested or emulated and may run guest "
          + "ring 0 far slower than ring 3 (see DEVELOPERS.md)")
    }

    let path = KVMSystem.defaultPath
    let present = FileManager.default.fileExists(atPath: path)
    lines.append("\(path): \(present ? "present" : "absent")")
    do {
      let kvm = try KVMSystem()
      let c = kvm.capabilities
      func yes(_ b: Bool) -> String { b ? "yes" : "no" }
      lines.append("\(path): usable, API version \(kvm.apiVersion)")
      lines.append("  KVM CPU vendor: \(kvm.cpuVendor() ?? "unknown")")
      lines.append("  irqchip (in-kernel PIC/IOAPIC/LAPIC): \(yes(c.irqchip)), PIT2: \(yes(c.pit2))")
      lines.append("  user memory: \(yes(c.userMemory)), read-only memory: \(yes(c.readonlyMemory))")
      lines.append("  immediate exit: \(yes(c.immediateExit)), TSC deadline timer: \(yes(c.tscDeadlineTimer))")
      lines.append("  MSR exits to userspace (x2APIC with --irqchip user): \(yes(c.userSpaceMSRFilter))")
      lines.append("  vCPUs: \(c.recommendedVCPUs) recommended, \(c.maxVCPUs) max; memory slots: \(c.memorySlots)")
      lines.append("  kvm_run mapping: \(kvm.vcpuMapSize) bytes")
    } catch {
      lines.append("\(path): unusable: \(error)")
    }
    lines.append("engines:")
    for e in EngineRegistry.entries {
      lines.append("  \(e.name): \(e.unavailableReason().map { "unavailable (\($0))" } ?? "available") — \(e.summary)")
    }
    print(lines.joined(separator: "\n"))
  }
}

/// What `/proc/cpuinfo` says about the host CPU (first processor).
struct HostCPUInfo {
  var vendor: String?
  var model: String?
  var flags: Set<String> = []

  static func read(path: String = "/proc/cpuinfo") -> HostCPUInfo {
    var info = HostCPUInfo()
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return info }
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
      guard parts.count == 2 else {
        if line.trimmingCharacters(in: .whitespaces).isEmpty && info.model != nil { break }
        continue
      }
      switch parts[0] {
      case "vendor_id": info.vendor = info.vendor ?? parts[1]
      case "model name": info.model = info.model ?? parts[1]
      case "flags": if info.flags.isEmpty { info.flags = Set(parts[1].split(separator: " ").map(String.init)) }
      default: break
      }
    }
    return info
  }
}

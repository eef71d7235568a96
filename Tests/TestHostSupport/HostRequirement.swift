import CNative
import Foundation
import KVMEngine
import Testing

/// Something a test needs from the machine it runs on. Each is checked once per test process;
/// a test that declares it with `.requires(...)` shows as skipped, with the reason, when it is
/// missing, instead of passing without running.
///
/// `TRIVISOR_TEST_PRETEND_MISSING=kvm,qemu` makes requirements look missing, to exercise the
/// skip paths on a machine that has everything.
public enum HostRequirement: String, CaseIterable, Sendable {
  /// A usable `/dev/kvm` (the kvm engine can be created).
  case kvm
  /// KVM with an in-kernel irqchip and PIT (`KVM_CAP_IRQCHIP`, `KVM_CAP_PIT2`).
  case kvmInKernelIRQChip
  /// KVM that can map memory read-only (`KVM_CAP_READONLY_MEM`).
  case kvmReadonlyMemory
  /// SeaBIOS at /usr/share/seabios/bios.bin (the Debian `seabios` package).
  case seabios
  /// `qemu-system-x86_64` (the Debian `qemu-system-x86` package).
  case qemu
  /// `bochs` with its BIOS and VGA BIOS images and the term display (the Debian `bochs`,
  /// `bochs-term`, `bochsbios` and `vgabios` packages).
  case bochs
  /// clang, ld.lld and llvm-objcopy next to the Swift toolchain (to assemble test guests).
  case guestToolchain
  /// llvm-objdump and clang (the disassembler oracle).
  case llvmObjdump
  /// Linux on x86-64, where the native runner of the host-CPU difftest works.
  case nativeX86Linux
  /// The compatibility-mode difftest's native side: modify_ldt installs 16-bit segments and the
  /// runner's child runs code in them (not under kernels built without modify_ldt or that refuse
  /// 16-bit segments).
  case compatibilityMode
  /// The SingleStep test vectors (`HostTools.singleStepDirectory`).
  case singleStepData
  /// `iasl`, the ACPICA compiler and disassembler (the Debian `acpica-tools` package).
  case iasl
  /// A Linux kernel in /boot with its modules in /lib/modules (the Debian `linux-image-amd64`
  /// package): what `--app` and `--rootfs` boot.
  case linuxKernel
  /// A statically linked busybox at /bin/busybox (the Debian `busybox-static` package).
  case busybox

  /// nil when the requirement is met; otherwise why not, in one line.
  public var missingReason: String? { HostRequirement.reasons[self] ?? nil }

  /// The requirements `TRIVISOR_TEST_PRETEND_MISSING` names (comma-separated raw values), or the
  /// names it does not know: a misspelt name must not quietly pretend nothing.
  public static func parsePretendMissing(_ list: String) -> Result<Set<HostRequirement>, UnknownNames> {
    let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    let unknown = names.filter { HostRequirement(rawValue: $0) == nil }
    if !unknown.isEmpty { return .failure(UnknownNames(names: unknown)) }
    return .success(Set(names.compactMap(HostRequirement.init(rawValue:))))
  }

  /// Names in `TRIVISOR_TEST_PRETEND_MISSING` that are no requirement.
  public struct UnknownNames: Error, Equatable, Sendable {
    public let names: [String]
    public var description: String {
      "TRIVISOR_TEST_PRETEND_MISSING: unknown \(names.joined(separator: ", ")) (known: "
        + HostRequirement.allCases.map(\.rawValue).joined(separator: ", ") + ")"
    }
  }

  private static let reasons: [HostRequirement: String?] = {
    var result: [HostRequirement: String?] = [:]
    let pretended = parsePretendMissing(ProcessInfo.processInfo.environment["TRIVISOR_TEST_PRETEND_MISSING"] ?? "")
    for r in allCases {
      switch pretended {
      case .failure(let unknown): result[r] = unknown.description
      case .success(let names):
        result[r] = names.contains(r) ? "TRIVISOR_TEST_PRETEND_MISSING names \(r.rawValue)" : r.check()
      }
    }
    return result
  }()

  /// The kvm engine's capabilities, or why it cannot be made.
  private static let kvmCapabilities: Result<KVMCapabilities, KVMProbeError> = {
    do { return .success(try KVMEngine().system.capabilities) } catch {
      return .failure(KVMProbeError(description: "\(error)"))
    }
  }()

  private struct KVMProbeError: Error, Sendable { let description: String }

  private func check() -> String? {
    switch self {
    case .kvm:
      if case .failure(let error) = HostRequirement.kvmCapabilities { return "/dev/kvm unusable: \(error.description)" }
      return nil
    case .kvmInKernelIRQChip:
      guard case .success(let c) = HostRequirement.kvmCapabilities else { return "/dev/kvm unusable" }
      return c.irqchip && c.pit2 ? nil : "this host's KVM has no in-kernel irqchip and PIT2"
    case .kvmReadonlyMemory:
      guard case .success(let c) = HostRequirement.kvmCapabilities else { return "/dev/kvm unusable" }
      return c.readonlyMemory ? nil : "this host's KVM lacks KVM_CAP_READONLY_MEM"
    case .seabios:
      return FileManager.default.isReadableFile(atPath: HostTools.seabiosPath)
        ? nil : "\(HostTools.seabiosPath) missing (install the seabios package)"
    case .qemu:
      return HostTools.find("qemu-system-x86_64") == nil ? "qemu-system-x86_64 is not installed" : nil
    case .bochs:
      guard HostTools.find("bochs") != nil else { return "bochs is not installed" }
      let files = [
        "/usr/share/bochs/BIOS-bochs-latest", "/usr/share/vgabios/vgabios.bin",
        "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so",
      ]
      let missing = files.filter { !FileManager.default.fileExists(atPath: $0) }
      return missing.isEmpty ? nil : "missing \(missing.joined(separator: ", ")) (install bochs-term bochsbios vgabios)"
    case .guestToolchain:
      let missing = ["clang", "ld.lld", "llvm-objcopy"].filter { HostTools.find($0) == nil }
      return missing.isEmpty ? nil : "missing toolchain programs: \(missing.joined(separator: ", "))"
    case .llvmObjdump:
      let missing = ["llvm-objdump", "clang"].filter { HostTools.find($0) == nil }
      return missing.isEmpty ? nil : "missing: \(missing.joined(separator: ", "))"
    case .nativeX86Linux:
      #if os(Linux) && arch(x86_64)
        return nil
      #else
        return "the native runner needs Linux on x86-64"
      #endif
    case .iasl:
      return HostTools.find("iasl") == nil ? "iasl is not installed (the acpica-tools package)" : nil
    case .linuxKernel:
      // The kernel and its modules' directory share the release in their names.
      let kernels = (try? FileManager.default.contentsOfDirectory(atPath: "/boot"))?.filter { $0.hasPrefix("vmlinuz-") }
      guard let kernels, !kernels.isEmpty else { return "no /boot/vmlinuz-* (install linux-image-amd64)" }
      let withModules = kernels.filter {
        FileManager.default.fileExists(atPath: "/lib/modules/\($0.dropFirst(8))/modules.dep")
      }
      return withModules.isEmpty ? "no /lib/modules/RELEASE/modules.dep for \(kernels.joined(separator: ", "))" : nil
    case .busybox:
      return FileManager.default.isExecutableFile(atPath: "/bin/busybox")
        ? nil : "/bin/busybox is missing (install busybox-static)"
    case .compatibilityMode:
      #if os(Linux) && arch(x86_64)
        var reason = [CChar](repeating: 0, count: 256)
        let status = reason.withUnsafeMutableBufferPointer { cn_compat_mode_probe($0.baseAddress, $0.count) }
        return status == 0
          ? nil : String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      #else
        return "the native runner needs Linux on x86-64"
      #endif
    case .singleStepData:
      return FileManager.default.fileExists(atPath: HostTools.singleStepDirectory)
        ? nil : "no SingleStep vectors at \(HostTools.singleStepDirectory) (set TRIVISOR_SINGLESTEP_DATA)"
    }
  }
}

extension Trait where Self == ConditionTrait {
  /// Runs the test only where every requirement is met; otherwise it is reported as skipped with
  /// the reasons.
  public static func requires(_ requirements: HostRequirement...) -> Self {
    let missing = requirements.compactMap { r in r.missingReason.map { "\(r.rawValue): \($0)" } }
    return .enabled(if: missing.isEmpty, Comment(rawValue: "needs " + missing.joined(separator: "; ")))
  }
}

/// Finding host programs and files the tests use.
public enum HostTools {
  /// Debian's SeaBIOS image.
  public static let seabiosPath = "/usr/share/seabios/bios.bin"

  /// The SingleStep vectors: `TRIVISOR_SINGLESTEP_DATA`, else `shared/testdata/singlestep` next to
  /// the repository (a git worktree elsewhere sets the variable).
  public static let singleStepDirectory: String = {
    if let path = ProcessInfo.processInfo.environment["TRIVISOR_SINGLESTEP_DATA"], !path.isEmpty { return path }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/testdata/singlestep")
      .standardizedFileURL.path
  }()

  /// The program next to the running Swift toolchain, else in /usr/bin, /usr/local/bin or on PATH.
  public static func find(_ name: String) -> String? {
    var directories = ["/opt/swift/usr/bin", "/usr/bin", "/usr/local/bin"]
    directories += (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
    for directory in directories {
      let path = directory + "/" + name
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
  }
}

import CKVM
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// Why `/dev/kvm` cannot be used. Every case is a one-line message for the user (exit status 2).
public enum KVMUnavailable: Error, CustomStringConvertible, Sendable, Equatable {
  /// The device node does not exist (no KVM module, or a container without the device).
  case missing(path: String)
  /// The device exists but this user may not open it.
  case permissionDenied(path: String)
  /// The kernel speaks another KVM API version than the stable 12.
  case unsupportedAPIVersion(Int32)
  /// A capability the engine needs is absent.
  case missingCapability(String)
  /// Any other failure to open or query the device.
  case failed(path: String, operation: String, errno: Int32)

  public var description: String {
    switch self {
    case .missing(let p): return "\(p) does not exist: KVM is not available on this host"
    case .permissionDenied(let p):
      return "permission denied opening \(p): add this user to the 'kvm' group or run as root"
    case .unsupportedAPIVersion(let v):
      return "/dev/kvm speaks KVM API version \(v), Trivisor needs version \(CKVM_API_VERSION)"
    case .missingCapability(let c): return "/dev/kvm lacks a required capability: \(c)"
    case .failed(let p, let op, let e): return "\(op) on \(p) failed: \(String(cString: strerror(e)))"
    }
  }
}

/// Capabilities of the host's KVM that Trivisor uses or reports (`trivisor info`).
public struct KVMCapabilities: Sendable, Equatable {
  public var irqchip: Bool
  public var userMemory: Bool
  public var readonlyMemory: Bool
  public var immediateExit: Bool
  public var pit2: Bool
  public var setTSSAddress: Bool
  public var extendedCPUID: Bool
  public var tscDeadlineTimer: Bool
  /// KVM_CAP_X86_USER_SPACE_MSR and KVM_CAP_X86_MSR_FILTER: RDMSR/WRMSR can exit to userspace
  /// (what the VMM's local APIC needs for x2APIC and TSC-deadline with `--irqchip user`).
  public var userSpaceMSRFilter: Bool
  /// The state KVM can keep in `kvm_run` instead of behind vCPU ioctls (KVM_CAP_SYNC_REGS).
  public var syncedState: KVMVirtualCPU.SyncedState
  /// Recommended and maximum vCPUs per VM.
  public var recommendedVCPUs: Int
  public var maxVCPUs: Int
  /// Memory slots per VM.
  public var memorySlots: Int
}

/// The host's `/dev/kvm`: the system file descriptor, API version and capabilities.
///
/// `KVM_GET_API_VERSION` must return 12 (the stable API); `KVM_CHECK_EXTENSION` answers the
/// capability questions; `KVM_GET_SUPPORTED_CPUID` lists what guests may be told about the CPU.
public final class KVMSystem: @unchecked Sendable {
  public static let defaultPath = "/dev/kvm"
  public let path: String
  /// The `/dev/kvm` file descriptor (system ioctls).
  public let fd: Int32
  public let apiVersion: Int32
  /// Size of each vCPU's `kvm_run` mapping.
  public let vcpuMapSize: Int
  public let capabilities: KVMCapabilities

  /// Opens `/dev/kvm` and checks the API version and the capabilities the engine relies on.
  public init(path: String = KVMSystem.defaultPath) throws(KVMUnavailable) {
    self.path = path
    let fd = open(path, O_RDWR | O_CLOEXEC)
    if fd < 0 {
      let e = errno
      switch e {
      case ENOENT, ENODEV, ENXIO: throw .missing(path: path)
      case EACCES, EPERM: throw .permissionDenied(path: path)
      default: throw .failed(path: path, operation: "open", errno: e)
      }
    }
    let version = ckvm_ioctl(fd, CKVM_GET_API_VERSION, 0)
    guard version == CKVM_API_VERSION else {
      close(fd)
      if version < 0 { throw .failed(path: path, operation: "KVM_GET_API_VERSION", errno: -version) }
      throw .unsupportedAPIVersion(version)
    }
    let mapSize = ckvm_ioctl(fd, CKVM_GET_VCPU_MMAP_SIZE, 0)
    guard mapSize > 0 else {
      close(fd)
      throw .failed(path: path, operation: "KVM_GET_VCPU_MMAP_SIZE", errno: -mapSize)
    }
    func check(_ cap: Int32) -> Int { Int(max(0, ckvm_ioctl(fd, CKVM_CHECK_EXTENSION, UInt(cap)))) }
    let nrVCPUs = check(CKVM_CAP_NR_VCPUS)
    capabilities = KVMCapabilities(
      irqchip: check(CKVM_CAP_IRQCHIP) > 0, userMemory: check(CKVM_CAP_USER_MEMORY) > 0,
      readonlyMemory: check(CKVM_CAP_READONLY_MEM) > 0, immediateExit: check(CKVM_CAP_IMMEDIATE_EXIT) > 0,
      pit2: check(CKVM_CAP_PIT2) > 0, setTSSAddress: check(CKVM_CAP_SET_TSS_ADDR) > 0,
      extendedCPUID: check(CKVM_CAP_EXT_CPUID) > 0, tscDeadlineTimer: check(CKVM_CAP_TSC_DEADLINE_TIMER) > 0,
      userSpaceMSRFilter: check(CKVM_CAP_X86_USER_SPACE_MSR) > 0 && check(CKVM_CAP_X86_MSR_FILTER) > 0,
      syncedState: KVMVirtualCPU.SyncedState(rawValue: UInt64(check(CKVM_CAP_SYNC_REGS))),
      recommendedVCPUs: nrVCPUs == 0 ? 4 : nrVCPUs,
      maxVCPUs: max(check(CKVM_CAP_MAX_VCPUS), nrVCPUs),
      memorySlots: check(CKVM_CAP_NR_MEMSLOTS))
    self.fd = fd
    apiVersion = version
    vcpuMapSize = Int(mapSize)
    guard capabilities.userMemory else {
      close(fd)
      throw .missingCapability("KVM_CAP_USER_MEMORY")
    }
    guard capabilities.immediateExit else {
      close(fd)
      throw .missingCapability("KVM_CAP_IMMEDIATE_EXIT")
    }
  }

  deinit { close(fd) }

  /// `KVM_CHECK_EXTENSION` for any capability number (0 when absent).
  public func checkExtension(_ capability: Int32) -> Int {
    Int(max(0, ckvm_ioctl(fd, CKVM_CHECK_EXTENSION, UInt(capability))))
  }

  private var cachedCPUID: [kvm_cpuid_entry2]?

  /// The CPUID leaves KVM can virtualize on this host (`KVM_GET_SUPPORTED_CPUID`), asked once.
  /// Not thread-safe: use a system from one thread at a time.
  public func supportedCPUID() throws(EngineError) -> [kvm_cpuid_entry2] {
    if let cachedCPUID { return cachedCPUID }
    let list = try querySupportedCPUID()
    cachedCPUID = list
    return list
  }

  private func querySupportedCPUID() throws(EngineError) -> [kvm_cpuid_entry2] {
    var error: Int32 = 0
    guard let list = ckvm_get_supported_cpuid(fd, &error) else {
      throw EngineError("KVM_GET_SUPPORTED_CPUID failed: \(String(cString: strerror(error)))")
    }
    defer { free(list) }
    return (0..<list.pointee.nent).map { ckvm_cpuid_entry(list, $0).pointee }
  }

  /// The CPU vendor string of the host as KVM reports it (CPUID leaf 0), e.g. "GenuineIntel".
  public func cpuVendor() -> String? {
    guard let leaf0 = try? supportedCPUID().first(where: { $0.function == 0 }) else { return nil }
    var bytes: [UInt8] = []
    for r in [leaf0.ebx, leaf0.edx, leaf0.ecx] {
      for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: r >> (8 * UInt32(i)))) }
    }
    return String(decoding: bytes, as: UTF8.self)
  }
}

/// `strerror` as a Swift string.
func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

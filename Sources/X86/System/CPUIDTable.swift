/// The CPUID instruction's answers (SDM vol. 2, "CPUID"): leaves 0, 1, 7, 0DH (minimal) and
/// 80000000H-80000008H, advertising exactly the `CPUFeatures` given.
///
/// Vendor: "GenuineIntel" by default, or "AuthenticAMD" (`CPUVendor`); the model's vendor-specific
/// instructions follow the vendor this table names (`cpuVendor`), so a guest's expectations and the
/// model's behaviour stay consistent. Both vendors keep SYSRET's Intel-style #GP on a
/// non-canonical RCX in ring 0 and null-selector loads clearing the base. The hypervisor bit (CPUID.1:ECX[31]) is clear by default; set `.hypervisor` in the features to
/// expose leaf 40000000H with the signature "TrivisorVMM\0".
public struct CPUIDTable: Sendable, Equatable {
  /// The advertised features.
  public var features: CPUFeatures
  /// The leaf-0 vendor string ("GenuineIntel", "AuthenticAMD").
  public var vendor: String
  /// Family/model/stepping signature for CPUID.1:EAX (default 506E3H: family 6, model 5EH, stepping 3).
  public var signature: UInt32
  /// MAXPHYADDR (leaf 80000008H).
  public var physicalAddressBits: Int
  /// Linear-address width (48, or 57 with LA57).
  public var linearAddressBits: Int
  /// The initial APIC ID (leaf 1).
  public var apicID: UInt8
  /// The brand string (leaves 80000002H-80000004H).
  public var brand: String

  /// A table advertising `features`.
  public init(
    features: CPUFeatures = .systemBaseline, vendor: String = "GenuineIntel", signature: UInt32 = 0x0005_06E3,
    physicalAddressBits: Int = 40, apicID: UInt8 = 0, brand: String = "Trivisor Virtual CPU"
  ) {
    self.features = features
    self.vendor = vendor
    self.signature = signature
    self.physicalAddressBits = physicalAddressBits
    self.linearAddressBits = features.contains(.la57) ? 57 : 48
    self.apicID = apicID
    self.brand = brand
  }

  /// The vendor whose behaviour the model follows (from `vendor`).
  public var cpuVendor: CPUVendor { CPUVendor(identification: vendor) }

  /// This table presenting `cpuVendor`: its vendor string and signature.
  public mutating func present(_ cpuVendor: CPUVendor) {
    vendor = cpuVendor.identification
    signature = cpuVendor.signature
  }

  /// The register values of CPUID with EAX = `leaf` and ECX = `subleaf`.
  public func query(leaf: UInt32, subleaf: UInt32) -> (eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32) {
    switch leaf {
    case 0:
      let v = Self.registers(vendor, count: 3)
      return (0xD, v[0], v[2], v[1])
    case 1:
      // EBX: CLFLUSH line size 8 (x8 = 64 bytes), one logical processor, initial APIC ID.
      let ebx = UInt32(8) << 8 | UInt32(1) << 16 | UInt32(apicID) << 24
      return (signature, ebx, features.leaf1ECX, features.leaf1EDX)
    case 7:
      guard subleaf == 0 else { return (0, 0, 0, 0) }
      return (0, features.leaf7EBX, features.leaf7ECX, features.leaf7EDX)
    case 0xB:
      // Extended topology: every vCPU is a package of one core with one thread (as QEMU's PC
      // presents `-smp N` as N sockets), so no bits of the x2APIC ID select a thread or core.
      switch subleaf {
      case 0: return (0, 1, 0 | 1 << 8, UInt32(apicID))  // SMT level: one logical processor
      case 1: return (0, 1, 1 | 2 << 8, UInt32(apicID))  // core level: one core
      default: return (0, 0, subleaf & 0xFF, UInt32(apicID))  // no further level
      }
    case 0xD:
      // Only x87 and SSE state components, and only when XSAVE is advertised.
      guard features.contains(.xsave) else { return (0, 0, 0, 0) }
      switch subleaf {
      // EBX: the size XSAVE needs for XCR0's components (the legacy region and the header are
      // always there, so 576 whatever XCR0 holds); ECX: the size for every supported one.
      case 0: return (0x3, 576, 576, 0)
      // XSAVEOPT (it behaves as XSAVE: the model reports every requested component in use);
      // no XSAVEC, XGETBV with ECX = 1, or XSAVES.
      case 1: return (1, 0, 0, 0)
      default: return (0, 0, 0, 0)
      }
    case 0x4000_0000:
      // The hypervisor range (Xen's leaf meanings, Trivisor's signature): the highest leaf.
      guard features.contains(.hypervisor) else { return (0, 0, 0, 0) }
      let v = Self.registers("TrivisorVMM\0", count: 3)
      return (0x4000_0002, v[0], v[1], v[2])
    case 0x4000_0001:
      // The paravirtual ABI's version, 4.19 (major << 16 | minor).
      guard features.contains(.hypervisor) else { return (0, 0, 0, 0) }
      return (4 << 16 | 19, 0, 0, 0)
    case 0x4000_0002:
      // One hypercall page, installed by writing its address to MSR 0x40000000.
      guard features.contains(.hypervisor) else { return (0, 0, 0, 0) }
      return (1, 0x4000_0000, 0, 0)
    case 0x8000_0000:
      return (0x8000_0008, 0, 0, 0)
    case 0x8000_0001:
      return (0, 0, features.extendedECX, features.extendedEDX)
    case 0x8000_0002...0x8000_0004:
      let v = Self.registers(brand, count: 12)
      let i = Int(leaf - 0x8000_0002) * 4
      return (v[i], v[i + 1], v[i + 2], v[i + 3])
    case 0x8000_0006:
      // L2: 256 KiB, 8-way, 64-byte lines.
      return (0, 0, 256 << 16 | 6 << 12 | 64, 0)
    case 0x8000_0007:
      // Invariant TSC.
      return (0, 0, 0, 1 << 8)
    case 0x8000_0008:
      return (UInt32(physicalAddressBits) | UInt32(linearAddressBits) << 8, 0, 0, 0)
    default:
      // Intel returns the highest basic leaf's data for leaves above the maximum; zeros are the
      // common emulator choice and what guests cope with.
      return (0, 0, 0, 0)
    }
  }

  /// `text` as little-endian 32-bit words (NUL-padded to `count` words).
  static func registers(_ text: String, count: Int) -> [UInt32] {
    var bytes = Array(text.utf8.prefix(count * 4))
    bytes += [UInt8](repeating: 0, count: count * 4 - bytes.count)
    var words: [UInt32] = []
    for i in 0..<count {
      var word: UInt32 = 0
      for j in 0..<4 { word |= UInt32(bytes[4 * i + j]) << UInt32(8 * j) }
      words.append(word)
    }
    return words
  }
}

/// The CPUID answers of the model: advertises only what the model implements.
public struct CPUIDModel: Sendable {
  public var vendor = "TrivisorX86 "
  public var brand = "Trivisor x86-64 interpreter"
  /// Extra or replaced leaves: (leaf, subleaf) -> (eax, ebx, ecx, edx).
  public var overrides: [UInt64: (UInt32, UInt32, UInt32, UInt32)] = [:]
  public let available: Bool

  public init(model: CPUModel) { available = model == .host64 }

  /// The four registers for a leaf/subleaf.
  public func query(leaf: UInt32, subleaf: UInt32) -> (eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32) {
    if let o = overrides[UInt64(leaf) << 32 | UInt64(subleaf)] { return o }
    func word(_ s: String, _ i: Int) -> UInt32 {
      let b = Array(s.utf8) + [UInt8](repeating: 0, count: 64)
      return UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }
    switch leaf {
    case 0: return (7, word(vendor, 0), word(vendor, 8), word(vendor, 4))
    case 1:
      // Family 6. EDX: TSC(4) CX8(8) CMOV(15). ECX: CX16(13) MOVBE(22) POPCNT(23).
      let edx: UInt32 = 1 << 4 | 1 << 8 | 1 << 15
      let ecx: UInt32 = 1 << 13 | 1 << 22 | 1 << 23
      return (0x0006_0F00, 0, ecx, edx)
    case 7:
      // EBX: BMI1(3) BMI2(8).
      return subleaf == 0 ? (0, 1 << 3 | 1 << 8, 0, 0) : (0, 0, 0, 0)
    case 0x8000_0000: return (0x8000_0008, 0, 0, 0)
    case 0x8000_0001:
      // ECX: LAHF/SAHF in 64-bit mode(0), LZCNT(5). EDX: RDTSCP(27), LM(29).
      return (0, 0, 1 << 0 | 1 << 5, 1 << 27 | 1 << 29)
    case 0x8000_0002, 0x8000_0003, 0x8000_0004:
      let base = Int(leaf - 0x8000_0002) * 16
      return (word(brand, base), word(brand, base + 4), word(brand, base + 8), word(brand, base + 12))
    case 0x8000_0008: return (0x3030, 0, 0, 0)
    default: return (0, 0, 0, 0)
    }
  }
}

/// Whose x86-64 the model presents: the CPUID vendor string and signature guests read, and the few
/// instructions whose behaviour the two vendors define differently (SDM vol. 2 and AMD APM vol. 3):
///
/// | | Intel | AMD |
/// |---|---|---|
/// | SYSCALL in compatibility mode | #UD | enters the kernel at CSTAR |
/// | SYSENTER / SYSEXIT in IA-32e mode | supported | #UD |
/// | CMPS with both operands faulting | DS:SI's fault | ES:DI's (REPE CMPSB: DS:SI's) |
/// | POPA/POPAD faulting part-way | no register loaded | those popped before the fault loaded |
///
/// Both flavours advertise the same feature set (`CPUFeatures.interpreterModel`): they are one
/// virtual CPU model sold under two names, so a guest's vendor-specific paths can be compared on
/// the same machine.
public enum CPUVendor: String, CaseIterable, Sendable {
  case intel
  case amd

  /// CPUID leaf 0's vendor string.
  public var identification: String { self == .intel ? "GenuineIntel" : "AuthenticAMD" }

  /// CPUID.1:EAX: Intel family 6 model 5EH stepping 3 (a Skylake server); AMD family 17H model 31H
  /// stepping 0 (a Zen 2 EPYC), each the vendor's encoding of a recent x86-64 with these features.
  public var signature: UInt32 { self == .intel ? 0x0005_06E3 : 0x0083_0F10 }

  /// The vendor CPUID leaf 0 names (`GenuineIntel`, `AuthenticAMD`); Intel for anything else.
  public init(identification: String) {
    self = identification == CPUVendor.amd.identification ? .amd : .intel
  }
}

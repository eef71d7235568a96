/// Instructions the embedder intercepts: each becomes a `CPUEvent` instead of being answered by
/// the model (the instruction re-executes with the embedder's answer, like port I/O).
public struct CPUTraps: OptionSet, Sendable {
  /// The trap bits.
  public let rawValue: UInt8
  /// Traps from raw bits.
  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// CPUID -> `.cpuid(leaf:subleaf:)`, answered with `CPU.completeCPUID(eax:ebx:ecx:edx:)`.
  public static let cpuid = CPUTraps(rawValue: 1 << 0)
  /// RDTSC/RDTSCP -> `.rdtsc`, answered with `CPU.complete(value:)`.
  public static let rdtsc = CPUTraps(rawValue: 1 << 1)
  /// INVLPG -> `.invlpg(address:)`; the model still invalidates its TLB when the instruction resumes.
  public static let invlpg = CPUTraps(rawValue: 1 << 2)
}

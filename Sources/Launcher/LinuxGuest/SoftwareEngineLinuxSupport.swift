import X86

/// Whether the software engines (interp, dbt) can boot Debian's kernel: it refuses a CPU without
/// an x87 FPU ("x86/fpu: Giving up, no FPU found"; its decompressor already probes with FNINIT),
/// and the X86 model advertises the FPU only once it models it (docs/simd.md).
public enum SoftwareEngineLinuxSupport {
  /// nil when Linux can boot on interp and dbt; otherwise why not, in one line.
  public static var missing: String? {
    CPUFeatures.interpreterModel.contains(.fpu)
      ? nil
      : "the X86 model has no x87 FPU yet, and Linux stops at its FPU probe on interp and dbt (docs/linux.md)"
  }
}

/// What the system layer needs from the CPU core: little-endian linear-memory accesses of 1, 2, 4
/// or 8 bytes, translated through paging (raising #PF as `Fault.exception(14, code)` after setting
/// CR2, and `.event` for MMIO).
/// `supervisor` is true for the implicit supervisor accesses the CPU makes for itself (descriptor
/// tables, the TSS, stacks at CPL < 3) and false for accesses at user privilege (CPL 3 stacks).
/// Segmentation is already applied by the caller: these are linear addresses.
public protocol SystemMemoryAccess {
  func readLinear(_ address: UInt64, size: Int, supervisor: Bool) throws(Fault) -> UInt64
  func writeLinear(_ address: UInt64, size: Int, value: UInt64, supervisor: Bool) throws(Fault)
}

/// Canonical-address helpers (SDM vol. 1, "Canonical Addressing").
public enum Canonical {
  /// True when bits 63..(n-1) are all equal, n = 57 with 5-level paging (CR4.LA57), otherwise 48.
  @inlinable public static func isCanonical(_ address: UInt64, la57: Bool = false) -> Bool {
    let shift: UInt64 = la57 ? 7 : 16
    return UInt64(bitPattern: Int64(bitPattern: address << shift) >> Int64(shift)) == address
  }
}

/// Bits of DR6, the debug status register: which debug condition the last #DB reports.
public enum DebugStatus {
  /// B0-B3: breakpoint condition 0-3 met.
  public static let breakpoints: UInt64 = 0xF
  /// BD: a debug-register access while DR7.GD was set.
  public static let registerAccess: UInt64 = 1 << 13
  /// BS: the single-step trap (RFLAGS.TF).
  public static let singleStep: UInt64 = 1 << 14
  /// BT: a task switch into a task whose TSS has the T bit set.
  public static let taskSwitch: UInt64 = 1 << 15
}

/// Bits of DR7, the debug control register, beyond the per-breakpoint enables and conditions.
public enum DebugControl {
  /// GD: MOV to or from a debug register raises #DB (DR6.BD) first.
  public static let generalDetect: UInt64 = 1 << 13
}

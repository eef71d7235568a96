/// The vectors the local APICs deliver (IDT gates in Kernel/Descriptors.swift, stubs in
/// Arch/traps.S). Above the PIC's 0x20...0x2F, in the highest priority classes.
enum InterruptVector {
  /// Each application processor's periodic local APIC timer: its scheduling tick.
  static let localTimer = 0xEF
  /// "Look at your run queue": another CPU queued a task for this idle one.
  static let reschedule = 0xF0
  /// "Invalidate what the shootdown request names and acknowledge" (Kernel/SMP/TLBShootdown.swift).
  static let tlbShootdown = 0xF1
  /// "Run the function in your mailbox" (Kernel/SMP/CrossCall.swift).
  static let crossCall = 0xF2
  /// The local APIC's spurious-interrupt vector (no EOI).
  static let spurious = 0xFF
}

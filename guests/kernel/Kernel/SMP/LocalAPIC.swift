/// This CPU's local APIC through the xAPIC register page (Intel SDM vol. 3A, chapter 11), mapped
/// uncached at 0xFEE00000 by Arch/boot.S. Every CPU sees its own APIC at the same address.
enum LocalAPIC {
  static let base: UInt64 = 0xFEE0_0000

  enum Register {
    static let id: UInt64 = 0x20
    static let taskPriority: UInt64 = 0x80
    static let endOfInterrupt: UInt64 = 0xB0
    static let spuriousVector: UInt64 = 0xF0
    static let interruptCommandLow: UInt64 = 0x300
    static let interruptCommandHigh: UInt64 = 0x310
    static let timerVector: UInt64 = 0x320
    static let lint0: UInt64 = 0x350
    static let lint1: UInt64 = 0x360
    static let errorVector: UInt64 = 0x370
    static let timerInitialCount: UInt64 = 0x380
    static let timerCurrentCount: UInt64 = 0x390
    static let timerDivide: UInt64 = 0x3E0
  }

  static let masked: UInt32 = 1 << 16

  static func read(_ register: UInt64) -> UInt32 { Platform.readRegister32(base + register) }
  static func write(_ register: UInt64, _ value: UInt32) { Platform.writeRegister32(base + register, value) }

  static var id: UInt32 { read(Register.id) >> 24 }

  /// Software-enables the APIC (spurious vector 0xFF), accepts every priority, masks the error
  /// LVT, and wires LINT0 as ExtINT on the boot CPU (the 8259's timer keeps reaching it) and
  /// masked elsewhere; LINT1 (NMI) stays masked.
  static func enable(bootProcessor: Bool) {
    write(Register.taskPriority, 0)
    write(Register.spuriousVector, 0x100 | UInt32(InterruptVector.spurious))
    write(Register.lint0, bootProcessor ? 0x700 : masked)  // delivery mode 7 = ExtINT
    write(Register.lint1, masked)
    write(Register.errorVector, masked)
  }

  static func endOfInterrupt() { write(Register.endOfInterrupt, 0) }

  /// Delivery status (ICR bit 12): 1 while the previous IPI is still being sent.
  private static let sendPending: UInt32 = 1 << 12

  /// Sends an IPI: `command` is the ICR's low word (vector, delivery mode, level, shorthand).
  /// Waits (bounded) for the previous one to leave first.
  static func sendInterprocessorInterrupt(to apicID: UInt32, command: UInt32) {
    var polls = 0
    while read(Register.interruptCommandLow) & sendPending != 0 && polls < 100_000 {
      Platform.spinWaitHint()
      polls += 1
    }
    write(Register.interruptCommandHigh, apicID << 24)
    write(Register.interruptCommandLow, command)
  }
}

/// Inter-processor interrupts through the local APIC's interrupt command register: fixed vectors
/// to one CPU, and the INIT and start-up messages that wake application processors.
enum IPI {
  private static let assert: UInt32 = 1 << 14
  private static let initMode: UInt32 = 5 << 8
  private static let startupMode: UInt32 = 6 << 8

  /// Interrupts CPU `index` with `vector` (fixed delivery, physical destination).
  static func send(_ vector: Int, toCPU index: Int) {
    let target = PerCPU.cpu(index)
    LocalAPIC.sendInterprocessorInterrupt(to: target.pointee.apicID, command: UInt32(vector) | assert)
    SMP.interruptsSent.add(1)
  }

  /// INIT (level assert): the target resets into wait-for-SIPI.
  static func sendINIT(toAPIC apicID: UInt32) {
    LocalAPIC.sendInterprocessorInterrupt(to: apicID, command: initMode | assert)
  }

  /// Start-up IPI: the target begins in real mode at `page` << 12 (CS = page << 8, IP = 0).
  static func sendStartup(toAPIC apicID: UInt32, page: UInt32) {
    LocalAPIC.sendInterprocessorInterrupt(to: apicID, command: startupMode | assert | (page & 0xFF))
  }
}

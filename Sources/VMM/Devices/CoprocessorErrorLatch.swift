/// The PC's math coprocessor error wiring (ports 0xF0-0xF1, IRQ 13), for guests that run with
/// CR0.NE clear (the MS-DOS compatible report of x87 errors, as on the AT where the 80287's
/// ERROR# went to the interrupt controller).
///
/// When a waiting x87 instruction meets an unmasked exception, the CPU asserts FERR# and freezes
/// before the instruction (`VMExit.floatingPointError`): the latch raises IRQ 13. The handler
/// writes port 0xF0, which lowers IRQ 13 and asserts IGNNE#, then usually clears the exception
/// (FNCLEX) and returns. The frozen instruction runs again: with the exception cleared it simply
/// runs; if it is still pending, IGNNE# lets it run once more as if nothing were pending (the
/// CPU keeps ignoring until FSW.ES clears). Port 0xF1 (coprocessor reset on the AT) does the
/// same as 0xF0. Reads return 0xFF.
public final class CoprocessorErrorLatch: PortIODevice, ResettableDevice {
  private let irq: InterruptLine
  /// IGNNE#, asserted by a write to 0xF0 after FERR#, consumed by the next frozen instruction.
  private var ignoring = false

  /// A latch that raises `irq` (IRQ 13 on a PC).
  public init(irq: InterruptLine) { self.irq = irq }

  /// FERR# from a frozen vCPU: true when IGNNE# is asserted (the instruction runs; the CPU keeps
  /// ignoring until FSW.ES clears), otherwise IRQ 13 is raised and the vCPU waits for it.
  /// Called with the device lock held.
  public func signalError() -> Bool {
    if ignoring {
      ignoring = false
      return true
    }
    irq.raise()
    return false
  }

  /// IRQ 13 low, IGNNE# clear (`ResettableDevice`).
  public func reset() {
    ignoring = false
    irq.lower()
  }

  /// A guest IN from 0xF0-0xF1 (`PortIODevice`): nothing to read.
  public func read(port: UInt16, size: Int) -> UInt32 { 0xFF }

  /// A guest OUT to 0xF0-0xF1 (`PortIODevice`): clears the error interrupt and asserts IGNNE#.
  public func write(port: UInt16, size: Int, value: UInt32) {
    irq.lower()
    ignoring = true
  }
}

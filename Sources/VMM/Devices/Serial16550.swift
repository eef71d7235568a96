/// A National Semiconductor 16550A UART, the PC's COM port (COM1 at 0x3F8, IRQ 4).
///
/// The model has the full register set (RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR and the
/// DLAB divisor latch), 16-byte receive FIFO with trigger levels, loopback mode and the four
/// interrupt sources. Registers are decoded from the low three bits of the port, so the device
/// works at any 8-port aligned base.
///
/// Transmission is instantaneous: a byte written to THR goes to `output` at once, so THR and the
/// shifter are always empty (LSR THRE|TEMT) and a THR-empty interrupt follows every write. The
/// baud rate in the divisor latch is kept for the guest to read back but does not pace anything.
///
/// Host input arrives with `receive(_:)` into an unbounded (capped) backlog that refills the FIFO
/// as the guest drains it, like a terminal with hardware flow control: pasted text is not lost to
/// overruns. Overruns can still happen in loopback mode, where the guest feeds itself.
///
/// Interrupts use level semantics: the line is raised while an enabled condition holds and
/// lowered when none does. The line is not gated by MCR OUT2 (QEMU does not gate it either, and
/// simple guests never set OUT2).
public final class Serial16550: PortIODevice, ResettableDevice {
  /// Bytes the guest transmits (outside loopback mode).
  public let output: ([UInt8]) -> Void
  private let irq: InterruptLine?

  // Register state.
  private var ier: UInt8 = 0
  private var lcr: UInt8 = 0
  private var mcr: UInt8 = 0
  private var scr: UInt8 = 0
  private var fcr: UInt8 = 0
  /// Error bits of LSR (OE, PE, FE, BI) that stay set until LSR is read.
  private var lineErrors: UInt8 = 0
  /// Delta bits of MSR (DCTS, DDSR, TERI, DDCD) that stay set until MSR is read.
  private var modemDeltas: UInt8 = 0
  /// The divisor latch (DLL/DLM), 12 = 9600 baud at the PC's 1.8432 MHz clock.
  public private(set) var divisor: UInt16 = 12
  /// THR-empty interrupt condition: set when THR empties (or the interrupt is enabled while it
  /// is empty), cleared by reading IIR while it is the reported source or by writing THR.
  private var thrEmptyPending = false
  private var receiveFIFO = ByteRing(capacity: 16)
  private var backlog = ByteRing(capacity: 64)
  /// The most host input kept waiting for the guest; beyond it input is dropped and counted.
  public static let backlogLimit = 1 << 20
  /// Host bytes dropped because the guest did not read its input.
  public private(set) var droppedInputBytes: UInt64 = 0
  private var irqLevel = false

  // Register offsets.
  private enum Reg {
    static let data = 0, ier = 1, iir = 2, lcr = 3, mcr = 4, lsr = 5, msr = 6, scr = 7
  }
  // LSR bits.
  private static let lsrDataReady: UInt8 = 0x01
  private static let lsrOverrun: UInt8 = 0x02
  private static let lsrBreak: UInt8 = 0x10
  private static let lsrTHRE: UInt8 = 0x20
  private static let lsrTEMT: UInt8 = 0x40
  private static let lsrFIFOError: UInt8 = 0x80
  // IER bits.
  private static let ierRxData: UInt8 = 0x01
  private static let ierTHRE: UInt8 = 0x02
  private static let ierLineStatus: UInt8 = 0x04
  private static let ierModemStatus: UInt8 = 0x08
  // MCR bits.
  private static let mcrLoopback: UInt8 = 0x10

  /// - Parameters:
  ///   - irq: the interrupt line (IRQ 4 for COM1), or nil for a polled-only port.
  ///   - output: receives every byte the guest transmits.
  public init(irq: InterruptLine?, output: @escaping ([UInt8]) -> Void) {
    self.irq = irq
    self.output = output
  }

  /// The UART's registers at power-on (`ResettableDevice`): no interrupts enabled, 8250 mode
  /// (FIFOs off), divisor 12 (9600 baud), receive FIFO empty. Host input still waiting in the
  /// backlog stays for the guest to read after it reboots.
  public func reset() {
    ier = 0
    lcr = 0
    mcr = 0
    scr = 0
    fcr = 0
    lineErrors = 0
    modemDeltas = 0
    divisor = 12
    thrEmptyPending = false
    receiveFIFO.removeAll()
    refillFIFO()
    updateInterrupt()
  }

  // MARK: Host side

  /// Queues host input for the guest. Call from the vCPU thread (drain a `HostInputQueue` here).
  public func receive(_ bytes: [UInt8]) {
    for b in bytes {
      if backlog.count >= Self.backlogLimit {
        droppedInputBytes += 1
        continue
      }
      backlog.append(b)
    }
    refillFIFO()
    updateInterrupt()
  }

  /// Bytes received but not yet read by the guest (FIFO plus backlog).
  public var pendingInputCount: Int { receiveFIFO.count + backlog.count }

  /// True when the guest set the divisor latch access bit (LCR bit 7).
  private var dlab: Bool { lcr & 0x80 != 0 }
  private var fifoEnabled: Bool { fcr & 0x01 != 0 }
  private var loopback: Bool { mcr & Self.mcrLoopback != 0 }
  /// Receive FIFO depth: 16 with FIFOs enabled, a single holding register otherwise.
  private var fifoDepth: Int { fifoEnabled ? 16 : 1 }
  /// Receive trigger level from FCR bits 7:6.
  private var triggerLevel: Int { fifoEnabled ? [1, 4, 8, 14][Int(fcr >> 6)] : 1 }

  // MARK: PortIODevice

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    UInt32(readRegister(Int(port & 7)))
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    writeRegister(Int(port & 7), UInt8(truncatingIfNeeded: value))
  }

  private func readRegister(_ reg: Int) -> UInt8 {
    switch reg {
    case Reg.data:
      if dlab { return UInt8(truncatingIfNeeded: divisor) }
      let byte = receiveFIFO.popFirst() ?? 0
      refillFIFO()
      updateInterrupt()
      return byte
    case Reg.ier:
      if dlab { return UInt8(truncatingIfNeeded: divisor >> 8) }
      return ier
    case Reg.iir:
      let id = interruptIdentification()
      // Reading IIR while it reports THR empty acknowledges that interrupt.
      if id == 0x02 {
        thrEmptyPending = false
        updateInterrupt()
      }
      return id | (fifoEnabled ? 0xC0 : 0)
    case Reg.lcr: return lcr
    case Reg.mcr: return mcr
    case Reg.lsr:
      let value = lineStatus
      lineErrors = 0
      updateInterrupt()
      return value
    case Reg.msr:
      let value = modemStatusLines | modemDeltas
      modemDeltas = 0
      updateInterrupt()
      return value
    default: return scr
    }
  }

  private func writeRegister(_ reg: Int, _ value: UInt8) {
    switch reg {
    case Reg.data:
      if dlab {
        divisor = (divisor & 0xFF00) | UInt16(value)
        return
      }
      transmit(value)
    case Reg.ier:
      if dlab {
        divisor = (divisor & 0x00FF) | UInt16(value) << 8
        return
      }
      let enablingTHRE = value & Self.ierTHRE != 0 && ier & Self.ierTHRE == 0
      ier = value & 0x0F
      // Enabling the THRE interrupt while THR is empty raises it (THR is always empty here).
      if enablingTHRE { thrEmptyPending = true }
      updateInterrupt()
    case Reg.iir:
      writeFIFOControl(value)
    case Reg.lcr:
      lcr = value
    case Reg.mcr:
      let oldLines = modemStatusLines
      mcr = value & 0x1F
      noteModemLineChange(from: oldLines)
      refillFIFO()  // leaving loopback reconnects the host side
      updateInterrupt()
    case Reg.lsr:
      break  // LSR is read-only on a 16550 (writes are a factory-test feature).
    case Reg.msr:
      break
    default:
      scr = value
    }
  }

  private func writeFIFOControl(_ value: UInt8) {
    let wasEnabled = fifoEnabled
    fcr = value & 0xC9  // bits 1 and 2 are self-clearing actions
    if value & 0x02 != 0 || wasEnabled != fifoEnabled {
      receiveFIFO.removeAll()
      lineErrors &= ~Self.lsrOverrun
    }
    // Transmit FIFO clear (bit 2) has nothing to do: the transmit side is always empty.
    refillFIFO()
    updateInterrupt()
  }

  private func transmit(_ byte: UInt8) {
    if loopback {
      if receiveFIFO.count >= fifoDepth {
        lineErrors |= Self.lsrOverrun
      } else {
        receiveFIFO.append(byte)
      }
    } else {
      output([byte])
    }
    // THR emptied at once: the interrupt condition is re-armed.
    thrEmptyPending = true
    updateInterrupt()
  }

  /// Moves host input from the backlog into the FIFO while there is room (not in loopback mode,
  /// where the receiver listens to the transmitter only).
  private func refillFIFO() {
    guard !loopback else { return }
    while receiveFIFO.count < fifoDepth, let b = backlog.popFirst() {
      receiveFIFO.append(b)
    }
  }

  private var lineStatus: UInt8 {
    var v = Self.lsrTHRE | Self.lsrTEMT | lineErrors
    if !receiveFIFO.isEmpty { v |= Self.lsrDataReady }
    if fifoEnabled && lineErrors & (Self.lsrBreak | 0x0C) != 0 { v |= Self.lsrFIFOError }
    return v
  }

  /// MSR bits 7:4. In loopback the modem outputs are wired back to the inputs (DTR->DSR,
  /// RTS->CTS, OUT1->RI, OUT2->DCD); otherwise a connected terminal asserts DCD, DSR and CTS.
  private var modemStatusLines: UInt8 {
    guard loopback else { return 0xB0 }
    var v: UInt8 = 0
    if mcr & 0x02 != 0 { v |= 0x10 }  // RTS -> CTS
    if mcr & 0x01 != 0 { v |= 0x20 }  // DTR -> DSR
    if mcr & 0x04 != 0 { v |= 0x40 }  // OUT1 -> RI
    if mcr & 0x08 != 0 { v |= 0x80 }  // OUT2 -> DCD
    return v
  }

  private func noteModemLineChange(from old: UInt8) {
    let new = modemStatusLines
    let changed = old ^ new
    if changed & 0x10 != 0 { modemDeltas |= 0x01 }
    if changed & 0x20 != 0 { modemDeltas |= 0x02 }
    if old & 0x40 != 0 && new & 0x40 == 0 { modemDeltas |= 0x04 }  // trailing edge of RI
    if changed & 0x80 != 0 { modemDeltas |= 0x08 }
  }

  /// IIR bits 3:0 for the highest-priority enabled pending source (0x01 when none).
  private func interruptIdentification() -> UInt8 {
    if ier & Self.ierLineStatus != 0 && lineErrors & 0x1E != 0 { return 0x06 }
    if ier & Self.ierRxData != 0 && !receiveFIFO.isEmpty {
      // Below the trigger level the 16550 reports a character timeout (after 4 character times
      // of silence; here at once, since no time passes between host bytes).
      return receiveFIFO.count >= triggerLevel || !fifoEnabled ? 0x04 : 0x0C
    }
    if ier & Self.ierTHRE != 0 && thrEmptyPending { return 0x02 }
    if ier & Self.ierModemStatus != 0 && modemDeltas != 0 { return 0x00 }
    return 0x01
  }

  /// Drives the interrupt line to whether any enabled condition holds.
  private func updateInterrupt() {
    let level = interruptIdentification() & 0x01 == 0
    guard level != irqLevel else { return }
    irqLevel = level
    if level { irq?.raise() } else { irq?.lower() }
  }

  /// Whether the UART currently requests an interrupt (for tests and diagnostics).
  public var interruptAsserted: Bool { irqLevel }
}

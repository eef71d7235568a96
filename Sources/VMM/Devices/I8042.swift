/// The Intel 8042 PS/2 keyboard controller at ports 0x60 (data) and 0x64 (status/command), with a
/// keyboard that answers the standard commands and no mouse.
///
/// Controller commands: 0x20/0x60 read/write the command byte, 0xA7/0xA8 disable/enable the aux
/// port, 0xA9 aux interface test (0x00), 0xAA self test (0x55, sets the system flag), 0xAB keyboard
/// interface test (0x00), 0xAD/0xAE disable/enable the keyboard, 0xC0 read input port, 0xD0/0xD1
/// read/write the output port (bit 0: reset line, low = reset; bit 1: A20), 0xD2/0xD3 write the
/// keyboard/aux output buffer, 0xD4 write to the aux device (there is no mouse: the controller
/// flags a timeout and the aux port answers 0xFE, so probes fail fast), 0xDD/0xDF A20 off/on, 0xF0-0xFF pulse output lines (bit 0 clear
/// pulses reset: `MachineControl.requestReset`).
///
/// Keyboard commands (bytes written to 0x60): 0xFF reset (0xFA, 0xAA), 0xF2 identify (0xFA,
/// 0xAB, 0x83), 0xEE echo, 0xED/0xF0/0xF3 with their argument byte, 0xF4/0xF5 enable/disable,
/// others acknowledged with 0xFA. Scan code set queries answer set 2.
///
/// Interrupts: IRQ 1 (keyboard) and IRQ 12 (aux) are raised while a byte from that source waits
/// in the output buffer and the command byte enables the interrupt and does not disable that
/// interface (bits 4/5), lowered when it is read (and raised again at once when another byte
/// waits, so every byte is an edge).
public final class I8042: PortIODevice, ResettableDevice {
  private enum Source { case keyboard, aux }
  private var output: [(byte: UInt8, source: Source)] = []
  private var commandByte: UInt8 = 0x45  // keyboard IRQ on, system flag, translation
  private var outputPort: UInt8 = 0x03  // reset line high, A20 on
  private var pendingControllerCommand: UInt8?
  private var pendingKeyboardCommand: UInt8?
  private var lastWriteWasCommand = false
  private var timeoutError = false
  private let keyboardIRQ: InterruptLine?
  private let auxIRQ: InterruptLine?
  private var keyboardLevel = false
  private var auxLevel = false

  private let control: MachineControl

  /// The output port's bit 1, which holds the A20 gate open (`MachineControl.setA20`).
  public var a20Enabled: Bool { outputPort & 0x02 != 0 }

  /// - Parameters:
  ///   - keyboardIRQ: IRQ 1.
  ///   - auxIRQ: IRQ 12.
  ///   - control: where the reset line and the A20 bit go.
  public init(
    keyboardIRQ: InterruptLine? = nil, auxIRQ: InterruptLine? = nil, control: MachineControl = MachineControl()
  ) {
    self.control = control
    self.keyboardIRQ = keyboardIRQ
    self.auxIRQ = auxIRQ
  }

  /// The controller's power-on state (`ResettableDevice`): default command byte, reset line high
  /// and A20 on, no pending command or output, interrupts lowered.
  public func reset() {
    output = []
    commandByte = 0x45
    outputPort = 0x03
    pendingControllerCommand = nil
    pendingKeyboardCommand = nil
    lastWriteWasCommand = false
    timeoutError = false
    updateInterrupts()
  }

  /// Queues scan codes as if typed on the keyboard.
  public func typeScanCodes(_ codes: [UInt8]) {
    for c in codes { enqueue(c, .keyboard) }
    updateInterrupts()
  }

  // MARK: PortIODevice

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    if port == 0x64 { return UInt32(status) }
    guard !output.isEmpty else { return 0 }
    let byte = output.removeFirst().byte
    // Reading empties the output buffer, which drops the interrupt line; the next byte then
    // raises it again: one edge per byte, as the I/O APIC's edge-triggered pins need (a line left
    // high across a multi-byte reply such as the keyboard ID lost its later bytes).
    lowerInterrupts()
    updateInterrupts()
    return UInt32(byte)
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    let byte = UInt8(truncatingIfNeeded: value)
    if port == 0x64 {
      lastWriteWasCommand = true
      controllerCommand(byte)
    } else {
      lastWriteWasCommand = false
      dataWrite(byte)
    }
    updateInterrupts()
  }

  private var status: UInt8 {
    var s: UInt8 = 0x10  // keyboard not inhibited
    if let first = output.first {
      s |= 0x01
      if first.source == .aux { s |= 0x20 }
    }
    if commandByte & 0x04 != 0 { s |= 0x04 }
    if lastWriteWasCommand { s |= 0x08 }
    if timeoutError { s |= 0x40 }
    return s
  }

  private func controllerCommand(_ c: UInt8) {
    pendingControllerCommand = nil
    switch c {
    case 0x20: reply(commandByte)
    case 0x60, 0xD1, 0xD2, 0xD3, 0xD4: pendingControllerCommand = c
    case 0xA7: commandByte |= 0x20
    case 0xA8: commandByte &= ~0x20
    case 0xA9: reply(0x00)
    case 0xAA:
      commandByte |= 0x04
      reply(0x55)
    case 0xAB: reply(0x00)
    case 0xAD: commandByte |= 0x10
    case 0xAE: commandByte &= ~0x10
    case 0xC0: reply(0x80)  // keyboard not inhibited
    case 0xD0: reply(outputPort)
    case 0xDD: setOutputPort(outputPort & ~0x02)
    case 0xDF: setOutputPort(outputPort | 0x02)
    case 0xF0...0xFF:
      if c & 0x01 == 0 { control.requestReset(.keyboardController) }
    default: break
    }
  }

  private func setOutputPort(_ value: UInt8) {
    outputPort = value
    control.setA20(.keyboardController, enabled: value & 0x02 != 0)
  }

  private func dataWrite(_ b: UInt8) {
    if let c = pendingControllerCommand {
      pendingControllerCommand = nil
      switch c {
      case 0x60: commandByte = b
      case 0xD1:
        setOutputPort(b)
        if b & 0x01 == 0 { control.requestReset(.keyboardController) }
      case 0xD2: enqueue(b, .keyboard)
      case 0xD3: enqueue(b, .aux)
      default:
        // 0xD4: there is no mouse. Answer "resend" at once so a driver's probe fails fast
        // instead of waiting out its timeouts, and flag the timeout as a real controller does.
        timeoutError = true
        enqueue(0xFE, .aux)
      }
      return
    }
    timeoutError = false
    commandByte &= ~0x10  // a write to the keyboard enables its interface
    keyboardCommand(b)
  }

  private func keyboardCommand(_ b: UInt8) {
    if let c = pendingKeyboardCommand {
      pendingKeyboardCommand = nil
      if c == 0xF0 && b == 0 {
        reply(0xFA, 0x02)  // current scan code set: 2
      } else {
        reply(0xFA)
      }
      return
    }
    switch b {
    case 0xFF: reply(0xFA, 0xAA)
    case 0xF2: reply(0xFA, 0xAB, 0x83)
    case 0xEE: reply(0xEE)
    case 0xED, 0xF0, 0xF3:
      pendingKeyboardCommand = b
      reply(0xFA)
    default: reply(0xFA)
    }
  }

  private func reply(_ bytes: UInt8...) {
    for b in bytes { enqueue(b, .keyboard) }
  }

  /// The most bytes kept for a guest that never reads them.
  static let outputLimit = 64

  private func enqueue(_ byte: UInt8, _ source: Source) {
    guard output.count < Self.outputLimit else { return }
    output.append((byte, source))
  }

  private func lowerInterrupts() {
    if keyboardLevel {
      keyboardLevel = false
      keyboardIRQ?.lower()
    }
    if auxLevel {
      auxLevel = false
      auxIRQ?.lower()
    }
  }

  private func updateInterrupts() {
    let head = output.first?.source
    // A disabled interface (command byte bits 4/5) raises no interrupt, even for the controller's
    // own replies: firmware self-tests the controller with the keyboard disabled and polls.
    let kbd = head == .keyboard && commandByte & 0x11 == 0x01
    let aux = head == .aux && commandByte & 0x22 == 0x02
    if kbd != keyboardLevel {
      keyboardLevel = kbd
      if kbd { keyboardIRQ?.raise() } else { keyboardIRQ?.lower() }
    }
    if aux != auxLevel {
      auxLevel = aux
      if aux { auxIRQ?.raise() } else { auxIRQ?.lower() }
    }
  }
}

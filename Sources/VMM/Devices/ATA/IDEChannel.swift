/// One IDE (parallel ATA) channel in legacy compatibility mode: the command block at
/// `commandBase`...+7 (0x1F0 or 0x170), the control block register at `controlPort` (0x3F6 or
/// 0x376; 0x3F7 stays with the floppy controller) and one interrupt line (IRQ 14 or 15), with up to
/// two drives (device 0 and device 1, "master" and "slave").
///
/// | port | read | write |
/// |------|------|-------|
/// | base+0 | data (16 bits; a 32-bit access moves two words) | data |
/// | base+1 | error | features |
/// | base+2...+5 | sector count, LBA low/mid/high (the previous values while HOB is set) | the same (two deep for 48-bit commands) |
/// | base+6 | device/head | device/head (bit 4 selects the device) |
/// | base+7 | status (clears the pending interrupt) | command |
/// | control | alternate status (does not clear it) | device control: nIEN (bit 1), SRST (bit 2), HOB (bit 7) |
///
/// The selected device answers; when it is absent, its status reads 0 and commands to it are
/// ignored, while the shared registers read back what was written (so firmware's register test
/// passes and its IDENTIFY then finds no device, as on a PC). A channel without drives reads 0
/// everywhere. The interrupt line follows the channel's pending interrupt while nIEN is clear.
public final class IDEChannel: PortIODevice, ResettableDevice {
  /// The first command-block port.
  public let commandBase: UInt16
  /// The control-block port (alternate status / device control).
  public let controlPort: UInt16
  private let irq: InterruptLine
  private let drives: [ATADrive?]
  private var taskFile = ATATaskFile()
  /// Device control: nIEN (0x02), SRST (0x04), HOB (0x80).
  private var deviceControl: UInt8 = 0
  private var interruptPending = false
  private var lineHigh = false

  /// A channel at `commandBase`/`controlPort` raising `irq`, with `master` and `slave` images
  /// (either may be nil); `firstUnit` numbers its drives on the controller (0 or 2).
  public init(
    commandBase: UInt16, controlPort: UInt16, irq: InterruptLine, master: DiskImage?, slave: DiskImage?,
    firstUnit: Int
  ) {
    self.commandBase = commandBase
    self.controlPort = controlPort
    self.irq = irq
    drives = [
      master.map { ATADrive(image: $0, unit: firstUnit) }, slave.map { ATADrive(image: $0, unit: firstUnit + 1) },
    ]
    reset()
  }

  /// Sectors the channel's drives read for the guest, and wrote.
  public var sectorsRead: UInt64 { drives.reduce(0) { $0 + ($1?.sectorsRead ?? 0) } }
  /// Sectors written to the channel's images.
  public var sectorsWritten: UInt64 { drives.reduce(0) { $0 + ($1?.sectorsWritten ?? 0) } }

  /// Power-on state (`ResettableDevice`): drives reset, the ATA signature in the registers,
  /// interrupts enabled and none pending.
  public func reset() {
    for d in drives { d?.reset() }
    taskFile = ATATaskFile()
    taskFile.setSignature()
    deviceControl = 0
    setInterrupt(false)
  }

  private var selected: ATADrive? { drives[taskFile.selectedDevice] }
  private var hasDrives: Bool { drives.contains { $0 != nil } }

  private func setInterrupt(_ pending: Bool) {
    interruptPending = pending
    let high = pending && deviceControl & 0x02 == 0
    guard high != lineHigh else { return }
    lineHigh = high
    if high { irq.raise() } else { irq.lower() }
  }

  /// The status the selected device shows (BSY while the channel is held in reset; 0 when the
  /// device is absent).
  private var currentStatus: UInt8 {
    guard let d = selected else { return 0 }
    return deviceControl & 0x04 != 0 ? ATADrive.Status.busy : d.status
  }

  /// A guest IN (`PortIODevice`; vCPU thread, under the bus's lock for this device).
  public func read(port: UInt16, size: Int) -> UInt32 {
    guard hasDrives else { return 0 }
    if port == controlPort { return UInt32(currentStatus) }
    let hob = deviceControl & 0x80 != 0
    switch port &- commandBase {
    case 0: return readData(size: size)
    case 1: return selected.map { UInt32($0.error) } ?? 0
    case 2...5: return UInt32(taskFile.read(Int(port &- commandBase), hob: hob))
    case 6: return UInt32(taskFile.device)
    case 7:
      let s = currentStatus
      setInterrupt(false)
      return UInt32(s)
    default: return 0xFFFF_FFFF
    }
  }

  /// A guest OUT (`PortIODevice`; vCPU thread, under the bus's lock for this device).
  public func write(port: UInt16, size: Int, value: UInt32) {
    let byte = UInt8(truncatingIfNeeded: value)
    if port == controlPort {
      writeDeviceControl(byte)
      return
    }
    let offset = port &- commandBase
    if offset != 0 { deviceControl &= ~0x80 }  // a register write clears HOB
    switch offset {
    case 0: writeData(size: size, value: value)
    case 1...5: taskFile.write(Int(offset), byte)
    case 6: taskFile.device = byte
    case 7: runCommand(byte)
    default: break
    }
  }

  private func writeDeviceControl(_ byte: UInt8) {
    let wasResetting = deviceControl & 0x04 != 0
    deviceControl = byte & 0x86
    if deviceControl & 0x04 != 0 {
      // SRST asserted: the drives stop whatever they did and stay busy until it is released.
      if !wasResetting {
        for d in drives { d?.reset() }
        setInterrupt(false)
      }
    } else if wasResetting {
      // SRST released: both drives come back with the signature, device 0 selected.
      taskFile.setSignature()
    }
    setInterrupt(interruptPending)
  }

  private func runCommand(_ command: UInt8) {
    guard deviceControl & 0x04 == 0, hasDrives else { return }
    if command == 0x90 {
      // EXECUTE DEVICE DIAGNOSTIC addresses both devices; device 0 reports for the pair.
      for d in drives { d?.reset() }  // both back to the signature, diagnostics passed
      taskFile.setSignature()
      setInterrupt(true)
      return
    }
    guard let d = selected else { return }
    setInterrupt(false)
    if d.execute(command, &taskFile) { setInterrupt(true) }
  }

  private func readData(size: Int) -> UInt32 {
    guard let d = selected, deviceControl & 0x04 == 0 else { return 0xFFFF_FFFF }
    var value: UInt32 = 0
    // A 32-bit access moves two words (PIO32); a byte access takes a whole word.
    for i in 0..<(size == 4 ? 2 : 1) {
      let (word, interrupt) = d.readData(&taskFile)
      value |= UInt32(word) << (16 * UInt32(i))
      if interrupt { setInterrupt(true) }
    }
    return size == 1 ? value & 0xFF : value
  }

  private func writeData(size: Int, value: UInt32) {
    guard let d = selected, deviceControl & 0x04 == 0 else { return }
    for i in 0..<(size == 4 ? 2 : 1) {
      if d.writeData(UInt16(truncatingIfNeeded: value >> (16 * UInt32(i))), &taskFile) { setInterrupt(true) }
    }
  }
}

/// The machine's IDE controller: a PCI IDE function (Intel 82371SB PIIX3 IDE, 8086:7010, class
/// 01:01, programming interface 0x00: both channels in legacy compatibility mode, no bus master)
/// with its two channels at the ISA addresses every PC BIOS and OS knows.
///
/// | channel | command block | control | IRQ | drives (`--disk` order) |
/// |---------|---------------|---------|-----|--------------------------|
/// | primary | 0x1F0-0x1F7 | 0x3F6 | 14 | 1st (device 0), 2nd (device 1) |
/// | secondary | 0x170-0x177 | 0x376 | 15 | 3rd, 4th |
///
/// The BARs read as zero (legacy mode decodes the fixed ports); the IDE timing registers 0x40-0x43
/// come up with both channels' decode-enable bits set, as firmware leaves them, and are stored but
/// do not gate decoding. Without a bus master (BAR4) guests use PIO: SeaBIOS always does, Linux's
/// ata_piix falls back to it.
public final class IDEController: PCIFunction, ResettableDevice {
  /// At most this many drives: two per channel.
  public static let maximumDrives = 4
  /// The primary channel (0x1F0, IRQ 14).
  public let primary: IDEChannel
  /// The secondary channel (0x170, IRQ 15).
  public let secondary: IDEChannel
  private var configuration: PCIConfigurationSpace

  /// A controller with `disks` (at most four, in the order of the table above) raising its
  /// interrupts on `sink`.
  public init(disks: [DiskImage], sink: any InterruptSink) {
    precondition(disks.count <= IDEController.maximumDrives, "at most \(IDEController.maximumDrives) IDE drives")
    let d = disks.map { Optional($0) } + [DiskImage?](repeating: nil, count: IDEController.maximumDrives - disks.count)
    primary = IDEChannel(
      commandBase: 0x1F0, controlPort: 0x3F6, irq: InterruptLine(sink: sink, line: 14), master: d[0], slave: d[1],
      firstUnit: 0)
    secondary = IDEChannel(
      commandBase: 0x170, controlPort: 0x376, irq: InterruptLine(sink: sink, line: 15), master: d[2], slave: d[3],
      firstUnit: 2)
    configuration = IDEController.powerOnConfiguration()
  }

  private static func powerOnConfiguration() -> PCIConfigurationSpace {
    var c = PCIConfigurationSpace(vendor: 0x8086, device: 0x7010, classCode: 0x01_01_00)
    c.set16(0x04, 0x0001)  // I/O space decoding on, as firmware leaves a legacy IDE controller
    c.set16(0x06, 0x0280)  // fast back-to-back capable, medium DEVSEL
    for offset in 0x40...0x43 { c.allowWrites(offset, mask: 0xFF) }
    c.set8(0x41, 0x80)  // primary channel IDE decode enable (IDETIM bit 15)
    c.set8(0x43, 0x80)  // secondary channel
    return c
  }

  /// Registers both channels' ports on `bus`.
  public func register(on bus: PortIOBus) throws(PortIOBus.BusError) {
    for channel in [primary, secondary] {
      try bus.register(channel, ports: channel.commandBase...(channel.commandBase + 7))
      try bus.register(channel, ports: channel.controlPort...channel.controlPort)
    }
  }

  /// Sectors read for the guest on both channels.
  public var sectorsRead: UInt64 { primary.sectorsRead + secondary.sectorsRead }
  /// Sectors written on both channels.
  public var sectorsWritten: UInt64 { primary.sectorsWritten + secondary.sectorsWritten }

  /// `PCIFunction`: the configuration space (under the host bridge's lock).
  public func readConfiguration(offset: Int, size: Int) -> UInt32 { configuration.read(offset: offset, size: size) }

  /// `PCIFunction`: a guest write (writable bits only).
  public func writeConfiguration(offset: Int, size: Int, value: UInt32) {
    configuration.write(offset: offset, size: size, value: value)
  }

  /// `PCIFunction`: the configuration space at power-on.
  public func resetConfiguration() { configuration = IDEController.powerOnConfiguration() }

  /// Both channels back to power-on (`ResettableDevice`; the configuration space is reset by the
  /// host bridge).
  public func reset() {
    primary.reset()
    secondary.reset()
  }
}

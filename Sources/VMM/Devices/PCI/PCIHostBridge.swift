/// PCI configuration mechanism #1 (ports 0xCF8 and 0xCFC-0xCFF) with bus 0, which holds an
/// Intel 440FX-like host bridge at 00:00.0 and the functions attached to it (`attach`, e.g. the
/// IDE controller when the machine has disks), plus the PIIX reset control register at 0xCF9.
///
/// The subsystem IDs are QEMU's (1AF4:1100), which is how SeaBIOS recognizes an emulated i440FX.
/// Enough for firmware (SeaBIOS) and Linux to enumerate PCI and find the bridge and the attached
/// functions: every other device, function and bus reads as all ones. The bridge's configuration space is
/// 256 bytes; the command register, latency timer, the PAM registers (0x59-0x5F) and SMRAM (0x72)
/// are writable and read back, but PAM and SMRAM change no memory mapping here (firmware that
/// shadows itself into RAM still works because its ROM copy below 1 MiB is plain RAM already).
///
/// Register this device for 0xCF8...0xCFF. The address register is a 32-bit register at 0xCF8;
/// byte accesses to 0xCF9 reach the reset control register instead (bit 2 set on a write: reset).
public final class PCIHostBridge: PortIODevice, ResettableDevice {
  private var address: UInt32 = 0
  private var config = [UInt8](repeating: 0, count: 256)
  private var resetControl: UInt8 = 0
  private let control: MachineControl
  /// Functions attached at device numbers 1-31 (function 0 each).
  private var slots: [Int: any PCIFunction] = [:]

  /// Bytes of the bridge's configuration space the guest may change.
  private static let writable: Set<Int> = Set([0x04, 0x05, 0x0D] + Array(0x59...0x5F) + [0x72])

  /// The device in its power-on state; a reset through 0xCF9 goes to `control`.
  public init(control: MachineControl = MachineControl()) {
    self.control = control
    reset()
  }

  /// The bridge's configuration space and the address and reset-control registers at power-on
  /// (`ResettableDevice`): PAM and SMRAM registers clear.
  public func reset() {
    for function in slots.values { function.resetConfiguration() }
    address = 0
    resetControl = 0
    config = [UInt8](repeating: 0, count: 256)
    put16(0x00, 0x8086)  // Intel
    put16(0x02, 0x1237)  // 82441FX (440FX host bridge)
    put16(0x04, 0x0006)  // memory space, bus master
    put16(0x06, 0x0280)  // fast back-to-back, medium DEVSEL
    config[0x08] = 0x02  // revision
    config[0x0A] = 0x00  // subclass: host bridge
    config[0x0B] = 0x06  // class: bridge
    config[0x0E] = 0x00  // header type 0, single function
    // QEMU's subsystem IDs (Red Hat, "QEMU virtual machine"): SeaBIOS recognizes the emulated
    // chipset by them and only then reads its memory size from CMOS and fw_cfg.
    put16(0x2C, 0x1AF4)
    put16(0x2E, 0x1100)
    config[0x72] = 0x02  // SMRAM: default
  }

  private func put16(_ at: Int, _ v: UInt16) {
    config[at] = UInt8(truncatingIfNeeded: v)
    config[at + 1] = UInt8(truncatingIfNeeded: v >> 8)
  }

  /// Attaches `function` as device `slot` (1-31), function 0, of bus 0, before the machine runs.
  /// False when the slot is taken or out of range.
  @discardableResult public func attach(_ function: any PCIFunction, slot: Int) -> Bool {
    guard (1...31).contains(slot), slots[slot] == nil else { return false }
    slots[slot] = function
    return true
  }

  /// What the current address selects: the bridge itself (nil function) or an attached
  /// function, and the configuration-space offset; nil when it selects nothing that exists.
  private func selected(port: UInt16) -> (function: (any PCIFunction)?, offset: Int)? {
    guard address & 0x8000_0000 != 0 else { return nil }
    let bus = (address >> 16) & 0xFF
    let device = Int((address >> 11) & 0x1F)
    let function = (address >> 8) & 0x7
    guard bus == 0, function == 0 else { return nil }
    let offset = Int(address & 0xFC) + Int(port - 0xCFC)
    if device == 0 { return (nil, offset) }
    guard let attached = slots[device] else { return nil }
    return (attached, offset)
  }

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    switch port {
    case 0xCF8 where size == 4: return address
    case 0xCF9 where size == 1: return UInt32(resetControl)
    case 0xCFC...0xCFF:
      guard let (function, offset) = selected(port: port) else { return 0xFFFF_FFFF }
      if let function { return function.readConfiguration(offset: offset, size: min(size, 256 - offset)) }
      var value: UInt32 = 0
      for i in 0..<size where offset + i < 256 { value |= UInt32(config[offset + i]) << (8 * i) }
      return value
    default: return 0xFFFF_FFFF
    }
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    switch port {
    case 0xCF8 where size == 4:
      address = value & 0x80FF_FFFC
    case 0xCF9 where size == 1:
      resetControl = UInt8(truncatingIfNeeded: value) & 0x0A
      if value & 0x04 != 0 { control.requestReset(.resetControlRegister) }
    case 0xCFC...0xCFF:
      guard let (function, offset) = selected(port: port) else { return }
      if let function {
        function.writeConfiguration(offset: offset, size: min(size, 256 - offset), value: value)
        return
      }
      for i in 0..<size where offset + i < 256 && Self.writable.contains(offset + i) {
        config[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i))
      }
    default: return
    }
  }
}

/// QEMU's firmware configuration interface ("fw_cfg"), the traditional I/O-port flavour: a 16-bit
/// selector at port 0x510 and a byte-wide data port at 0x511. No DMA interface.
///
/// Writing a key to the selector rewinds the item to its first byte; each data read returns the
/// next byte, 0 past the end. Writes to the data port are ignored (items are read-only).
///
/// Items always present: 0x0000 the signature "QEMU", 0x0001 the interface ID (1: traditional
/// only), 0x0019 the file directory (big-endian count, then 64-byte entries of big-endian size,
/// selector, reserved and a 56-byte NUL-padded name). Files get selectors from 0x0020 in the
/// order added. `standard(memory:cpuCount:)` adds what SeaBIOS reads: 0x0003 RAM size,
/// 0x0005 and 0x000F CPU counts, and the file "etc/e820" (20-byte entries: address, length,
/// type, little endian; one usable entry per RAM region) and "etc/sercon-port" (0x3F8: SeaBIOS,
/// having no VGA, writes its screen output to COM1).
public final class FwCfg: PortIODevice, ResettableDevice {
  /// Selector of the "QEMU" signature.
  public static let signatureKey: UInt16 = 0x0000
  /// Selector of the feature bitmap (bit 0: traditional interface).
  public static let idKey: UInt16 = 0x0001
  /// Selector of the RAM size below 4 GiB.
  public static let ramSizeKey: UInt16 = 0x0003
  /// Selector of the number of CPUs.
  public static let cpuCountKey: UInt16 = 0x0005
  /// Selector of the maximum number of CPUs.
  public static let maxCPUCountKey: UInt16 = 0x000F
  /// Selector of the file directory.
  public static let fileDirectoryKey: UInt16 = 0x0019
  /// Selector of the first named file; files follow in order.
  public static let firstFileKey: UInt16 = 0x0020
  /// Longest file name, without the terminating NUL.
  public static let maximumNameLength = 55

  private var items: [UInt16: [UInt8]] = [:]
  private var files: [(name: String, key: UInt16)] = []
  private var selected: UInt16 = 0
  private var offset = 0

  /// The device in its power-on state.
  public init() {
    items[Self.signatureKey] = Array("QEMU".utf8)
    items[Self.idKey] = le(UInt32(1))
    rebuildDirectory()
  }

  /// Selector back to 0 (`ResettableDevice`); the items are the machine's and stay.
  public func reset() {
    selected = 0
    offset = 0
  }

  /// An fw_cfg with the items SeaBIOS needs for a guest with `memory` and `cpuCount` CPUs.
  public static func standard(memory: GuestMemory, cpuCount: Int = 1) -> FwCfg {
    let f = FwCfg()
    f.setItem(ramSizeKey, f.le(memory.ramSize))
    f.setItem(cpuCountKey, f.le(UInt16(clamping: cpuCount)))
    f.setItem(maxCPUCountKey, f.le(UInt16(clamping: cpuCount)))
    // One usable entry per RAM region ([0, low end) and from 4 GiB); SeaBIOS carves out its own
    // reserved areas below 1 MiB.
    var e820: [UInt8] = []
    for r in memory.regions where r.kind == .ram {
      e820 += f.le(r.guestAddress) + f.le(r.size) + f.le(E820Entry.Kind.usable.rawValue)
    }
    _ = f.addFile("etc/e820", data: e820)
    // Without a VGA device SeaBIOS shows its screen (banner, boot messages) on this UART.
    _ = f.addFile("etc/sercon-port", data: f.le(UInt16(0x3F8)))
    return f
  }

  private func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
  private func be<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.bigEndian, Array.init) }

  /// Sets a numbered item (replacing any previous value).
  public func setItem(_ key: UInt16, _ data: [UInt8]) {
    items[key] = data
  }

  /// Adds a named file and returns its selector, or nil if the name is too long or already used.
  @discardableResult
  public func addFile(_ name: String, data: [UInt8]) -> UInt16? {
    guard !name.isEmpty, name.utf8.count <= Self.maximumNameLength, !files.contains(where: { $0.name == name })
    else { return nil }
    let key = Self.firstFileKey + UInt16(files.count)
    files.append((name, key))
    items[key] = data
    rebuildDirectory()
    return key
  }

  private func rebuildDirectory() {
    var dir = be(UInt32(files.count))
    for f in files {
      dir += be(UInt32(items[f.key]?.count ?? 0)) + be(f.key) + [0, 0]
      var name = Array(f.name.utf8)
      name += [UInt8](repeating: 0, count: 56 - name.count)
      dir += name
    }
    items[Self.fileDirectoryKey] = dir
  }

  // MARK: PortIODevice

  /// A guest IN of `size` bytes from one of the device's ports (`PortIODevice`; vCPU thread).
  public func read(port: UInt16, size: Int) -> UInt32 {
    guard port == 0x511 else { return 0 }
    var value: UInt32 = 0
    // Wider reads of the data port return consecutive bytes, as QEMU does.
    for i in 0..<max(1, min(size, 4)) { value |= UInt32(nextByte()) << (8 * i) }
    return value
  }

  private func nextByte() -> UInt8 {
    guard let data = items[selected], offset < data.count else { return 0 }
    defer { offset += 1 }
    return data[offset]
  }

  /// A guest OUT of `size` bytes to one of the device's ports (`PortIODevice`; vCPU thread).
  public func write(port: UInt16, size: Int, value: UInt32) {
    guard port == 0x510 else { return }
    selected = UInt16(truncatingIfNeeded: value)
    offset = 0
  }
}

extension FwCfg {
  /// The contents of the file named `name`, or nil when there is none.
  public func file(named name: String) -> [UInt8]? {
    files.first { $0.name == name }.flatMap { items[$0.key] }
  }
}

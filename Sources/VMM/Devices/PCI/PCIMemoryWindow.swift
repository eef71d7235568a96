/// A PCI function with a memory BAR the guest may move (`PCIMemoryWindow` routes accesses to it).
public protocol PCIMemoryBARFunction: PCIFunction {
  /// Where its memory BAR decodes now (base and size), or nil while it decodes nothing (memory
  /// space disabled, BAR unassigned).
  var decodedMemoryBAR: (base: UInt64, size: UInt64)? { get }
  /// A guest read of `size` bytes at `offset` inside the BAR.
  func readMemoryBAR(offset: UInt64, size: Int) -> UInt64
  /// A guest write of `size` bytes at `offset` inside the BAR.
  func writeMemoryBAR(offset: UInt64, size: Int, value: UInt64)
}

/// The 32-bit PCI memory window: one MMIO registration covering the hole below 4 GiB where
/// firmware and operating systems place memory BARs, which routes each access to the function
/// whose BAR decodes the address at that moment. The MMIO bus is frozen once the machine runs, but
/// BARs move whenever the guest reprograms them; the window reads each function's current decode
/// on every access, so a BAR works wherever the guest puts it inside the window. An address no BAR
/// decodes reads as all ones and ignores writes, like an unclaimed PCI address.
public final class PCIMemoryWindow: MMIODevice {
  /// The window: from the MMIO hole's start (`GuestMemory.mmioHoleStart`) to the I/O APIC.
  public static let base: UInt64 = GuestMemory.mmioHoleStart
  /// Its length.
  public static let size: UInt64 = 0xFEC0_0000 - GuestMemory.mmioHoleStart
  private var functions: [any PCIMemoryBARFunction] = []

  /// An empty window.
  public init() {}

  /// Adds a function before the machine runs.
  public func add(_ function: any PCIMemoryBARFunction) { functions.append(function) }

  /// Whether any function was added (the machine registers the window only then).
  public var isEmpty: Bool { functions.isEmpty }

  private func target(_ offset: UInt64, _ size: Int) -> (any PCIMemoryBARFunction, UInt64)? {
    let address = PCIMemoryWindow.base &+ offset
    for f in functions {
      guard let (base, length) = f.decodedMemoryBAR, address >= base, address &- base < length else { continue }
      let inner = address - base
      guard inner &+ UInt64(size) <= length else { return nil }
      return (f, inner)
    }
    return nil
  }

  /// `MMIODevice`: a read somewhere in the window.
  public func read(offset: UInt64, size: Int) -> UInt64 {
    guard let (f, inner) = target(offset, size) else { return ~0 }
    return f.readMemoryBAR(offset: inner, size: size)
  }

  /// `MMIODevice`: a write somewhere in the window.
  public func write(offset: UInt64, size: Int, value: UInt64) {
    guard let (f, inner) = target(offset, size) else { return }
    f.writeMemoryBAR(offset: inner, size: size, value: value)
  }
}

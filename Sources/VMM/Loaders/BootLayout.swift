/// The fixed low-memory layout of the structures the VMM builds for a guest before it runs.
///
/// ```
/// 0x00000-0x004FF  left alone (real-mode IVT and BIOS data area)
/// 0x00500-0x0053F  GDT: 0x08 32-bit flat code, 0x10 64-bit code, 0x18 flat data
/// 0x01000-0x01FFF  Linux zero page (boot_params)
/// 0x02000-0x03FFF  Multiboot information, memory map, module list, boot loader name
/// 0x04000-0x07FFF  kernel command line (NUL-terminated, at most 16 KiB - 1)
/// 0x09000-0x09FFF  PML4
/// 0x0A000-0x0AFFF  PDPT (one: the identity map covers at most 512 GiB)
/// 0x0B000-0x4AFFF  page directories, 2 MiB pages, one per GiB identity mapped (4 to 64)
/// 0x70000-0x7FFFF  boot stack; RSP/ESP = 0x80000 at entry
/// ```
///
/// An image that would overlap a structure its boot path uses is refused with an error naming
/// both. Flat real-mode binaries use none of them.
public enum BootLayout {
  /// The boot GDT.
  public static let gdt: Range<UInt64> = 0x500..<0x540
  /// The Linux zero page (boot_params).
  public static let zeroPage: Range<UInt64> = 0x1000..<0x2000
  /// The Multiboot information block, memory map and module list.
  public static let multibootInfo: Range<UInt64> = 0x2000..<0x4000
  /// The kernel command line (NUL-terminated).
  public static let commandLine: Range<UInt64> = 0x4000..<0x8000
  /// The PML4 of the identity map.
  public static let pml4: UInt64 = 0x9000
  /// The PDPT of the identity map.
  public static let pdpt: UInt64 = 0xA000
  /// The first page directory (2 MiB pages, one directory per GiB).
  public static let pageDirectories: UInt64 = 0xB000
  /// The most GiB the boot identity map covers (64 page directories).
  public static let maximumMappedGiB: UInt64 = 64
  /// Everything the identity map may occupy.
  public static let pageTables: Range<UInt64> = 0x9000..<(0xB000 + 64 * 0x1000)
  /// The boot stack.
  public static let stack: Range<UInt64> = 0x70000..<0x80000
  /// RSP/ESP at entry.
  public static let stackTop: UInt64 = 0x80000

  /// GDT selectors.
  public static let code32Selector: UInt16 = 0x08
  /// The 64-bit code selector of the boot GDT.
  public static let code64Selector: UInt16 = 0x10
  /// The flat data selector of the boot GDT.
  public static let dataSelector: UInt16 = 0x18

  /// The GDT entries, in order (null, 32-bit code, 64-bit code, data).
  static let gdtEntries: [UInt64] = [
    0,
    0x00CF_9B00_0000_FFFF,  // 32-bit code: base 0, limit 4 GiB, present, DPL 0, execute/read, accessed
    0x00AF_9B00_0000_FFFF,  // 64-bit code: L=1, D=0
    0x00CF_9300_0000_FFFF,  // data: base 0, limit 4 GiB, read/write, accessed
  ]

  /// Writes the GDT at `gdt.lowerBound`.
  static func writeGDT(into memory: GuestMemory) throws(LoaderError) {
    var bytes: [UInt8] = []
    for e in gdtEntries { bytes += withUnsafeBytes(of: e.littleEndian, Array.init) }
    try guestWrite(memory, gdt.lowerBound, bytes, "the boot GDT")
  }

  static var gdtRegister: DescriptorTable {
    DescriptorTable(base: gdt.lowerBound, limit: UInt16(gdtEntries.count * 8 - 1))
  }

  /// Flat 4 GiB data segment as loaded from the GDT.
  static var flatData: Segment {
    Segment(selector: dataSelector, base: 0, limit: 0xFFFF_FFFF, type: 3, db: true, g: true)
  }

  /// Special registers with `code` in CS, the flat data segment in every data register, the boot
  /// GDT and an empty IDT (an early fault triple-faults): the common part of every protected and
  /// long-mode start.
  static func flatSpecialRegisters(code: Segment) -> SpecialRegisters {
    var s = SpecialRegisters()
    s.cs = code
    let data = flatData
    s.ds = data
    s.es = data
    s.fs = data
    s.gs = data
    s.ss = data
    s.gdt = gdtRegister
    s.idt = DescriptorTable(base: 0, limit: 0)
    return s
  }
}

/// Writes `bytes` at `address`, turning a memory error into a loader error about `what`.
func guestWrite(_ memory: GuestMemory, _ address: UInt64, _ bytes: some Collection<UInt8>, _ what: String)
  throws(LoaderError)
{
  var failure: MemoryError?
  func write(_ buf: UnsafeRawBufferPointer) {
    do throws(MemoryError) { try memory.write(address, bytes: buf) } catch { failure = error }
  }
  if bytes.withContiguousStorageIfAvailable({ write(UnsafeRawBufferPointer($0)) }) == nil {
    Array(bytes).withUnsafeBytes { write($0) }
  }
  if let failure { throw LoaderError("cannot write \(what) at 0x\(hex(address)): \(failure)") }
}

/// Zeroes `[address, address+length)`.
func guestZero(_ memory: GuestMemory, _ address: UInt64, _ length: UInt64, _ what: String) throws(LoaderError) {
  do throws(MemoryError) { try memory.fill(address, length: length) } catch {
    throw LoaderError("cannot clear \(what) at 0x\(hex(address)): \(error)")
  }
}

/// Tracks what a loader has placed in guest memory so far and refuses placements that leave RAM,
/// overlap each other, or overlap the VMM's boot structures.
struct LoadPlan {
  let memory: GuestMemory
  private(set) var claims: [(range: Range<UInt64>, name: String)] = []

  init(memory: GuestMemory, reserved: [(Range<UInt64>, String)]) {
    self.memory = memory
    claims = reserved.map { (range: $0.0, name: $0.1) }
  }

  /// Claims `[address, address+length)` for `name` after checking it is RAM and free.
  mutating func claim(_ address: UInt64, length: UInt64, _ name: String) throws(LoaderError) {
    guard length > 0 else { return }
    let (end, overflow) = address.addingReportingOverflow(length)
    guard !overflow else {
      throw LoaderError("\(name) at 0x\(hex(address)) with size 0x\(hex(length)) wraps around the address space")
    }
    guard let region = memory.region(containing: address, length: length), region.kind == .ram else {
      throw LoaderError(
        "\(name) at 0x\(hex(address))-0x\(hex(end - 1)) is outside guest RAM (\(memory.ramSize >> 20) MiB)")
    }
    if let other = claims.first(where: { $0.range.overlaps(address..<end) }) {
      throw LoaderError(
        "\(name) at 0x\(hex(address))-0x\(hex(end - 1)) overlaps \(other.name) at 0x\(hex(other.range.lowerBound))-0x\(hex(other.range.upperBound - 1))"
      )
    }
    claims.append((address..<end, name))
  }

  /// The end of the highest claim that is not a reserved boot structure.
  var highestEnd: UInt64 { claims.map(\.range.upperBound).max() ?? 0 }
}

import CNative
import X86

/// The model's physical memory for a difftest: the code page and the sandbox at the same
/// addresses the native child uses, and (for compatibility mode and the paged 64-bit mode) a
/// system area with page tables, the GDT, the LDT, an IDT and a TSS. Everything else is "not RAM".
final class SandboxMemory: PhysicalMemory {
  let code = UnsafeMutableRawPointer.allocate(byteCount: Int(CN_CODE_SIZE), alignment: 4096)
  let sandbox = UnsafeMutableRawPointer.allocate(byteCount: Int(CN_SANDBOX_SIZE), alignment: 4096)
  let system = UnsafeMutableRawPointer.allocate(byteCount: SystemArea.size, alignment: 4096)

  /// Where the system tables live. Physical pages away from the code page and the sandbox; the
  /// GDT, LDT, IDT and TSS are mapped, supervisor-only, in one 512 GiB slot of the linear address
  /// space: for compatibility mode above 4 GiB, which 32-bit code cannot form; for the paged
  /// 64-bit mode in the kernel half, where a user access faults on the host too (Linux reports
  /// user accesses to kernel addresses with P set, as the model's supervisor pages give).
  enum SystemArea {
    static let physical: UInt64 = 0x2000_0000
    static let pages = 11
    static let size = pages * 4096
    /// Page indices in the area.
    static let pml4 = 0
    static let lowPDPT = 1
    static let lowPD = 2
    static let lowPT = 3
    static let highPDPT = 4
    static let highPD = 5
    static let highPT = 6
    static let gdtPage = 7
    static let ldtPage = 8
    static let idtPage = 9
    static let tssPage = 10
    /// Linear address of the GDT in compatibility mode (PML4 entry 1); the LDT is the page after it.
    static let gdtLinear: UInt64 = 0x80_0000_0000
    static let ldtLinear: UInt64 = gdtLinear + 0x1000
    /// Linear address of the GDT in the paged 64-bit mode (PML4 entry 511), then the LDT, the IDT
    /// and the TSS, a page each.
    static let kernelGDTLinear: UInt64 = 0xFFFF_FF80_0000_0000

    static func address(ofPage page: Int) -> UInt64 { physical + UInt64(page) * 4096 }
  }

  /// Whether the system area is RAM: only in runs with paging (compatibility mode, the paged
  /// 64-bit mode), so a wild access in the flat 64-bit mode still finds nothing, as on the host.
  var systemAreaMapped = false
  /// Whether the system area holds the paged 64-bit mode's tables (written once, kept while the
  /// runs stay in that mode).
  private var holdsUser64Tables = false

  init() {
    system.initializeMemory(as: UInt8.self, repeating: 0, count: SystemArea.size)
  }

  deinit {
    code.deallocate()
    sandbox.deallocate()
    system.deallocate()
  }

  /// Loads the code (the rest of the page is INT3, like the native side) and the sandbox.
  func load(code bytes: [UInt8], sandbox contents: [UInt8]) {
    code.initializeMemory(as: UInt8.self, repeating: 0xCC, count: Int(CN_CODE_SIZE))
    code.copyMemory(from: bytes, byteCount: min(bytes.count, Int(CN_CODE_MAX)))
    sandbox.copyMemory(from: contents, byteCount: min(contents.count, Int(CN_SANDBOX_SIZE)))
  }

  /// Writes the 4-level page tables (identity mappings: the code page user RWX, the sandbox user
  /// RW and NX, the GDT and LDT pages supervisor-only), the GDT and `ldt`. Returns CR3.
  func loadCompatibilityTables(ldt: [LDTEntry]) -> UInt64 {
    loadTables(ldt: ldt, systemLinear: SystemArea.gdtLinear)
  }

  /// The paged 64-bit mode's tables: the same identity mappings of the code page and the sandbox,
  /// the GDT (Linux's layout), an empty LDT, an IDT of not-present gates and a TSS without an
  /// I/O bitmap, all supervisor-only in the kernel half. Written on the first call after another
  /// mode; the tables do not change between tests. Returns CR3.
  func loadUser64Tables() -> UInt64 {
    if !holdsUser64Tables {
      _ = loadTables(ldt: [], systemLinear: SystemArea.kernelGDTLinear)
      // The TSS's I/O map base points past its limit: no I/O permission bitmap.
      system.storeBytes(of: UInt16(0x68), toByteOffset: SystemArea.tssPage * 4096 + 0x66, as: UInt16.self)
      holdsUser64Tables = true
    }
    systemAreaMapped = true
    return SystemArea.address(ofPage: SystemArea.pml4)
  }

  /// Writes the page tables and descriptor tables with the GDT at `systemLinear` (the start of a
  /// PML4 slot; the LDT, IDT and TSS follow it a page each). Returns CR3.
  private func loadTables(ldt: [LDTEntry], systemLinear: UInt64) -> UInt64 {
    systemAreaMapped = true
    holdsUser64Tables = false
    system.initializeMemory(as: UInt8.self, repeating: 0, count: SystemArea.size)
    func entry(_ page: Int, _ index: Int, _ value: UInt64) {
      system.storeBytes(of: value, toByteOffset: page * 4096 + index * 8, as: UInt64.self)
    }
    let table: UInt64 = 7  // P, R/W, U/S: the leaf entries decide
    let nx: UInt64 = 1 << 63
    entry(SystemArea.pml4, 0, SystemArea.address(ofPage: SystemArea.lowPDPT) | table)
    entry(SystemArea.pml4, Int((systemLinear >> 39) & 511), SystemArea.address(ofPage: SystemArea.highPDPT) | table)
    entry(SystemArea.lowPDPT, Int((CN_CODE_ADDR >> 30) & 511), SystemArea.address(ofPage: SystemArea.lowPD) | table)
    entry(SystemArea.lowPD, Int((CN_CODE_ADDR >> 21) & 511), SystemArea.address(ofPage: SystemArea.lowPT) | table)
    entry(SystemArea.lowPT, Int((CN_CODE_ADDR >> 12) & 511), CN_CODE_ADDR | 7)
    for page in stride(from: CN_SANDBOX_ADDR, to: CN_SANDBOX_ADDR + UInt64(CN_SANDBOX_SIZE), by: 4096) {
      entry(SystemArea.lowPT, Int((page >> 12) & 511), page | 7 | nx)
    }
    entry(SystemArea.highPDPT, 0, SystemArea.address(ofPage: SystemArea.highPD) | table)
    entry(SystemArea.highPD, 0, SystemArea.address(ofPage: SystemArea.highPT) | table)
    entry(SystemArea.highPT, 0, SystemArea.address(ofPage: SystemArea.gdtPage) | 3 | nx)
    entry(SystemArea.highPT, 1, SystemArea.address(ofPage: SystemArea.ldtPage) | 3 | nx)
    entry(SystemArea.highPT, 2, SystemArea.address(ofPage: SystemArea.idtPage) | 3 | nx)
    entry(SystemArea.highPT, 3, SystemArea.address(ofPage: SystemArea.tssPage) | 3 | nx)
    for (i, d) in CompatDescriptorTables.gdt.enumerated() { entry(SystemArea.gdtPage, i, d) }
    // The LDT descriptor at GDT index 10 points at the model's LDT (base bits 63:32 in index 11).
    let ldtBase = systemLinear + 0x1000
    let ldtDescriptor =
      CompatDescriptorTables.gdt[10] | (ldtBase & 0xFF_FFFF) << 16 | ((ldtBase >> 24) & 0xFF) << 56
    entry(SystemArea.gdtPage, 10, ldtDescriptor)
    entry(SystemArea.gdtPage, 11, ldtBase >> 32)
    for (i, e) in ldt.enumerated() { entry(SystemArea.ldtPage, i, e.descriptor) }
    return SystemArea.address(ofPage: SystemArea.pml4)
  }

  func sandboxBytes() -> [UInt8] {
    [UInt8](UnsafeRawBufferPointer(start: sandbox, count: Int(CN_SANDBOX_SIZE)))
  }

  func codeByte(at address: UInt64) -> UInt8? {
    guard address >= CN_CODE_ADDR, address < CN_CODE_ADDR + UInt64(CN_CODE_SIZE) else { return nil }
    return code.load(fromByteOffset: Int(address - CN_CODE_ADDR), as: UInt8.self)
  }

  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    let end = physical &+ UInt64(length)
    if physical >= CN_CODE_ADDR && end <= CN_CODE_ADDR + UInt64(CN_CODE_SIZE) && end > physical {
      return code + Int(physical - CN_CODE_ADDR)
    }
    if physical >= CN_SANDBOX_ADDR && end <= CN_SANDBOX_ADDR + UInt64(CN_SANDBOX_SIZE) && end > physical {
      return sandbox + Int(physical - CN_SANDBOX_ADDR)
    }
    if systemAreaMapped && physical >= SystemArea.physical && end <= SystemArea.physical + UInt64(SystemArea.size)
      && end > physical
    {
      return system + Int(physical - SystemArea.physical)
    }
    return nil
  }
}

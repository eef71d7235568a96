/// Builds the machine state for Trivisor's own small 64-bit guests (the demo, test guests and
/// benchmarks): identity page tables for the first 4 GiB (2 MiB pages, user accessible), a GDT
/// with ring-0 and ring-3 64-bit segments and a TSS, and registers to start at `entry` in ring 0
/// or ring 3 (with IOPL 3, so ring-3 code may use IN/OUT).
///
/// Fixed layout (guest-physical), below the guest's code at 0x10000 or higher:
///
/// | address  | contents                                                 |
/// |----------|----------------------------------------------------------|
/// | 0x1000   | PML4                                                     |
/// | 0x2000   | PDPT                                                     |
/// | 0x3000   | 4 page directories (0x3000...0x6FFF), 2 MiB pages        |
/// | 0x7000   | GDT: null, 0x08 code64 DPL0, 0x10 data DPL0, 0x18 code64 DPL3, 0x20 data DPL3, 0x28 TSS |
/// | 0x7800   | 64-bit TSS (RSP0 = `kernelStackTop`)                     |
/// | 0x8000   | free for the guest (its IDT, say)                         |
/// | 0x9F000  | top of the ring-0 stack (`kernelStackTop`)               |
public enum SmallGuestBoot {
  /// Guest-physical addresses of the boot structures: the PML4,
  public static let pml4: UInt64 = 0x1000
  /// the page-directory-pointer table,
  public static let pdpt: UInt64 = 0x2000
  /// the page directories (2 MiB pages),
  public static let pageDirectories: UInt64 = 0x3000
  /// the GDT,
  public static let gdt: UInt64 = 0x7000
  /// the 64-bit TSS,
  public static let tss: UInt64 = 0x7800
  /// and the top of the ring-0 stack.
  public static let kernelStackTop: UInt64 = 0x9F000
  /// GDT selectors: ring-0 64-bit code,
  public static let kernelCode: UInt16 = 0x08
  /// ring-0 data,
  public static let kernelData: UInt16 = 0x10
  /// ring-3 64-bit code,
  public static let userCode: UInt16 = 0x1B
  /// ring-3 data,
  public static let userData: UInt16 = 0x23
  /// and the TSS.
  public static let taskRegister: UInt16 = 0x28

  /// Writes the tables into `memory` (which needs at least 1 MiB of RAM) and returns the state to
  /// start `entry` with `stack` in the given ring.
  public static func prepare(
    memory: GuestMemory, entry: UInt64, stack: UInt64 = kernelStackTop, userMode: Bool = false
  ) throws(MemoryError) -> BootState {
    try memory.fill(pml4, length: 0x7000)
    try memory.write(pdpt | 0x7, at: pml4)
    for i in 0..<UInt64(4) {
      let pd = pageDirectories + i * 0x1000
      try memory.write(pd | 0x7, at: pdpt + i * 8)
      for j in 0..<UInt64(512) {
        let address = (i << 30) | (j << 21)
        try memory.write(address | 0x87, at: pd + j * 8)
      }
    }
    let descriptors: [UInt64] = [
      0,
      0x00AF_9A00_0000_FFFF,  // 0x08 code, DPL 0, L
      0x00CF_9200_0000_FFFF,  // 0x10 data, DPL 0
      0x00AF_FA00_0000_FFFF,  // 0x18 code, DPL 3, L
      0x00CF_F200_0000_FFFF,  // 0x20 data, DPL 3
    ]
    for (i, d) in descriptors.enumerated() { try memory.write(d, at: gdt + UInt64(i) * 8) }
    // 64-bit available TSS, limit 0x67, base `tss`.
    let tssLow: UInt64 = 0x67 | ((tss & 0xFF_FFFF) << 16) | (UInt64(0x89) << 40) | (((tss >> 24) & 0xFF) << 56)
    try memory.write(tssLow, at: gdt + 0x28)
    try memory.write(tss >> 32, at: gdt + 0x30)
    try memory.fill(tss, length: 0x68)
    try memory.write(kernelStackTop, at: tss + 4)  // RSP0

    var sr = SpecialRegisters()
    let dpl: UInt8 = userMode ? 3 : 0
    sr.cs = Segment(
      selector: userMode ? userCode : kernelCode, base: 0, limit: 0xFFFF_FFFF, type: 11, dpl: dpl, l: true, g: true)
    let data = Segment(
      selector: userMode ? userData : kernelData, base: 0, limit: 0xFFFF_FFFF, type: 3, dpl: dpl, db: true, g: true)
    sr.ds = data
    sr.es = data
    sr.fs = data
    sr.gs = data
    sr.ss = data
    sr.tr = Segment(selector: taskRegister, base: tss, limit: 0x67, type: 11, s: false)
    sr.gdt = DescriptorTable(base: gdt, limit: 0x37)
    sr.idt = DescriptorTable(base: 0, limit: 0)
    sr.cr0 = 0x8005_0033  // PG WP NE ET MP PE
    sr.cr3 = pml4
    sr.cr4 = 0x20  // PAE
    sr.efer = 0x500  // LME LMA
    var regs = Registers()
    regs.rip = entry
    regs.rsp = stack
    regs.rflags = userMode ? 0x3002 : 0x2
    return BootState(
      mode: .long64, registers: regs, specialRegisters: sr,
      summary: ["small 64-bit guest at 0x\(String(entry, radix: 16)), ring \(userMode ? 3 : 0)"])
  }
}

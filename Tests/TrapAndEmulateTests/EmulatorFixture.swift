import TrapAndEmulate
import VMM
import X86

/// A 64-bit guest for the emulator tests, identity-mapped in 1 MiB: its GDT at 0x2000 (0x08 ring-0
/// code, 0x10 ring-0 data, 0x18 ring-3 data, 0x20 ring-3 code, 0x28 TSS, 0x38 LDT), TSS at 0x3000
/// (RSP0 0x6000, an I/O bitmap for ports 0-255 allowing only 0x80), IDT at 0x4000 (every vector an
/// interrupt gate to 0x7000; 0x80 at DPL 3), kernel code at 0x1000, kernel stack below 0x6000, a
/// data page at 0x8000, user code at 0x70000 and a user stack below 0x72000. The virtual CPU starts
/// at CPL 0 with IF clear; its shadows are active.
final class EmulatorFixture {
  static let kernelCode: UInt64 = 0x1000
  static let gdt: UInt64 = 0x2000
  static let tss: UInt64 = 0x3000
  static let idt: UInt64 = 0x4000
  static let kernelStack: UInt64 = 0x6000
  static let handler: UInt64 = 0x7000
  static let data: UInt64 = 0x8000
  static let userCode: UInt64 = 0x7_0000
  static let userStack: UInt64 = 0x7_2000

  let memory: GuestMemory
  let tables: GuestTables
  let shadows: ShadowPageTables
  let cpu: GuestCPU
  let emulator: PrivilegedInstructionEmulator
  var state: CPUState { cpu.state }

  init() throws {
    memory = try GuestMemory(ramSize: 1 << 20)
    tables = try GuestTables(memory: memory, tableBase: 0x10000)
    for page in stride(from: UInt64(0x1000), to: 0x9000, by: 0x1000) {
      try tables.map(page, to: page, leaf: PTE.rw | PTE.a | PTE.d)
    }
    for page in [Self.userCode, Self.userStack - 0x1000] {
      try tables.map(page, to: page, leaf: PTE.rw | PTE.us | PTE.a | PTE.d)
    }
    // GDT.
    let descriptors: [UInt64] = [
      0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF, 0x00CF_F300_0000_FFFF, 0x00AF_FB00_0000_FFFF,
    ]
    for (i, d) in descriptors.enumerated() { try memory.write(d, at: Self.gdt + UInt64(i) * 8) }
    let tssLimit: UInt32 = 0x68 + 32
    let (tssLow, tssHigh) = Self.systemDescriptor(base: Self.tss, limit: tssLimit, type: 9)
    try memory.write(tssLow, at: Self.gdt + 0x28)
    try memory.write(tssHigh, at: Self.gdt + 0x30)
    let (ldtLow, ldtHigh) = Self.systemDescriptor(base: 0x8800, limit: 0xFF, type: 2)
    try memory.write(ldtLow, at: Self.gdt + 0x38)
    try memory.write(ldtHigh, at: Self.gdt + 0x40)
    // TSS: RSP0, the I/O bitmap at 0x68 (port 0x80 allowed) and its terminating byte.
    try memory.write(Self.kernelStack, at: Self.tss + 4)
    try memory.write(UInt16(0x68), at: Self.tss + 0x66)
    try memory.fill(Self.tss + 0x68, length: 33, byte: 0xFF)
    try memory.write(UInt8(0xFE), at: Self.tss + 0x68 + 0x10)
    // IDT.
    for vector in 0..<256 {
      let (low, high) = Self.interruptGate(offset: Self.handler, dpl: vector == 0x80 ? 3 : 0)
      try memory.write(low, at: Self.idt + UInt64(vector) * 16)
      try memory.write(high, at: Self.idt + UInt64(vector) * 16 + 8)
    }
    let pool = ShadowFramePool(range: 0xC_0000..<0x10_0000)
    shadows = try ShadowPageTables(memory: memory, pool: pool)
    cpu = GuestCPU(memory: memory)
    emulator = PrivilegedInstructionEmulator(cpu: cpu, shadows: shadows)
    let s = cpu.state
    s.cr0 = CR0.pe | CR0.mp | CR0.et | CR0.ne | CR0.wp | CR0.pg
    s.cr4 = CR4.pae | CR4.osfxsr
    s.efer = EFER.sce | EFER.lme | EFER.lma | EFER.nxe
    s.cr3 = tables.root
    s.gdtr = (Self.gdt, 0x47)
    s.idtr = (Self.idt, 0xFFF)
    s.setSegment(.ss, SegmentCache(selector: 0x10, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC093))
    for r in [SegmentRegister.ds, .es, .fs, .gs] {
      s.setSegment(r, SegmentCache(selector: 0x10, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC093))
    }
    s.setSegment(.tr, SegmentCache(selector: 0x28, base: Self.tss, limit: tssLimit, attributes: 0x8B))
    SegmentLoader.commitCodeSegment(
      SegmentCache(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA09B), cpl: 0, state: s)
    s.rip = Self.kernelCode
    s.setGPR(4, Self.kernelStack)
    s.rflags = Flags.reserved1
    try emulator.activateShadow()
  }

  /// Switches the virtual CPU to ring-3 64-bit code at the user page (IOPL as given).
  func enterUserMode(iopl: UInt64 = 0) throws {
    state.setSegment(.ss, SegmentCache(selector: 0x1B, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC0F3))
    SegmentLoader.commitCodeSegment(
      SegmentCache(selector: 0x23, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA0FB), cpl: 3, state: state)
    state.rip = Self.userCode
    state.setGPR(4, Self.userStack)
    state.rflags = Flags.reserved1 | Flags.if | iopl << 12
    try emulator.activateShadow()
  }

  /// Writes `bytes` at the virtual RIP and emulates them.
  func run(_ bytes: [UInt8]) throws -> EmulationResult {
    try memory.write(state.rip, bytes: bytes)
    return emulator.emulate()
  }

  /// A 16-byte LDT or TSS descriptor.
  static func systemDescriptor(base: UInt64, limit: UInt32, type: UInt64) -> (UInt64, UInt64) {
    let low =
      UInt64(limit & 0xFFFF) | (base & 0xFF_FFFF) << 16 | type << 40 | 1 << 47 | UInt64((limit >> 16) & 0xF) << 48
      | ((base >> 24) & 0xFF) << 56
    return (low, base >> 32)
  }

  /// A 64-bit interrupt gate to `offset` in 0x08.
  static func interruptGate(offset: UInt64, dpl: UInt64) -> (UInt64, UInt64) {
    let low = (offset & 0xFFFF) | 0x08 << 16 | 0xE << 40 | dpl << 45 | 1 << 47 | ((offset >> 16) & 0xFFFF) << 48
    return (low, offset >> 32)
  }
}

/// #GP with error code `code`, as a reflect action.
func reflectGP(_ code: UInt32 = 0) -> TrapAction {
  .reflect(vector: ExceptionVector.generalProtection, errorCode: code)
}

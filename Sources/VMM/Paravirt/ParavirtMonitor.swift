/// The deprivileged mode's monitor: the few pages of ring-0 state the VMM keeps inside the
/// guest's address space while the guest kernel runs at ring 3 (Xen x86-64 PV style).
///
/// Guest-physical pages at the top of low RAM (`reservedRange`, never handed to the guest) hold
/// a GDT with Xen's selectors, an IDT whose 256 gates lead to ring-0 stubs, one TSS per vCPU
/// (RSP0: the vCPU's monitor stack), the stubs and the monitor's page tables. They are mapped,
/// supervisor-only, through root-table slot `Layout.rootSlot`, which `prepareRootTable` copies
/// into every root table the guest uses. Each stub pushes what the CPU did not (a zero error code
/// where the exception has none, then the vector) and traps to the VMM with the engine's
/// hypercall instruction; the VMM recognizes the trap by its RIP inside the stub area. SYSCALL
/// (LSTAR, CSTAR) enters a stub of its own.
final class ParavirtMonitor {
  /// Xen x86-64's flat selectors.
  enum Selector {
    /// The monitor's 64-bit code (ring 0).
    static let monitorCode: UInt16 = 0xE008
    /// The monitor's data and stack (ring 0).
    static let monitorData: UInt16 = 0xE010
    /// 32-bit ring-3 code (SYSRET's base selector).
    static let userCode32: UInt16 = 0xE023
    /// Ring-3 data and stack: guest kernel and guest user mode.
    static let guestData: UInt16 = 0xE02B
    /// Ring-3 64-bit code: guest kernel and guest user mode.
    static let guestCode: UInt16 = 0xE033
    /// The guest kernel's CS as its frames show it (RPL 0).
    static let kernelFrameCode: UInt16 = 0xE030
    /// The first TSS descriptor (16 bytes per vCPU).
    static let firstTSS: UInt16 = 0xE040
  }

  /// Where the monitor lives: guest-virtual offsets from `virtualBase` and guest-physical pages.
  struct Layout: Equatable {
    /// The root-table slot mapping the monitor (the first of Xen's hypervisor slots).
    static let rootSlot = 256
    /// The guest-virtual address slot `rootSlot` maps.
    static let virtualBase: UInt64 = 0xFFFF_8000_0000_0000
    /// The GDT: 15 pages so that selectors up to 0xE0xx fit (pages 0-13 show one zero frame).
    static let gdtOffset: UInt64 = 0
    /// Pages of the GDT's virtual range.
    static let gdtPages = 15
    /// The IDT (256 gates, one page).
    static let idtOffset: UInt64 = 0x10000
    /// The TSS page (one TSS with its I/O bitmap every `tssStride` bytes per vCPU).
    static let tssOffset: UInt64 = 0x11000
    /// Bytes per vCPU's TSS on the TSS page.
    static let tssStride = 256
    /// Where a TSS's I/O permission bitmap starts (right after the 104-byte TSS proper).
    static let ioBitmapOffset = 104
    /// Ports the I/O bitmap describes (0-255); ports above always fault at ring 3.
    static let ioBitmapPorts = 256
    /// The TSS limit: the TSS, the bitmap and the 0xFF byte the CPU may read past its end.
    static var tssLimit: Int { ioBitmapOffset + ioBitmapPorts / 8 }
    /// The stubs: 32 bytes per vector, then the SYSCALL stub.
    static let stubOffset: UInt64 = 0x12000
    /// Bytes per stub.
    static let stubSize: UInt64 = 32
    /// The SYSCALL stub's index (after the 256 vectors).
    static let syscallStub: UInt64 = 256
    /// Pages of stubs.
    static let stubPages = 3
    /// The monitor stacks: one page per vCPU, every other page (unmapped pages between guard them).
    static let stackOffset: UInt64 = 0x16000
    /// The most vCPUs the TSS page and GDT hold.
    static let maximumCPUs = 4096 / tssStride
    /// Frames before the stacks: zero GDT page, GDT page, IDT, TSS, 3 stub pages, L3, L2, L1.
    static let fixedFrames = 10

    /// The first reserved guest-physical byte.
    let base: UInt64
    /// vCPUs served.
    let cpus: Int

    /// The monitor of `cpus` vCPUs at the top of `memory`'s low RAM; nil when RAM is too small
    /// or `cpus` too many.
    init?(memory: GuestMemory, cpus: Int) {
      let end = E820Map.lowRAMEnd(for: memory) & ~0xFFF
      let size = UInt64(Self.fixedFrames + cpus) * 4096
      guard cpus >= 1, cpus <= Self.maximumCPUs, end >= size + (4 << 20) else { return nil }
      base = end - size
      self.cpus = cpus
    }

    /// The reserved guest-physical bytes.
    var reservedRange: Range<UInt64> { base..<base + UInt64(Self.fixedFrames + cpus) * 4096 }
    /// The frame every GDT page but the last shows (zeros).
    var zeroFrame: UInt64 { base }
    /// The GDT's last page, holding the descriptors at 0xE000.
    var gdtFrame: UInt64 { base + 0x1000 }
    /// The IDT's frame.
    var idtFrame: UInt64 { base + 0x2000 }
    /// The TSS page's frame.
    var tssFrame: UInt64 { base + 0x3000 }
    /// The first stub page's frame.
    var stubFrame: UInt64 { base + 0x4000 }
    /// The monitor's level-3 table (what the root slot points at).
    var level3Frame: UInt64 { base + 0x7000 }
    /// Its level-2 table.
    var level2Frame: UInt64 { base + 0x8000 }
    /// Its level-1 table.
    var level1Frame: UInt64 { base + 0x9000 }
    /// vCPU `index`'s stack frame.
    func stackFrame(_ index: Int) -> UInt64 { base + UInt64(Self.fixedFrames + index) * 4096 }

    /// The GDT's linear address.
    static var gdtAddress: UInt64 { virtualBase + gdtOffset }
    /// The IDT's linear address.
    static var idtAddress: UInt64 { virtualBase + idtOffset }
    /// vCPU `index`'s TSS linear address.
    static func tssAddress(_ index: Int) -> UInt64 { virtualBase + tssOffset + UInt64(index * tssStride) }
    /// Stub `index`'s linear address.
    static func stubAddress(_ index: UInt64) -> UInt64 { virtualBase + stubOffset + index * stubSize }
    /// The top of vCPU `index`'s monitor stack.
    static func stackTop(_ index: Int) -> UInt64 { virtualBase + stackOffset + UInt64(index) * 0x2000 + 0x1000 }
    /// The linear range of the stubs.
    static var stubRange: Range<UInt64> {
      stubAddress(0)..<stubAddress(0) + UInt64(stubPages) * 4096
    }
    /// The root-table entry mapping the monitor (present, writable, supervisor).
    var rootEntry: UInt64 { level3Frame | 0x3 }
  }

  /// Vectors whose exceptions push an error code.
  static let errorCodeVectors: Set<UInt64> = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]

  /// The layout served.
  let layout: Layout
  /// Per-vCPU state only the monitor uses.
  var vcpus: [VCPUState]
  /// The shared info page's frame once the PV boot placed it (vcpu_info's upcall mask and CR2).
  var sharedInfoFrame: UInt64?
  /// Privileged instructions the guest kernel tried: #GP with error code 0 in guest kernel mode
  /// (reflected to it like any exception), shown by `--stats`. A PV kernel that never executes
  /// one keeps it at 0.
  var privilegedInstructionFaults: UInt64 = 0
  /// SYSCALL reaches the monitor as an exception (`ParavirtSyscallEntry.emulated`): EFER.SCE clear.
  var emulatesSyscall = false
  /// SYSCALLs served from an exception (shown by `--stats`).
  var emulatedSyscalls: UInt64 = 0

  /// `s` as this monitor runs the guest: EFER.SCE clear when it emulates SYSCALL.
  func adjusted(_ s: SpecialRegisters) -> SpecialRegisters {
    var s = s
    if emulatesSyscall { s.efer &= ~UInt64(1) }
    return s
  }

  /// What the monitor keeps per vCPU.
  struct VCPUState {
    /// `set_trap_table`: handler and flags by vector.
    var traps: [UInt8: TrapEntry] = [:]
    /// The GS base of the mode not running (SWAPGS's other half).
    var inactiveGSBase: UInt64 = 0
    /// The last page-fault address reflected (Xen's vcpu_info arch.cr2; kept here too).
    var cr2: UInt64 = 0
    /// `fpu_taskswitch(1)`: the guest asked for CR0.TS; its next #NM is reflected and clears it.
    var taskSwitched = false
  }

  /// One trap-table entry (Xen's `trap_info`).
  struct TrapEntry: Equatable {
    /// The handler's address.
    var address: UInt64
    /// Bits 1-0: the privilege level INT n needs; bit 2: mask events on entry.
    var flags: UInt8
    /// The code selector the guest gave (informational: the handler runs with `guestCode`).
    var cs: UInt16
  }

  /// A monitor for `layout`.
  init(layout: Layout) {
    self.layout = layout
    vcpus = Array(repeating: VCPUState(), count: layout.cpus)
  }

  /// The ports a trap instruction writes when it is `out %eax, $imm8` (E7 ib): the four its
  /// 4-byte OUT covers; none for other traps (VMCALL exits at any CPL by itself).
  static func hypercallPorts(trap: [UInt8]) -> Range<Int> {
    guard trap.count == 2, trap[0] == 0xE7 else { return 0..<0 }
    return Int(trap[1])..<Int(trap[1]) + 4
  }

  // MARK: Building the pages

  /// Writes the monitor's pages into `memory`: descriptor tables, TSSs, stubs trapping with
  /// `trap`, page tables.
  func writePages(into memory: GuestMemory, trap: [UInt8]) throws {
    let l = layout
    try memory.write(l.zeroFrame, bytes: [UInt8](repeating: 0, count: 4096))
    // GDT: descriptors at 0xE000 within the table, i.e. at offset 0 of its last page.
    var gdt = [UInt8](repeating: 0, count: 4096)
    func put(_ v: UInt64, _ at: Int, into page: inout [UInt8]) {
      for i in 0..<8 { page[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }
    put(0x00AF_9B00_0000_FFFF, 0x08, into: &gdt)  // 0xE008 code64 DPL0
    put(0x00CF_9300_0000_FFFF, 0x10, into: &gdt)  // 0xE010 data DPL0
    put(0x00CF_FB00_0000_FFFF, 0x20, into: &gdt)  // 0xE023 code32 DPL3
    put(0x00CF_F300_0000_FFFF, 0x28, into: &gdt)  // 0xE02B data DPL3
    put(0x00AF_FB00_0000_FFFF, 0x30, into: &gdt)  // 0xE033 code64 DPL3
    for i in 0..<l.cpus {
      let base = Layout.tssAddress(i)
      let low: UInt64 =
        UInt64(Layout.tssLimit) | (base & 0xFF_FFFF) << 16 | UInt64(0x8B) << 40 | ((base >> 24) & 0xFF) << 56
      put(low, 0x40 + 16 * i, into: &gdt)
      put(base >> 32, 0x48 + 16 * i, into: &gdt)
    }
    try memory.write(l.gdtFrame, bytes: gdt)
    // IDT: interrupt gates to the stubs; INT3 and INTO may be raised from ring 3.
    var idt = [UInt8](repeating: 0, count: 4096)
    for v in 0..<256 {
      let target = Layout.stubAddress(UInt64(v))
      let dpl: UInt64 = v == 3 || v == 4 ? 3 : 0
      let low =
        (target & 0xFFFF) | UInt64(Selector.monitorCode) << 16 | (0x8E | dpl << 5) << 40
        | ((target >> 16) & 0xFFFF) << 48
      put(low, 16 * v, into: &idt)
      put(target >> 32, 16 * v + 8, into: &idt)
    }
    try memory.write(l.idtFrame, bytes: idt)
    // TSSs: RSP0 = the vCPU's monitor stack; an I/O bitmap denying every port to ring 3 but the
    // hypercall port of an engine whose trap is an OUT (kvm's: the guest kernel runs at ring 3).
    var tss = [UInt8](repeating: 0, count: 4096)
    let open = Self.hypercallPorts(trap: trap)
    for i in 0..<l.cpus {
      let at = Layout.tssStride * i
      put(Layout.stackTop(i), at + 4, into: &tss)
      tss[at + 102] = UInt8(Layout.ioBitmapOffset)
      for port in 0..<Layout.ioBitmapPorts where !open.contains(port) {
        tss[at + Layout.ioBitmapOffset + port / 8] |= 1 << (port % 8)
      }
      tss[at + Layout.tssLimit] = 0xFF
    }
    try memory.write(l.tssFrame, bytes: tss)
    try memory.write(l.stubFrame, bytes: Self.stubs(trap: trap))
    // Page tables: slot 256 -> L3[0] -> L2[0] -> L1.
    var l3 = [UInt8](repeating: 0, count: 4096)
    put(l.level2Frame | 0x3, 0, into: &l3)
    try memory.write(l.level3Frame, bytes: l3)
    var l2 = [UInt8](repeating: 0, count: 4096)
    put(l.level1Frame | 0x3, 0, into: &l2)
    try memory.write(l.level2Frame, bytes: l2)
    var l1 = [UInt8](repeating: 0, count: 4096)
    let nx: UInt64 = 1 << 63
    for p in 0..<Layout.gdtPages {
      put((p == Layout.gdtPages - 1 ? l.gdtFrame : l.zeroFrame) | 0x3 | nx, 8 * p, into: &l1)
    }
    put(l.idtFrame | 0x1 | nx, Int(Layout.idtOffset >> 12) * 8, into: &l1)
    put(l.tssFrame | 0x1 | nx, Int(Layout.tssOffset >> 12) * 8, into: &l1)
    for p in 0..<Layout.stubPages {
      put((l.stubFrame + UInt64(p) * 4096) | 0x1, Int(Layout.stubOffset >> 12 + UInt64(p)) * 8, into: &l1)
    }
    for i in 0..<l.cpus {
      let page = Int((Layout.stackTop(i) - 0x1000 - Layout.virtualBase) >> 12)
      put(l.stackFrame(i) | 0x3 | nx, 8 * page, into: &l1)
    }
    try memory.write(l.level1Frame, bytes: l1)
  }

  /// The stub pages: for each vector, [push $0 when the CPU pushes no error code] push $vector,
  /// `trap`, ud2; at index 256 the SYSCALL stub: `trap`, ud2. INT3 fills the rest.
  static func stubs(trap: [UInt8]) -> [UInt8] {
    var page = [UInt8](repeating: 0xCC, count: Layout.stubPages * 4096)
    for v in 0...Layout.syscallStub {
      var code: [UInt8] = []
      if v < 256 {
        if !errorCodeVectors.contains(v) { code += [0x6A, 0x00] }
        code += [0x68] + withUnsafeBytes(of: UInt32(v).littleEndian) { Array($0) }
      }
      code += trap + [0x0F, 0x0B]
      let at = Int(v * Layout.stubSize)
      page.replaceSubrange(at..<at + min(code.count, Int(Layout.stubSize)), with: code.prefix(Int(Layout.stubSize)))
    }
    return page
  }

  /// Which stub a trap came from: the RIP after the trap instruction (`trapLength` bytes), or nil
  /// when `rip` is not just past a stub's trap.
  static func stubIndex(returnAddress rip: UInt64, trapLength: Int) -> UInt64? {
    guard Layout.stubRange.contains(rip) else { return nil }
    let index = (rip - Layout.stubAddress(0)) / Layout.stubSize
    guard index <= Layout.syscallStub else { return nil }
    var prefix = 0
    if index < 256 { prefix = (errorCodeVectors.contains(index) ? 0 : 2) + 5 }
    guard rip == Layout.stubAddress(index) + UInt64(prefix + trapLength) else { return nil }
    return index
  }

  // MARK: Register state

  /// The ring-3 code segment of guest kernel and user mode.
  static let guestCodeSegment = Segment(
    selector: Selector.guestCode, base: 0, limit: 0xFFFF_FFFF, type: 0xB, dpl: 3, l: true, g: true)
  /// The ring-3 data/stack segment.
  static let guestDataSegment = Segment(
    selector: Selector.guestData, base: 0, limit: 0xFFFF_FFFF, type: 0x3, dpl: 3, db: true, g: true)

  /// vCPU `index`'s special registers at the guest kernel's entry: 64-bit ring 3 on root table
  /// `cr3`, the monitor's GDT, IDT and TSS.
  static func specialRegisters(vcpu index: Int, cr3: UInt64) -> SpecialRegisters {
    var s = SpecialRegisters()
    s.cs = guestCodeSegment
    s.ss = guestDataSegment
    s.ds = guestDataSegment
    s.es = guestDataSegment
    s.fs = guestDataSegment
    s.gs = guestDataSegment
    s.tr = Segment(
      selector: Selector.firstTSS + UInt16(index * 16), base: Layout.tssAddress(index), limit: UInt32(Layout.tssLimit),
      type: 11,
      s: false)
    s.gdt = DescriptorTable(
      base: Layout.gdtAddress, limit: UInt16(Selector.firstTSS) + UInt16(16 * Layout.maximumCPUs) - 1)
    s.idt = DescriptorTable(base: Layout.idtAddress, limit: 0xFFF)
    s.cr0 = 0x8005_0033  // PG WP NE ET MP PE
    s.cr3 = cr3
    s.cr4 = 0x620  // PAE OSFXSR OSXMMEXCPT
    s.efer = 0xD01  // SCE LME LMA NXE
    return s
  }

  /// The MSRs of the deprivileged mode: SYSCALL enters the monitor's SYSCALL stub at ring 0.
  static var msrs: [UInt32: UInt64] {
    [
      0xC000_0081: UInt64(Selector.userCode32 - 3) << 48 | UInt64(Selector.monitorCode) << 32,  // STAR
      0xC000_0082: Layout.stubAddress(Layout.syscallStub),  // LSTAR
      0xC000_0083: Layout.stubAddress(Layout.syscallStub),  // CSTAR
      0xC000_0084: 0x4_7700,  // SFMASK: TF IF DF IOPL NT AC
    ]
  }
}

/// How guest SYSCALL reaches the deprivileged mode's monitor.
public enum ParavirtSyscallEntry: Sendable, Equatable {
  /// SYSCALL itself: EFER.SCE set, LSTAR at the monitor's SYSCALL stub, entered at ring 0 (the
  /// fast path; real VT-x/AMD-V and the software engines).
  case native
  /// For a host whose SYSCALL from ring 3 does not reach ring 0: EFER.SCE clear, and the monitor
  /// serves as SYSCALL the exceptions a SYSCALL then raises, the #UD at 0F 05 and the #PF of the
  /// instruction fetch at its SYSCALL stub from ring 3 (`ParavirtDomain.syscallArrival`).
  case emulated
}

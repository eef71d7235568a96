import X86

/// The guest machine of the system-level difftest (`trivisor difftest --mode system`): 4 MiB of
/// RAM, identity-mapped by 4-level page tables (two address spaces, A and B, that differ in two
/// alias pages), a GDT with Linux's selectors and a 64-bit TSS whose I/O bitmap lets CPL 3 use the
/// test ports, an IDT whose gates all lead to one logging handler, and a SYSCALL entry. Random
/// programs (`SystemProgramGenerator`) run in it at CPL 0 and CPL 3; the handlers report every
/// exception and interrupt on the test port, so the event sequence is what the guest saw.
enum SystemLayout {
  static let memorySize = 4 << 20

  static let gdt: UInt64 = 0x1000
  static let idt: UInt64 = 0x2000
  static let tss: UInt64 = 0x3000
  /// The TSS's I/O bitmap covers ports 0-255 (32 bytes, then the 0xFF terminator).
  static let tssLimit: UInt32 = 0x68 + 32

  static let pml4A: UInt64 = 0x10000
  static let pdptA: UInt64 = 0x11000
  static let pdA: UInt64 = 0x12000
  /// Maps 0-2 MiB (the kernel's pages), shared by both address spaces.
  static let pt0: UInt64 = 0x13000
  /// Maps 2-4 MiB (the test's pages) in address space A.
  static let pt1A: UInt64 = 0x14000
  static let pml4B: UInt64 = 0x18000
  static let pdptB: UInt64 = 0x19000
  static let pdB: UInt64 = 0x1A000
  /// Address space B's copy of `pt1A`: the alias pages map other frames.
  static let pt1B: UInt64 = 0x1B000

  static let kernelCode: UInt64 = 0x20000
  static let kernelCodeSize = 0x10000
  static let kernelData: UInt64 = 0x30000
  static let kernelStackBottom: UInt64 = 0x40000
  static let kernelStackTop: UInt64 = 0x48000

  /// The program's main code (CPL 0 and 3 alike: user pages, writable for self-modifying code).
  static let code: UInt64 = 0x20_0000
  static let codeSize = 0xC000
  /// Functions the program calls, on other pages than its main code.
  static let functions: UInt64 = 0x20_C000
  static let functionsSize = 0x4000
  /// Ordinary user data, 8 pages.
  static let data: UInt64 = 0x22_0000
  static let dataPages = 8
  /// Pages whose PTE starts not present, read-only, supervisor or NX; the #PF handler sets P, RW
  /// and US and clears NX in both address spaces.
  static let faultPages: UInt64 = 0x23_0000
  static let faultPageCount = 8
  /// Two linear pages whose frames the program remaps (and A and B map differently).
  static let alias: UInt64 = 0x23_8000
  static let aliasPageCount = 2
  /// The frames the alias pages may map (also identity-mapped).
  static let aliasFrames: UInt64 = 0x24_0000
  static let aliasFrameCount = 4
  static let userStackBottom: UInt64 = 0x25_0000
  static let userStackTop: UInt64 = 0x25_7000

  /// Every OUT/IN of the handlers and the program goes here (and is recorded).
  static let testPort: UInt16 = 0xE0
  /// A write here ends the program.
  static let exitPort: UInt16 = 0xE1
  /// A port CPL 3 may not use (the bitmap denies it): #GP.
  static let deniedPort: UInt16 = 0x60

  /// Kernel data: +0 #DB count (the handler clears TF and DR7 after 48 in a row), +8 whether the
  /// #PF handler runs INVLPG after fixing a PTE, +0x100 one counter per vector.
  static let debugCount: UInt64 = kernelData
  static let handlerInvalidates: UInt64 = kernelData + 8
  static let vectorCounters: UInt64 = kernelData + 0x100

  /// Selectors (Linux's layout): kernel code 0x10, kernel data 0x18, user code32 0x23, user data
  /// 0x2B, user code64 0x33, TSS 0x40.
  static let kernelCS: UInt16 = 0x10
  static let kernelSS: UInt16 = 0x18
  static let userCS32: UInt16 = 0x23
  static let userSS: UInt16 = 0x2B
  static let userCS: UInt16 = 0x33
  static let tssSelector: UInt16 = 0x40
  /// STAR: SYSCALL loads CS 0x10 / SS 0x18, SYSRET CS 0x33 / SS 0x2B.
  static let star: UInt64 = 0x0023_0010_0000_0000
  /// SFMASK: SYSCALL clears TF, IF, DF and AC.
  static let sfmask: UInt64 = 0x4_0700
  /// The timer's vector; INT 0x80 is allowed at CPL 3, INT 0x81 is not (gate DPL 0), 0x90 has no gate.
  static let timerVector: UInt8 = 0x20

  static func pteIndex(_ linear: UInt64) -> UInt64 { (linear >> 12) & 0x1FF }
}

/// Page-table entry bits.
enum PTE {
  static let present: UInt64 = 1
  static let writable: UInt64 = 2
  static let user: UInt64 = 4
  static let global: UInt64 = 0x100
  static let noExecute: UInt64 = 1 << 63
}

/// Flat RAM for the system difftest: `SystemLayout.memorySize` bytes from physical 0; anything
/// above is not RAM (an MMIO event).
final class SystemMemory: PhysicalMemory {
  let bytes: UnsafeMutableRawPointer
  let size = SystemLayout.memorySize

  init() {
    bytes = .allocate(byteCount: SystemLayout.memorySize, alignment: 4096)
    bytes.initializeMemory(as: UInt8.self, repeating: 0, count: size)
  }

  deinit { bytes.deallocate() }

  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    guard physical < UInt64(size), physical + UInt64(length) <= UInt64(size) else { return nil }
    return bytes + Int(physical)
  }

  func load(_ image: [UInt8]) {
    image.withUnsafeBytes { bytes.copyMemory(from: $0.baseAddress!, byteCount: size) }
  }

  func write(_ data: [UInt8], at address: UInt64) {
    data.withUnsafeBytes { (bytes + Int(address)).copyMemory(from: $0.baseAddress!, byteCount: data.count) }
  }

  func write64(_ value: UInt64, at address: UInt64) {
    (bytes + Int(address)).storeBytes(of: value.littleEndian, as: UInt64.self)
  }

  func read64(_ address: UInt64) -> UInt64 { (bytes + Int(address)).loadUnaligned(as: UInt64.self) }
}

/// The fixed part of the machine: descriptor tables, handlers and kernel data, built once.
struct SystemKernel {
  /// The 4 MiB image with everything but the page tables and the program.
  let image: [UInt8]
  /// Entry points.
  let syscallEntry: UInt64
  let abortEntry: UInt64
  /// The handler code, for listings.
  let handlerCode: [UInt8]

  /// Vectors that push an error code.
  static func hasErrorCode(_ v: Int) -> Bool { [8, 10, 11, 12, 13, 14, 17, 21, 29, 30].contains(v) }

  init() {
    var image = [UInt8](repeating: 0, count: SystemLayout.memorySize)
    func put64(_ value: UInt64, _ at: UInt64) {
      for k in 0..<8 { image[Int(at) + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
    }
    // GDT.
    let g = SystemLayout.gdt
    put64(0x00AF_9A00_0000_FFFF, g + 0x10)  // kernel code64
    put64(0x00CF_9200_0000_FFFF, g + 0x18)  // kernel data
    put64(0x00CF_FA00_0000_FFFF, g + 0x20)  // user code32
    put64(0x00CF_F200_0000_FFFF, g + 0x28)  // user data
    put64(0x00AF_FA00_0000_FFFF, g + 0x30)  // user code64
    let t = SystemLayout.tss
    let limit = UInt64(SystemLayout.tssLimit)
    put64(
      (limit & 0xFFFF) | (t & 0xFF_FFFF) << 16 | 0x8B << 40 | (limit >> 16 & 0xF) << 48 | (t >> 24 & 0xFF) << 56,
      g + 0x40)
    put64(t >> 32, g + 0x48)
    // TSS: RSP0, the I/O bitmap (all denied but the test ports), its terminator.
    put64(SystemLayout.kernelStackTop, t + 4)
    image[Int(t) + 0x66] = 0x68
    for k in 0..<33 { image[Int(t) + 0x68 + k] = 0xFF }
    for port in [SystemLayout.testPort, SystemLayout.exitPort] {
      image[Int(t) + 0x68 + Int(port) / 8] &= ~(1 << UInt8(port % 8))
    }

    // Handlers.
    var a = SystemAssembler(sections: [(SystemLayout.kernelCode, SystemLayout.kernelCodeSize)])
    let common = a.newLabel()
    let abort = a.newLabel()
    var stubs: [Int: UInt64] = [:]
    for v in Array(0..<32) + [0x20, 0x80, 0x81] where stubs[v] == nil {
      stubs[v] = a.here
      if !Self.hasErrorCode(v) { a.raw([0x6A, 0x00]) }
      a.raw([0x68] + littleEndian(UInt64(v), count: 4))
      a.jmp(common)
    }
    Self.emitCommonHandler(&a, common: common, abort: abort)
    let syscallEntry = a.here
    a.push(2)
    a.push(0)
    a.movImm32(2, UInt32(SystemLayout.testPort))
    a.movImm32(0, 0x5359_0000)
    a.raw([0xEF])
    a.raw([0x89, 0xC8])  // mov eax, ecx
    a.raw([0xEF])
    a.pop(0)
    a.pop(2)
    a.push(11)
    a.raw([0x9D])  // popfq
    a.raw([0xFF, 0xE1])  // jmp rcx
    let abortEntry = a.here
    a.bind(abort)
    a.movImm32(2, UInt32(SystemLayout.exitPort))
    a.movImm32(0, 0xDEAD_0000)
    a.raw([0xEF, 0xFA, 0xF4])  // out dx, eax; cli; hlt
    a.jmpShort(abort)
    let sections = a.assemble()!
    let handlerCode = sections[0].bytes
    for (k, b) in handlerCode.enumerated() { image[Int(SystemLayout.kernelCode) + k] = b }

    // IDT: interrupt gates (IF cleared) to the stubs; INT3 (and INTO) and INT 0x80 usable at CPL 3.
    for (v, target) in stubs {
      let dpl: UInt64 = [3, 4, 0x80].contains(v) ? 3 : 0
      let low =
        (target & 0xFFFF) | UInt64(SystemLayout.kernelCS) << 16 | (0x8E | dpl << 5) << 40 | (target >> 16 & 0xFFFF)
        << 48
      put64(low, SystemLayout.idt + UInt64(v) * 16)
      put64(target >> 32, SystemLayout.idt + UInt64(v) * 16 + 8)
    }
    self.image = image
    self.syscallEntry = syscallEntry
    self.abortEntry = abortEntry
    self.handlerCode = handlerCode
  }

  /// The handler every vector's stub jumps to with the vector and an error code (0 when the CPU
  /// pushes none) on the stack. It reports vector, error code, saved RIP and CS (and CR2 for #PF,
  /// DR6 for #DB) on the test port and counts the vector in kernel data; then
  /// - #PF in the fault pages: sets P, RW and US and clears NX in both address spaces' PTE,
  ///   optionally INVLPG, and retries the access;
  /// - #DB: clears DR6, sets RF in the saved RFLAGS, and after 48 in a row clears TF and DR7;
  /// - INT3 and interrupts (vector 32 and up): return;
  /// - any other fault: resumes at the address in R14 (the program's "expected fault" mark) and
  ///   clears R14, or ends the program (exit port) when R14 is 0.
  private static func emitCommonHandler(_ a: inout SystemAssembler, common: Int, abort: Int) {
    let done = a.newLabel()
    let resume = a.newLabel()
    let pf = a.newLabel()
    let db = a.newLabel()
    func rsp(_ d: Int32) -> RMOperand { .memory(base: 4, index: nil, scale: 1, displacement: d) }
    a.bind(common)
    a.push(0)
    a.push(1)
    a.push(2)
    // Frame: +24 vector, +32 error code, +40 RIP, +48 CS, +56 RFLAGS, +64 RSP, +72 SS.
    a.movImm32(2, UInt32(SystemLayout.testPort))
    a.emit { $0.emit(opcode: [0x8B], reg: 0, rm: rsp(24)) }
    a.emit { $0.emit(opcode: [0x0D], immediate: littleEndian(0x4E56_0000, count: 4)) }  // or eax, 'NV'
    a.raw([0xEF])
    a.emit { $0.emit(opcode: [0x8B], reg: 0, rm: rsp(32)) }
    a.raw([0xEF])
    a.emit { $0.emit(opcode: [0x8B], reg: 0, rm: rsp(40)) }
    a.raw([0xEF])
    a.emit { $0.emit(opcode: [0x8B], reg: 0, rm: rsp(48)) }
    a.raw([0xEF])
    a.emit { $0.emit(size: 64, opcode: [0x8B], reg: 1, rm: rsp(24)) }
    // inc qword [vectorCounters + rcx*8]
    a.raw([0x48, 0xFF, 0x04, 0xCD] + littleEndian(SystemLayout.vectorCounters, count: 4))
    a.raw([0x83, 0xF9, 14])  // cmp ecx, 14
    a.jcc(4, pf)
    a.raw([0x83, 0xF9, 1])
    a.jcc(4, db)
    a.raw([0x83, 0xF9, 32])
    a.jcc(3, done)  // jae
    a.raw([0x83, 0xF9, 3])
    a.jcc(4, done)
    a.bind(resume)
    a.raw([0x4D, 0x85, 0xF6])  // test r14, r14
    a.jcc(4, abort)
    a.emit { $0.emit(size: 64, opcode: [0x89], reg: 14, rm: rsp(40)) }
    a.raw([0x45, 0x31, 0xF6])  // xor r14d, r14d
    a.bind(done)
    a.pop(2)
    a.pop(1)
    a.pop(0)
    a.raw([0x48, 0x83, 0xC4, 0x10])  // add rsp, 16
    a.raw([0x48, 0xCF])  // iretq

    a.bind(pf)
    a.readCR(0, 2)
    a.raw([0xEF])
    // The high half through memory below RSP (interrupts are off here): no flags change.
    a.emit { $0.emit(size: 64, opcode: [0x89], reg: 0, rm: rsp(-8)) }
    a.emit { $0.emit(opcode: [0x8B], reg: 0, rm: rsp(-4)) }
    a.raw([0xEF])
    a.readCR(0, 2)
    a.raw([0x48, 0x89, 0xC1])  // mov rcx, rax
    a.raw([0x48, 0x81, 0xE9] + littleEndian(SystemLayout.faultPages, count: 4))  // sub rcx, faultPages
    a.raw([0x48, 0x81, 0xF9] + littleEndian(UInt64(SystemLayout.faultPageCount) << 12, count: 4))
    a.jcc(3, resume)  // jae: not a fault page
    a.raw([0x48, 0xC1, 0xE9, 0x0C])  // shr rcx, 12
    for table in [SystemLayout.pt1A, SystemLayout.pt1B] {
      let first = table + SystemLayout.pteIndex(SystemLayout.faultPages) * 8
      a.movImm32(2, UInt32(first))
      let entry = RMOperand.memory(base: 2, index: 1, scale: 8, displacement: 0)
      a.emit { $0.emit(size: 64, opcode: [0x83], reg: 1, rm: entry, immediate: [7]) }  // or qword [rdx+rcx*8], 7
      a.emit { $0.emit(size: 64, opcode: [0x0F, 0xBA], reg: 6, rm: entry, immediate: [63]) }  // btr qword [..], 63
    }
    a.raw([0x80, 0x3C, 0x25] + littleEndian(SystemLayout.handlerInvalidates, count: 4) + [0])  // cmp byte [abs], 0
    a.jcc(4, done)
    a.invlpg(0)
    a.jmp(done)

    a.bind(db)
    a.readDR(0, 6)
    a.raw([0xEF])
    a.movImm32(0, 0xFFFF_0FF0)
    a.writeDR(6, 0)
    a.emit { $0.emit(size: 64, opcode: [0x81], reg: 1, rm: rsp(56), immediate: littleEndian(0x1_0000, count: 4)) }
    a.raw([0x48, 0xFF, 0x04, 0x25] + littleEndian(SystemLayout.debugCount, count: 4))  // inc qword [abs]
    a.raw([0x48, 0x83, 0x3C, 0x25] + littleEndian(SystemLayout.debugCount, count: 4) + [48])  // cmp qword [abs], 48
    a.jcc(2, done)  // jb
    a.raw([0x48, 0xC7, 0x04, 0x25] + littleEndian(SystemLayout.debugCount, count: 4) + [0, 0, 0, 0])
    a.emit { $0.emit(size: 64, opcode: [0x81], reg: 4, rm: rsp(56), immediate: littleEndian(0xFFFF_FEFF, count: 4)) }
    a.raw([0x31, 0xC0])  // xor eax, eax
    a.writeDR(7, 0)
    a.jmp(done)
  }

  /// The page tables for a program: A and B, the kernel's pages supervisor (global when
  /// `global`), the test's pages user, the fault pages with `faultFlags`.
  static func writePageTables(
    into memory: SystemMemory, faultFlags: [UInt64], global: Bool
  ) {
    let L = SystemLayout.self
    for table in [L.pml4A, L.pdptA, L.pdA, L.pt0, L.pt1A, L.pml4B, L.pdptB, L.pdB, L.pt1B] {
      memory.write([UInt8](repeating: 0, count: 4096), at: table)
    }
    let up: UInt64 = PTE.present | PTE.writable | PTE.user
    memory.write64(L.pdptA | up, at: L.pml4A)
    memory.write64(L.pdA | up, at: L.pdptA)
    memory.write64(L.pt0 | up, at: L.pdA)
    memory.write64(L.pt1A | up, at: L.pdA + 8)
    memory.write64(L.pdptB | up, at: L.pml4B)
    memory.write64(L.pdB | up, at: L.pdptB)
    memory.write64(L.pt0 | up, at: L.pdB)
    memory.write64(L.pt1B | up, at: L.pdB + 8)
    let kernel = PTE.present | PTE.writable | (global ? PTE.global : 0)
    func map(_ table: UInt64, _ linear: UInt64, _ pages: Int, _ flags: UInt64, frame: UInt64? = nil) {
      for k in 0..<UInt64(pages) {
        let page = linear + k << 12
        memory.write64(((frame ?? linear) + k << 12) | flags, at: table + L.pteIndex(page) * 8)
      }
    }
    map(L.pt0, L.gdt, 3, kernel)
    map(L.pt0, L.pml4A, 0x10, kernel)
    map(L.pt0, L.kernelCode, L.kernelCodeSize >> 12, kernel)
    map(L.pt0, L.kernelData, 1, kernel)
    map(L.pt0, L.kernelStackBottom, 8, kernel)
    for table in [L.pt1A, L.pt1B] {
      map(table, L.code, (L.codeSize + L.functionsSize) >> 12, up)
      map(table, L.data, L.dataPages, up | PTE.noExecute)
      for (k, flags) in faultFlags.enumerated() {
        map(table, L.faultPages + UInt64(k) << 12, 1, flags | PTE.noExecute)
      }
      map(table, L.aliasFrames, L.aliasFrameCount, up | PTE.noExecute)
      map(table, L.userStackBottom, Int(L.userStackTop - L.userStackBottom) >> 12 + 1, up | PTE.noExecute)
    }
    // The alias pages: A maps frames 0 and 1, B frames 2 and 3.
    map(L.pt1A, L.alias, 2, up | PTE.noExecute, frame: L.aliasFrames)
    map(L.pt1B, L.alias, 2, up | PTE.noExecute, frame: L.aliasFrames + 0x2000)
  }
}

extension CPU {
  /// The system difftest's starting state: long mode with paging (CR3 `cr3`, CR4.PGE when
  /// `global`), CPL 0 in the kernel's 64-bit code segment, the GDT, IDT and TSS loaded, SYSCALL
  /// enabled (STAR, LSTAR = `syscallEntry`, CSTAR = `abortEntry`, SFMASK), nothing cached.
  func configureSystemDiff(cr3: UInt64, global: Bool, syscallEntry: UInt64, abortEntry: UInt64) {
    powerOnReset()
    let s = state
    s.cr0 = CR0.pg | CR0.pe | CR0.wp | CR0.ne | CR0.et | CR0.mp
    s.cr4 = CR4.pae | 0x200 | 0x400 | (global ? 0x80 : 0)
    s.efer = EFER.lme | EFER.lma | EFER.nxe | 1
    s.cr3 = cr3
    s.gdtr = (SystemLayout.gdt, 0x4F)
    s.idtr = (SystemLayout.idt, 0xFFF)
    s.setSegment(.ldtr, SegmentCache(selector: 0, base: 0, limit: 0, attributes: 0x82))
    s.setSegment(
      .tr,
      SegmentCache(
        selector: SystemLayout.tssSelector, base: SystemLayout.tss, limit: SystemLayout.tssLimit, attributes: 0x8B))
    s.cpl = 0
    s.setSegment(.cs, SegmentCache(selector: SystemLayout.kernelCS, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA09B))
    let data = SegmentCache(selector: SystemLayout.kernelSS, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC093)
    for r in [SegmentRegister.ss, .ds, .es] { s.setSegment(r, data) }
    for r in [SegmentRegister.fs, .gs] {
      s.setSegment(r, SegmentCache(selector: 0, base: 0, limit: 0xFFFF_FFFF, attributes: 0))
    }
    s[offset: CPUStateLayout.star] = SystemLayout.star
    s[offset: CPUStateLayout.lstar] = syscallEntry
    s[offset: CPUStateLayout.cstar] = abortEntry
    s[offset: CPUStateLayout.sfmask] = SystemLayout.sfmask
    updateCodeMode()
    reportExceptions = false
    instructionsRetired = 0
    invalidateTLB()
  }
}

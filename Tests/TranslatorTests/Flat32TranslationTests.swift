import Foundation
import Interpreter
import TestHostSupport
import Testing
import VMM
import X86

@testable import Translator

/// The translator on flat 32-bit protected-mode code, with paging off and with 32-bit paging,
/// against the interpreter: random programs of the translated forms (ALU at every size with
/// register, immediate and memory operands, INC/DEC, MOV/MOVZX/MOVSX, LEA, IMUL, shifts and
/// rotates, CMOVcc/SETcc, PUSH/POP runs, forward Jcc, counted loops, CALL/RET, atomic updates,
/// flag instructions) over eight data pages, some of them read-only or not present until a page
/// fault handler fixes them, so faults land in the middle of blocks. Both runs must see the same
/// exits, registers, retired instruction counts and memory (data, stack and page tables with
/// their accessed and dirty bits), and translated code must have run most of it.
@Suite struct Flat32TranslationTests {
  struct Outcome: Equatable {
    var exits: [String] = []
    var registers: [UInt64] = []
    var retired: UInt64 = 0
    var memory: [UInt8] = []
    /// Registers, RIP and RFLAGS at every stop on an exhausted budget.
    var trace: [[UInt64]] = []
  }

  /// Runs `program` on a fresh vCPU, with the translator attached when `translated`, in slices of
  /// `budgets` instructions (cycled); returns what it did and how many instructions generated code
  /// completed.
  func run(
    _ program: Flat32Program, paged: Bool, translated: Bool, budgets: [UInt64] = [37, 101, 13, 64, 5, 250, 1],
    segments: (es: Segment, fs: Segment, gs: Segment)? = nil
  ) throws -> (Outcome, translated: UInt64) {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0, bytes: program.image(paged: paged))
    let vcpu = InterpreterVirtualCPU(memory: memory, deterministic: true)
    let translator = translated ? try DynamicTranslator(codeBytes: 4 << 20) : nil
    vcpu.cpu.blockExecutor = translator
    var sregs = SpecialRegisters()
    sregs.cr0 = paged ? 0x8001_0011 : 0x11
    sregs.cr3 = paged ? UInt64(Flat32Program.pageDirectory) : 0
    let data = Segment(selector: 0x10, base: 0, limit: 0xFFFF_FFFF, type: 3, db: true, g: true)
    sregs.cs = Segment(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, type: 11, db: true, g: true)
    (sregs.ds, sregs.es, sregs.ss, sregs.fs, sregs.gs) = (data, data, data, data, data)
    if let segments { (sregs.es, sregs.fs, sregs.gs) = segments }
    sregs.gdt = DescriptorTable(base: UInt64(Flat32Program.gdt), limit: 0x17)
    sregs.idt = DescriptorTable(base: 0, limit: 0x7FF)
    try vcpu.setSpecialRegisters(sregs)
    var regs = Registers()
    for (r, v) in program.registers.enumerated() { regs[encoding: r] = v }
    regs.rip = UInt64(Flat32Program.code)
    regs.rflags = 0x2
    try vcpu.setRegisters(regs)
    var outcome = Outcome()
    // Short budgets of varying length stop the run at many points (in blocks, at loop back edges,
    // in fault handlers): the state there, flags included, must be the same on both engines.
    for i in 0..<20_000 {
      let exit = try vcpu.run(budget: budgets[i % budgets.count])
      outcome.exits.append(exit.reasonName)
      // The programs do no I/O: they end at HLT with interrupts off (a fault the handler cannot
      // fix also halts there).
      guard case .budgetExhausted = exit else { break }
      let r = try vcpu.registers()
      outcome.trace.append((0..<8).map { r[encoding: $0] } + [r.rip, r.rflags])
    }
    let final = try vcpu.registers()
    outcome.registers = (0..<8).map { final[encoding: $0] } + [final.rip, final.rflags]
    outcome.retired = vcpu.instructionsRetired ?? 0
    outcome.memory =
      try memory.read(UInt64(Flat32Program.data), count: Flat32Program.dataPages * 4096)
      + memory.read(UInt64(Flat32Program.stackTop - 0x2000), count: 0x2000)
      + memory.read(UInt64(Flat32Program.pageTable), count: 4096)
    return (outcome, translator?.statistics.translatedInstructions ?? 0)
  }

  /// Programs per mode: 24, or `TRIVISOR_FLAT32_PROGRAMS` (longer runs when hunting a bug).
  static let programs = UInt64(ProcessInfo.processInfo.environment["TRIVISOR_FLAT32_PROGRAMS"] ?? "") ?? 24

  @Test(arguments: [false, true])
  func randomProgramsRunAsOnTheInterpreter(paged: Bool) throws {
    var translatedTotal: UInt64 = 0
    var retiredTotal: UInt64 = 0
    for seed in 1...Self.programs {
      let program = Flat32Program(seed: seed &* 0x9E37_79B9_7F4A_7C15, items: 60)
      let (interp, _) = try run(program, paged: paged, translated: false)
      let (dbt, translated) = try run(program, paged: paged, translated: true)
      #expect(dbt.exits == interp.exits, "seed \(seed)")
      #expect(dbt.registers == interp.registers, "seed \(seed)")
      #expect(dbt.retired == interp.retired, "seed \(seed)")
      #expect(dbt.memory == interp.memory, "seed \(seed)")
      #expect(dbt.trace == interp.trace, "seed \(seed)")
      // Every program ends at its final HLT (with interrupts off: a shutdown), faults fixed.
      #expect(dbt.registers[8] == UInt64(program.end), "seed \(seed): stopped at \(dbt.registers[8]), \(dbt.exits)")
      translatedTotal += translated
      retiredTotal += dbt.retired
    }
    // Most of it ran as translated code (the rest: callouts, side exits, fault handlers).
    #expect(translatedTotal * 2 > retiredTotal, "\(translatedTotal) of \(retiredTotal) translated")
  }

  /// A read that crosses from linear page 0x7FFF into page 0x8000 while the TLB's read entry for
  /// page 0x8000 is cached. The inline lookup compares the slot of the first byte's page with the
  /// tag of the last byte's: when the TLB folded page numbers with XOR both pages had set 0x80,
  /// the crossing read hit page 0x8000's entry and read the 2 bytes before that page's host
  /// memory instead of the end of page 0x7FFF (mapped elsewhere here).
  @Test func readAcrossPagesThatOnceSharedATLBSetReadsBoth() throws {
    var program = Flat32Program(seed: 0, items: 0)
    program.main = [
      0xA1, 0x00, 0x00, 0x00, 0x08,  // mov eax, [0x8000000]: caches page 0x8000
      0xBA, 0x05, 0x00, 0x00, 0x00,  // mov edx, 5 (the next block: generated code runs it)
      0x8B, 0x0D, 0xFE, 0xFF, 0xFF, 0x07,  // mov ecx, [0x7FFFFFE]: 2 bytes in each page
      0xF4,
    ]
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    // Page 0x7FFF -> physical 0x84000 (PDE 0x1F, table 0x5000); page 0x8000 -> 0x82000 (PDE 0x20,
    // table 0x6000); physical 0x81FFE, below page 0x8000's frame, holds what a wrong read would see.
    program.pokes = [
      (Flat32Program.pageDirectory + 4 * 0x1F, le32(0x5003)), (0x5000 + 4 * 0x3FF, le32(0x84003)),
      (Flat32Program.pageDirectory + 4 * 0x20, le32(0x6003)), (0x6000, le32(0x82003)),
      (0x84FFE, [0x11, 0x22]), (0x82000, [0x33, 0x44, 0x55, 0x66]), (0x81FFE, [0xEE, 0xFF]),
    ]
    let (interp, _) = try run(program, paged: true, translated: false, budgets: [100])
    let (dbt, translated) = try run(program, paged: true, translated: true, budgets: [100])
    #expect(interp.registers[1] == 0x4433_2211)
    #expect(dbt.registers == interp.registers)
    #expect(dbt.exits == interp.exits)
    #expect(translated > 0)
  }

  /// Reads through one base register share a TLB lookup (read groups): a group whose range
  /// straddles two pages (its first read must side-exit, not read past the page), a member with a
  /// lower displacement than the first read, a read whose own result replaces the base (the next
  /// read must use the new base), and reads of another register in between. Registers and the
  /// retired count must be the interpreter's, in slices that stop inside the groups.
  @Test func groupedReadsRunAsOnTheInterpreter() throws {
    var program = Flat32Program(seed: 0, items: 0)
    let d = UInt32(Flat32Program.data)
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    // Each of the first reads misses the TLB (its block side-exits and the interpreter fills the
    // entry), so the group that straddles both pages starts a block of its own with both cached.
    program.main =
      [0x8B, 0x13]  // mov edx, [ebx]  (the first page)
      + [0x8B, 0xB3] + le32(0x1800)  // mov esi, [ebx + 0x1800]  (the second page)
      + [0x8B, 0x83] + le32(0xFF8)  // mov eax, [ebx + 0xFF8]  (the range 0xFF8..0x1008 straddles)
      + [0x8B, 0x8B] + le32(0x1004)  // mov ecx, [ebx + 0x1004]
      + [0x03, 0x83] + le32(0x100)  // add eax, [ebx + 0x100]
      + [0x0F, 0xB6, 0x53, 0x10]  // movzx edx, byte [ebx + 0x10]
      + [0x2B, 0x43, 0x08]  // sub eax, [ebx + 8]  (lower than the group's first read)
      + [0x8B, 0x5B, 0x20]  // mov ebx, [ebx + 0x20]  (the base changes)
      + [0x8B, 0x73, 0x24]  // mov esi, [ebx + 0x24]  (through the new base)
      + [0x8B, 0x7B, 0x28]  // mov edi, [ebx + 0x28]
      + [0x3B, 0x7B, 0x2C]  // cmp edi, [ebx + 0x2C]
      + [0x0F, 0x4C, 0x6B, 0x30]  // cmovl ebp, [ebx + 0x30]
      + [0xF4]
    var data = [UInt8](repeating: 0, count: 0x1100)
    for i in stride(from: 0, to: data.count, by: 4) {
      data.replaceSubrange(i..<i + 4, with: le32(UInt32(i) &* 0x9E37_79B9))
    }
    data.replaceSubrange(0x20..<0x24, with: le32(d + 0x400))  // the new base
    // The second data page maps to a frame away from the first (at 0x90000), so a read that went
    // on from the first page's host memory into the next host page would read the wrong bytes.
    program.pokes = [
      (Int(d), Array(data[..<0x1000])), (0x90000, Array(data[0x1000...])),
      (Flat32Program.pageTable + 4 * (Int(d) / 4096 + 1), le32(0x90003)),
    ]
    program.dataPageFlags = program.dataPageFlags.map { _ in 3 }
    for budgets: [UInt64] in [[100], [1, 2, 3], [5]] {
      let (interp, _) = try run(program, paged: true, translated: false, budgets: budgets)
      let (dbt, translated) = try run(program, paged: true, translated: true, budgets: budgets)
      #expect(dbt.registers == interp.registers, "budgets \(budgets)")
      #expect(dbt.trace == interp.trace, "budgets \(budgets)")
      #expect(dbt.retired == interp.retired)
      // Slices shorter than a block run in the interpreter; a whole budget runs the groups.
      if budgets == [100] { #expect(translated > 0) }
    }
  }

  /// Memory operands through ES, FS and GS in 32-bit code: through a segment with a base, a
  /// 4 GiB limit and the needed access, generated code adds the base; through one with a smaller
  /// limit, or a write through a read-only one, it side-exits and the interpreter does the access
  /// or raises #GP (here the halt handler: the program stops where the interpreter stops it).
  @Test(
    arguments: [false, true],
    [
      [0x26, 0x89, 0x3D, 0x14, 0x00, 0x00, 0x00] as [UInt8],  // mov es:[0x14], edi  (#GP: ES is read-only)
      [0x65, 0x8B, 0x3D, 0xFE, 0x0F, 0x00, 0x00],  // mov edi, gs:[0xFFE]  (#GP: past GS's limit)
      [0x64, 0x8B, 0x3D, 0xFE, 0xFF, 0xFF, 0xFF],  // mov edi, fs:[0xFFFFFFFE]  (#GP: past 4 GiB - 1)
    ])
  func segmentOverridesRunAsOnTheInterpreter(paged: Bool, faulting: [UInt8]) throws {
    var program = Flat32Program(seed: 0, items: 0)
    program.main =
      [
        0x64, 0x8B, 0x03,  // mov eax, fs:[ebx]       (FS: base data + 0x100)
        0x64, 0x89, 0x4B, 0x04,  // mov fs:[ebx + 4], ecx
        0x64, 0x03, 0x43, 0x08,  // add eax, fs:[ebx + 8]
        0x65, 0x8B, 0x13,  // mov edx, gs:[ebx]       (GS: limit 0xFFF, in the interpreter)
        0x26, 0x8B, 0x35, 0x10, 0x00, 0x00, 0x00,  // mov esi, es:[0x10]  (ES: read-only)
        0x2E, 0x8B, 0x2D, 0x00, 0x00, 0x01, 0x00,  // mov ebp, cs:[0x10000]  (CS: execute/read)
      ] + faulting + [0xF4]
    program.registers = [0, 0xCAFE_BABE, 0, 0x20, 0, 0, 0, 0x1234]
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    let d = Flat32Program.data
    program.pokes = [(d + 0x120, le32(0x1111_1111)), (d + 0x128, le32(0x2222_2222)), (d + 0x220, le32(0x3333_3333))]
    program.pokes.append((d + 0x310, le32(0x4444_4444)))
    program.dataPageFlags = program.dataPageFlags.map { _ in 3 }
    let base = UInt64(d)
    let segments = (
      es: Segment(selector: 0x10, base: base + 0x300, limit: 0xFFFF_FFFF, type: 1, db: true, g: true),
      fs: Segment(selector: 0x10, base: base + 0x100, limit: 0xFFFF_FFFF, type: 3, db: true, g: true),
      gs: Segment(selector: 0x10, base: base + 0x200, limit: 0xFFF, type: 3, db: true, g: false)
    )
    for budgets: [UInt64] in [[100], [1, 2, 3]] {
      let (interp, _) = try run(program, paged: paged, translated: false, budgets: budgets, segments: segments)
      let (dbt, translated) = try run(program, paged: paged, translated: true, budgets: budgets, segments: segments)
      #expect(dbt.registers == interp.registers, "budgets \(budgets)")
      #expect(dbt.exits == interp.exits)
      #expect(dbt.trace == interp.trace)
      #expect(dbt.retired == interp.retired)
      #expect(dbt.memory == interp.memory)
      if budgets == [100] { #expect(translated > 0) }
      #expect(interp.registers[0] == 0x3333_3333)  // 0x1111_1111 + 0x2222_2222
      #expect(interp.registers[2] == 0x3333_3333)
      #expect(interp.registers[6] == 0x4444_4444)
      #expect(interp.registers[7] == 0x1234)  // the faulting instruction changed nothing
    }
    // The write through FS landed at FS's base + EBX + 4.
    let (final, _) = try run(program, paged: paged, translated: true, budgets: [100], segments: segments)
    #expect(Array(final.memory[0x124..<0x128]) == le32(0xCAFE_BABE))
  }

  /// The Multiboot ALU loop of `trivisor bench alu32` shape (add, xor, rol, dec, jnz), unpaged:
  /// the loop runs as translated code and leaves what the interpreter leaves.
  @Test func aluLoopRunsTranslated() throws {
    var program = Flat32Program(seed: 0, items: 0)
    program.main = [
      0xB9, 0x40, 0x42, 0x0F, 0x00,  // mov ecx, 1000000
      0x01, 0xC8,  // add eax, ecx
      0x31, 0xC2,  // xor edx, eax
      0xC1, 0xC0, 0x05,  // rol eax, 5
      0x49,  // dec ecx
      0x75, 0xF6,  // jnz add
      0xF4,
    ]
    let (interp, _) = try run(program, paged: false, translated: false, budgets: [1_000_000])
    let (dbt, translated) = try run(program, paged: false, translated: true, budgets: [1_000_000])
    #expect(dbt == interp)
    #expect(translated > 4_900_000, "\(translated) translated")
  }
}

/// A random flat 32-bit program (see `Flat32TranslationTests`) and the machine it runs in: IDT at
/// 0 (every vector to a HLT, #PF to a handler that makes the faulting page present and writable
/// and returns to the faulting instruction), GDT, page directory and one page table mapping the
/// first 4 MiB, main code, functions, data pages with EBX pointing at them, and a stack.
struct Flat32Program {
  static let gdt = 0x1000
  static let pageFaultHandler = 0x2000
  static let haltHandler = 0x2100
  static let pageDirectory = 0x3000
  static let pageTable = 0x4000
  static let code = 0x10000
  static let functions = 0x20000
  static let data = 0x80000
  static let dataPages = 8
  static let stackTop = 0x9F000

  var main: [UInt8] = []
  var functionCode: [UInt8] = []
  var registers: [UInt64] = []
  /// Page-table flags of the data pages (present, writable).
  var dataPageFlags: [UInt32] = []
  /// Bytes written over the image last (page-table entries and data of hand-made tests).
  var pokes: [(address: Int, bytes: [UInt8])] = []
  /// Where RIP ends: after the final HLT.
  var end: Int { Self.code + main.count }

  private var rng: Xorshift64
  private var stackDepth = 0
  /// Generating a function's body: no ESP-relative operands (the return address is there).
  private var inFunctionBody = false

  /// Registers the program computes in: EAX ECX EDX EBP ESI EDI (EBX points at the data, ESP is
  /// the stack; EBP is also the loop counter, left alone inside loops).
  static let free: [UInt8] = [0, 1, 2, 5, 6, 7]

  init(seed: UInt64, items: Int) {
    rng = Xorshift64(seed: seed | 1)
    registers = (0..<8).map { _ in 0 }
    for r in 0..<8 { registers[r] = next() & 0xFFFF_FFFF }
    registers[3] = UInt64(Self.data)
    registers[4] = UInt64(Self.stackTop)
    dataPageFlags = (0..<Self.dataPages).map { _ in
      switch below(6) {
      case 0: return 0  // not present
      case 1: return 1  // read-only
      default: return 3
      }
    }
    // Items append to `main` one by one (a CALL's displacement depends on where it is).
    for _ in 0..<items {
      let bytes = item(inLoop: false, inFunction: false)
      main += bytes
    }
    // Pop what is left on the stack, then stop.
    for _ in 0..<stackDepth { main.append(0x58 + pick(Self.free)) }
    stackDepth = 0
    main.append(0xF4)
  }

  /// The guest's low memory: IDT, GDT, handlers, page tables, code, functions.
  func image(paged: Bool) -> [UInt8] {
    var m = [UInt8](repeating: 0, count: Self.data)
    func put32(_ v: UInt32, _ at: Int) { for k in 0..<4 { m[at + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) } }
    func put64(_ v: UInt64, _ at: Int) { for k in 0..<8 { m[at + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) } }
    for vector in 0..<256 {
      let handler = UInt64(vector == 14 ? Self.pageFaultHandler : Self.haltHandler)
      put64((handler & 0xFFFF) | 0x08 << 16 | 0x8E00 << 32 | (handler >> 16) << 48, vector * 8)
    }
    put64(0x00CF_9B00_0000_FFFF, Self.gdt + 8)
    put64(0x00CF_9300_0000_FFFF, Self.gdt + 16)
    let pageFault: [UInt8] = [
      0x50, 0x51,  // push eax; push ecx
      0x0F, 0x20, 0xD0,  // mov eax, cr2
      0xC1, 0xE8, 0x0C,  // shr eax, 12
      0x2D, 0x80, 0x00, 0x00, 0x00,  // sub eax, data >> 12
      0x83, 0xF8, UInt8(Self.dataPages),  // cmp eax, dataPages
      0x73, 0x14,  // jae .halt (not a data page: stop)
      0x83, 0x0C, 0x85, 0x00, 0x42, 0x00, 0x00, 0x03,  // or dword [eax*4 + pageTable + 0x200], 3
      0x0F, 0x20, 0xD1,  // mov ecx, cr2
      0x0F, 0x01, 0x39,  // invlpg [ecx]
      0x59, 0x58,  // pop ecx; pop eax
      0x83, 0xC4, 0x04,  // add esp, 4 (the error code)
      0xCF,  // iret
      0xF4, 0xEB, 0xFD,  // .halt: hlt; jmp .halt
    ]
    m.replaceSubrange(Self.pageFaultHandler..<Self.pageFaultHandler + pageFault.count, with: pageFault)
    m.replaceSubrange(Self.haltHandler..<Self.haltHandler + 3, with: [0xF4, 0xEB, 0xFD])
    if paged {
      put32(UInt32(Self.pageTable) | 3, Self.pageDirectory)
      for page in 0..<1024 {
        let index = page - Self.data / 4096
        let flags = (0..<Self.dataPages).contains(index) ? dataPageFlags[index] : 3
        put32(UInt32(page * 4096) | flags, Self.pageTable + 4 * page)
      }
    }
    m.replaceSubrange(Self.code..<Self.code + main.count, with: main)
    m.replaceSubrange(Self.functions..<Self.functions + functionCode.count, with: functionCode)
    for poke in pokes {
      if m.count < poke.address + poke.bytes.count {
        m += [UInt8](repeating: 0, count: poke.address + poke.bytes.count - m.count)
      }
      m.replaceSubrange(poke.address..<poke.address + poke.bytes.count, with: poke.bytes)
    }
    return m
  }

  // MARK: Random choices

  private mutating func next() -> UInt64 { rng.next() }
  private mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
  private mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
  private mutating func imm32() -> [UInt8] {
    let v = below(4) == 0 ? pick([0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]) : next()
    return le(UInt32(truncatingIfNeeded: v))
  }
  private func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

  /// A destination register of `size` bytes (never EBX or ESP, nor BL/BH; not EBP in a loop).
  private mutating func destination(size: Int, inLoop: Bool) -> UInt8 {
    if size == 1 { return pick(inLoop ? [0, 1, 2, 4, 5, 6] : [0, 1, 2, 4, 5, 6]) }
    return pick(inLoop ? [0, 1, 2, 6, 7] : Self.free)
  }

  /// ModRM (and SIB, displacement) of a data operand with `reg` in the reg field: EBX plus a
  /// displacement, an absolute address, or ESP plus a small displacement (through SS). Some
  /// displacements make the access cross a page.
  private mutating func memoryOperand(reg: UInt8) -> [UInt8] {
    let offset = UInt32(
      below(4) == 0 ? below(Self.dataPages) * 4096 + 4092 + below(3) : below(Self.dataPages * 4096 - 8))
    switch below(4) {
    case 0: return [0x05 | reg << 3] + le(UInt32(Self.data) + offset)
    case 1 where !inFunctionBody: return [0x44 | reg << 3, 0x24, UInt8(below(16) * 4)]  // [esp + disp8]
    default: return [0x83 | reg << 3] + le(offset)  // [ebx + disp32]
    }
  }

  /// The operand-size prefix and whether the opcode is the byte form, for `size`.
  private func sized(_ size: Int, _ opcode: UInt8) -> [UInt8] {
    size == 2 ? [0x66, opcode | 1] : size == 1 ? [opcode & ~1] : [opcode | 1]
  }

  /// `sized` for a 0F opcode (the prefix goes before the escape).
  private func sized0F(_ size: Int, _ opcode: UInt8) -> [UInt8] {
    size == 2 ? [0x66, 0x0F, opcode | 1] : [0x0F, size == 1 ? opcode & ~1 : opcode | 1]
  }

  // MARK: Items

  private mutating func item(inLoop: Bool, inFunction: Bool) -> [UInt8] {
    let size = pick([4, 4, 4, 2, 1])
    let d = destination(size: size, inLoop: inLoop)
    let s = UInt8(below(8))
    switch below(100) {
    case 0..<14:  // ALU r, r / r, m / m, r
      let op = UInt8(below(8))
      switch below(3) {
      case 0: return sized(size, op << 3) + [0xC0 | s << 3 | d]
      case 1: return sized(size, op << 3 | 2) + memoryOperand(reg: d)
      default:
        return sized(size, op << 3) + memoryOperand(reg: s)
      }
    case 14..<22:  // ALU with an immediate, register or memory
      let op = UInt8(below(8))
      let short = size != 1 && below(2) == 0
      let opcode: [UInt8] = short ? (size == 2 ? [0x66, 0x83] : [0x83]) : sized(size, 0x80)
      let target = below(3) == 0 ? memoryOperand(reg: op) : [0xC0 | op << 3 | d]
      let immediate = short || size == 1 ? [UInt8(below(256))] : Array(imm32().prefix(size))
      return opcode + target + immediate
    case 22..<27:  // INC/DEC
      if below(2) == 0 && size == 4 { return [(below(2) == 0 ? 0x40 : 0x48) + d] }
      return sized(size, 0xFE)
        + (below(2) == 0 ? memoryOperand(reg: UInt8(below(2))) : [0xC0 | UInt8(below(2)) << 3 | d])
    case 27..<37:  // MOV
      switch below(4) {
      case 0: return [0xB8 + destination(size: 4, inLoop: inLoop)] + imm32()
      case 1: return sized(size, 0x88) + memoryOperand(reg: s)
      case 2: return sized(size, 0x8A) + memoryOperand(reg: d)
      default:
        return size == 2
          ? [0x66, 0xC7] + memoryOperand(reg: 0) + imm32().prefix(2) : [0xC7] + memoryOperand(reg: 0) + imm32()
      }
    case 37..<41:  // MOVZX/MOVSX
      let d32 = destination(size: 4, inLoop: inLoop)
      let op: UInt8 = pick([0xB6, 0xB7, 0xBE, 0xBF])
      return [0x0F, op] + (below(2) == 0 ? [0xC0 | d32 << 3 | s] : memoryOperand(reg: d32))
    case 41..<45:  // LEA
      let d32 = destination(size: 4, inLoop: inLoop)
      return [0x8D, 0x44 | d32 << 3, UInt8(below(4)) << 6 | UInt8(below(8)) << 3 | UInt8(below(8)), UInt8(below(256))]
    case 45..<49:  // IMUL r, r/m (, imm8)
      let d32 = destination(size: 4, inLoop: inLoop)
      let source = below(2) == 0 ? [0xC0 | d32 << 3 | s] : memoryOperand(reg: d32)
      return below(2) == 0 ? [0x0F, 0xAF] + source : [0x6B] + source + [UInt8(below(256))]
    case 49..<56:  // shifts and rotates (not /6, an undocumented alias of SHL)
      let op = pick([0, 1, 2, 3, 4, 5, 7] as [UInt8])
      switch below(3) {
      case 0: return sized(size, 0xC0) + [0xC0 | op << 3 | d, UInt8(below(40))]
      case 1: return sized(size, 0xD0) + [0xC0 | op << 3 | d]
      default: return sized(size, 0xD2) + [0xC0 | op << 3 | d]
      }
    case 56..<61:  // CMOVcc / SETcc
      let cc = UInt8(below(16))
      if below(2) == 0 {
        let d32 = destination(size: 4, inLoop: inLoop)
        return [0x0F, 0x40 | cc] + (below(2) == 0 ? [0xC0 | d32 << 3 | s] : memoryOperand(reg: d32))
      }
      return [0x0F, 0x90 | cc, 0xC0 | destination(size: 1, inLoop: inLoop)]
    case 61..<69:  // PUSH / POP (runs of them)
      var bytes: [UInt8] = []
      for _ in 0..<(below(4) + 1) {
        if stackDepth > 0 && below(2) == 0 {
          bytes.append(0x58 + destination(size: 4, inLoop: inLoop))
          stackDepth -= 1
        } else {
          switch below(3) {
          case 0: bytes += [0x68] + imm32()
          case 1: bytes += [0x6A, UInt8(below(256))]
          default: bytes.append(0x50 + UInt8(below(8)))
          }
          stackDepth += 1
        }
      }
      return bytes
    case 69..<74:  // a forward Jcc over a few items
      var skipped: [UInt8] = []
      for _ in 0..<(below(3) + 1) { skipped += plainItem(inLoop: inLoop) }
      guard skipped.count < 128 else { return skipped }
      return [0x70 | UInt8(below(16)), UInt8(skipped.count)] + skipped
    case 74..<79 where !inLoop && !inFunction:  // a counted loop on EBP
      var body: [UInt8] = []
      for _ in 0..<(below(4) + 1) { body += plainItem(inLoop: true) }
      let head: [UInt8] = [0xBD] + le(UInt32(below(6) + 1))  // mov ebp, n
      let back = -(body.count + 1 + 6)
      return head + body + [0x4D, 0x0F, 0x85] + le(UInt32(bitPattern: Int32(back)))  // dec ebp; jnz
    case 79..<83 where !inFunction:  // CALL a function on another page
      let start = Self.functions + functionCode.count
      var body: [UInt8] = []
      inFunctionBody = true
      for _ in 0..<(below(4) + 1) { body += plainItem(inLoop: inLoop) }
      inFunctionBody = false
      functionCode += body + [0xC3]
      return [0xE8] + le(UInt32(bitPattern: Int32(start - (Self.code + main.count + 5))))
    case 83..<90:  // atomic updates of memory
      let r = UInt8(below(8))
      switch below(4) {
      case 0: return [0xF0] + sized(size, UInt8(below(7)) << 3) + memoryOperand(reg: r)  // LOCK ALU m, r
      case 1: return [0xF0] + sized0F(size, 0xC0) + memoryOperand(reg: d)  // LOCK XADD m, r
      case 2: return sized(size, 0x86) + memoryOperand(reg: d)  // XCHG m, r
      default: return [0xF0] + sized0F(size, 0xB0) + memoryOperand(reg: r)  // LOCK CMPXCHG m, r
      }
    case 90..<95:  // flag instructions
      return [pick([0xF8, 0xF9, 0xF5, 0xFC, 0xFD, 0x9E, 0x9F] as [UInt8])]
    default:
      return [0x9C, 0x58 + destination(size: 4, inLoop: inLoop)]  // pushfd; pop r
    }
  }

  /// An item that keeps the stack as it was and does not branch (loop and function bodies, what
  /// a Jcc skips).
  private mutating func plainItem(inLoop: Bool) -> [UInt8] {
    // It may pop only what it pushed itself (a function's return address is on the stack).
    let depth = stackDepth
    defer { stackDepth = depth }
    while true {
      stackDepth = 0
      let bytes = item(inLoop: inLoop, inFunction: true)
      if stackDepth == 0 { return bytes }
    }
  }
}

import Translator
import VMM
import X86

/// Code discovery for static translation: recursive traversal over the decoder (the translator's
/// own front end, `GuestBlock.read`) from entry points (the image's entry, ELF function symbols).
/// It follows direct jumps, calls (and their return sites), both ways of conditional branches and
/// the fall-through after instructions that continue, and the entries of jump tables it recognizes
/// (`jumpTableTargets`); it does not follow other indirect jumps and calls (it records them:
/// their targets are left to the dynamic translator) and stops where the
/// decoder stops (bytes that do not decode: data), so data after a return or a jump is never
/// read as code.
package struct Discovery {
  /// What a traversal found.
  package struct Result {
    /// The blocks, by start RIP, in the order found.
    package var blocks: [GuestBlock] = []
    /// RIPs of indirect jumps and calls whose targets were not resolved.
    package var indirectSites: [UInt64] = []
    /// RIPs where traversal stopped: no instruction decodes there (data, or one crossing a
    /// page), or the address is outside guest RAM.
    package var stops: [UInt64] = []
    /// RIPs of indirect jumps recognized as jump tables (their targets followed).
    package var jumpTables: [UInt64] = []
  }

  /// Most entries a recognized jump table may have.
  package static let maximumTableEntries = 4096

  /// Blocks traversal may find before it stops (a bound for huge or hostile images).
  package static let maximumBlocks = 200_000

  /// Traverses `mode` code from `entries`, reading it from `cpu`'s memory; `physical` maps a
  /// linear address to a physical one (nil: not mapped).
  /// With `restartPoints`, every instruction after one that may side-exit (a memory operand, a
  /// stack operation, port I/O) starts a block too: after a side exit the dispatcher goes on there,
  /// in the middle of a block, and without such a block that code is translated at run time.
  package static func discover(
    cpu: CPU, entries: [UInt64], mode: TranslatedCodeMode, physical: (UInt64) -> UInt64?, restartPoints: Bool = false
  ) -> Result {
    var result = Result()
    var seen = Set<UInt64>()
    var work = entries.reversed().map { $0 }
    func wrap(_ a: UInt64) -> UInt64 { mode == .long64 ? a : a & 0xFFFF_FFFF }
    while let rip = work.popLast(), result.blocks.count < maximumBlocks {
      guard seen.insert(rip).inserted else { continue }
      guard let phys = physical(rip) else {
        result.stops.append(rip)
        continue
      }
      let block = GuestBlock.read(from: cpu, rip: rip, physical: phys, mode: mode)
      guard let last = block.instructions.last else {
        result.stops.append(rip)
        continue
      }
      result.blocks.append(block)
      var next: [UInt64] = []
      for (k, g) in block.instructions.enumerated() {
        let ins = g.instruction
        switch g.form {
        case .jcc, .jmpRel, .callRel:
          next.append(wrap(g.nextRIP &+ ins.immediate))
        default: break
        }
        if g.special == .jumpIndirect, mode == .long64,
          let targets = jumpTableTargets(block, at: k, read: { a in readInt32(cpu, physical(a)) })
        {
          if !result.jumpTables.contains(g.rip) { result.jumpTables.append(g.rip) }
          next.append(contentsOf: targets)
        } else if g.special == .jumpIndirect || g.special == .callIndirect, !result.indirectSites.contains(g.rip) {
          result.indirectSites.append(g.rip)
        }
      }
      if continuesAfter(last) { next.append(wrap(last.nextRIP)) }
      if restartPoints {
        for g in block.instructions.dropLast() where mayExitAfter(g) { next.append(wrap(g.nextRIP)) }
      }
      // Depth first, in the order the code names them.
      work.append(contentsOf: next.reversed())
    }
    return result
  }

  /// The targets of the jump table `JMP reg` at `block.instructions[k]` is, in the form compilers
  /// emit for position-independent code, all in the same block:
  ///
  ///     CMP idx, n ; JA default       (or JAE: the bound)
  ///     LEA base, [RIP + table]
  ///     MOVSXD r, dword [base + idx*4]
  ///     ADD r, base
  ///     JMP r
  ///
  /// each entry a 32-bit offset from the table. nil when the pattern or its bound is not there, or
  /// an entry cannot be read (`read`: the signed 32-bit value at a linear address).
  static func jumpTableTargets(_ block: GuestBlock, at k: Int, read: (UInt64) -> Int32?) -> [UInt64]? {
    let code = block.instructions
    let jump = code[k].instruction
    guard k >= 3, jump.operands.0.kind == .gpr else { return nil }
    let r = jump.operands.0.reg
    let add = code[k - 1].instruction
    guard add.operation == .add, add.operandSize == 8, add.operands.0.kind == .gpr, add.operands.0.reg == r,
      add.operands.1.kind == .gpr
    else { return nil }
    let base = add.operands.1.reg
    let load = code[k - 2].instruction
    guard load.operation == .movsxd, load.operands.0.kind == .gpr, load.operands.0.reg == r, load.hasMemoryOperand,
      load.base == base, load.scale == 4, load.displacement == 0, load.index != DecodedInstruction.noRegister
    else { return nil }
    let index = load.index
    // The table's address: the nearest earlier write of `base` must be LEA base, [RIP + disp].
    var table: UInt64? = nil
    var bound: UInt64? = nil
    for i in stride(from: k - 3, through: 0, by: -1) {
      let g = code[i]
      let ins = g.instruction
      if table == nil, ins.operands.0.kind == .gpr, ins.operands.0.reg == base {
        guard ins.operation == .lea, ins.base == DecodedInstruction.ripBase else { return nil }
        table = g.nextRIP &+ UInt64(bitPattern: ins.displacement)
      }
      // The bound: JA (condition 7) or JAE (3) right after CMP idx, imm.
      if bound == nil, g.form == .jcc, ins.condition == 7 || ins.condition == 3, i > 0 {
        let cmp = code[i - 1].instruction
        if cmp.operation == .cmp, cmp.operands.0.kind == .gpr, cmp.operands.0.reg == index,
          cmp.operands.1.kind == .immediate
        {
          bound = ins.condition == 7 ? cmp.immediate &+ 1 : cmp.immediate
        }
      }
      if table != nil && bound != nil { break }
    }
    guard let table, let bound, bound > 0, bound <= UInt64(maximumTableEntries) else { return nil }
    var targets: [UInt64] = []
    for j in 0..<bound {
      guard let offset = read(table &+ 4 * j) else { return nil }
      targets.append(table &+ UInt64(bitPattern: Int64(offset)))
    }
    return targets
  }

  /// The signed 32-bit value at physical `physical` in `cpu`'s memory (nil: not mapped or not RAM).
  static func readInt32(_ cpu: CPU, _ physical: UInt64?) -> Int32? {
    guard let physical, let p = cpu.memory.hostPointer(physical: physical, length: 4, write: false) else { return nil }
    return p.loadUnaligned(as: Int32.self)
  }

  /// Whether a block may side-exit at `g`, so that the dispatcher goes on at the next instruction.
  static func mayExitAfter(_ g: GuestInstruction) -> Bool {
    if g.instruction.hasMemoryOperand { return true }
    switch g.form {
    case .pushR, .popR, .pushI: return true
    default: return g.special == .portIO || g.special == .pushMemory
    }
  }

  /// Whether control may reach the instruction after `g` (the last of a block).
  static func continuesAfter(_ g: GuestInstruction) -> Bool {
    switch g.form {
    case .jmpRel, .ret: return false
    case .generic:
      if g.special == .jumpIndirect { return false }
      switch g.instruction.operation {
      case .jmp, .ret, .iret, .sysret, .sysexit, .ud0, .ud1, .ud2, .invalid: return false
      default: return true
      }
    default: return true
    }
  }
}

/// The function symbols of a 64-bit ELF image and its loadable segments' virtual-to-physical
/// mapping, read with bounds checks (a malformed table gives fewer entries, never a crash).
package struct ELFCodeMap {
  /// Addresses of `STT_FUNC` symbols defined in the image.
  package var functionSymbols: [UInt64] = []
  /// PT_LOAD segments: virtual address, physical address, size in memory.
  package var segments: [(virtual: UInt64, physical: UInt64, size: UInt64)] = []

  /// Reads `image`; empty for anything but a little-endian ELF64.
  package init(_ image: [UInt8]) {
    guard image.count >= 64, image[0] == 0x7F, image[1] == 0x45, image[2] == 0x4C, image[3] == 0x46, image[4] == 2,
      image[5] == 1
    else { return }
    func u(_ at: Int, _ n: Int) -> UInt64? {
      guard at >= 0, n <= 8, at + n <= image.count else { return nil }
      var v: UInt64 = 0
      for k in 0..<n { v |= UInt64(image[at + k]) << (8 * UInt64(k)) }
      return v
    }
    if let phoff = u(0x20, 8), let phentsize = u(0x36, 2), let phnum = u(0x38, 2), phentsize >= 56,
      phoff < UInt64(image.count)
    {
      for i in 0..<Int(phnum) {
        let at = Int(phoff) + i * Int(phentsize)
        guard let type = u(at, 4), let vaddr = u(at + 16, 8), let paddr = u(at + 24, 8), let memsz = u(at + 40, 8)
        else { break }
        if type == 1 { segments.append((vaddr, paddr, memsz)) }
      }
    }
    guard let shoff = u(0x28, 8), let shentsize = u(0x3A, 2), let shnum = u(0x3C, 2), shentsize >= 64,
      shoff < UInt64(image.count)
    else { return }
    for i in 0..<Int(shnum) {
      let at = Int(shoff) + i * Int(shentsize)
      guard let type = u(at + 4, 4), let offset = u(at + 0x18, 8), let size = u(at + 0x20, 8) else { break }
      guard type == 2, offset < UInt64(image.count), size < UInt64(image.count) else { continue }  // SHT_SYMTAB
      for s in stride(from: Int(offset), to: Int(offset + size) - 23, by: 24) {
        guard let info = u(s + 4, 1), let shndx = u(s + 6, 2), let value = u(s + 8, 8) else { break }
        if info & 0xF == 2 && shndx != 0 && value != 0 { functionSymbols.append(value) }
      }
    }
  }

  /// The physical address of linear `a`: through the segment linked there, else the boot identity
  /// map.
  package func physical(_ a: UInt64) -> UInt64 {
    for s in segments where a >= s.virtual && a - s.virtual < s.size { return s.physical &+ (a - s.virtual) }
    return a
  }
}

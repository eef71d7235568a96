import X86

/// Paging and code: faults fixed by the guest, PTE writes with and without flushes, CR3
/// reloads, alias remaps, and self-modifying code.
extension SystemProgramGenerator {
  // MARK: Paging

  mutating func faultPageAddress() -> UInt64 {
    SystemLayout.faultPages + UInt64(rng.below(SystemLayout.faultPageCount)) << 12 + UInt64(rng.below(0x1000 - 8))
  }

  /// A load, store or read-modify-write in a fault page: #PF (not present, read-only, supervisor)
  /// that the handler fixes, or a plain access once fixed.
  mutating func faultAccess() {
    let reg = pickFree()
    var base = pickFree()
    while base == reg { base = pickFree() }
    asm.movImm32(base, UInt32(faultPageAddress()))
    let m = RMOperand.memory(base: base, index: nil, scale: 1, displacement: 0)
    let size = rng.pick([8, 32, 64])
    let w: UInt8 = size == 8 ? 0 : 1
    switch rng.below(3) {
    case 0: put(size: size, opcode: [0x8A | w], reg: reg, rm: m)
    case 1: put(size: size, opcode: [0x88 | w], reg: reg, rm: m)
    default: put(size: size, opcode: [0x00 | w], reg: reg, rm: m)
    }
  }

  /// Guards a sequence that may fault beyond repair: R14 holds the address after it.
  mutating func guarded(_ body: (inout Self) -> Void) {
    let resume = asm.newLabel()
    asm.movAddress(14, resume)
    body(&self)
    asm.bind(resume)
    asm.raw([0x45, 0x31, 0xF6])  // xor r14d, r14d
  }

  /// After a page-table write: nothing (the TLB may keep the old entry), INVLPG, or a CR3 reload.
  mutating func maybeFlush(page: UInt64, scratch: Int) {
    switch rng.below(4) {
    case 0:
      asm.movImm32(scratch, UInt32(page))
      asm.invlpg(scratch)
    case 1:
      asm.readCR(scratch, 3)
      asm.writeCR(3, scratch)
    default: break
    }
  }

  /// Takes P, RW or US away from a fault page's PTE (in A, B or both), maybe flushes, maybe
  /// accesses it at once (a stale TLB entry lets the access through).
  mutating func reprotect() {
    let page = UInt64(rng.below(SystemLayout.faultPageCount))
    let linear = SystemLayout.faultPages + page << 12
    let bit = rng.pick([PTE.present, PTE.writable, PTE.user])
    guarded { g in
      for table in g.rng.pick([[SystemLayout.pt1A], [SystemLayout.pt1B], [SystemLayout.pt1A, SystemLayout.pt1B]]) {
        g.asm.movImm32(0, UInt32(table + SystemLayout.pteIndex(linear) * 8))
        g.put(
          size: 64, opcode: [0x81], reg: 4, rm: .memory(base: 0, index: nil, scale: 1, displacement: 0),
          immediate: littleEndian(~bit, count: 4))
      }
      g.maybeFlush(page: linear, scratch: 0)
    }
    if rng.chance(0.6) { faultAccess() }
  }

  /// Points an alias page at another frame in A or B, maybe flushes, and accesses it.
  mutating func aliasRemap() {
    let page = UInt64(rng.below(SystemLayout.aliasPageCount))
    let linear = SystemLayout.alias + page << 12
    let frame = SystemLayout.aliasFrames + UInt64(rng.below(SystemLayout.aliasFrameCount)) << 12
    guarded { g in
      let table = g.rng.chance(0.5) ? SystemLayout.pt1A : SystemLayout.pt1B
      g.asm.movImm32(1, UInt32(table + SystemLayout.pteIndex(linear) * 8))
      g.asm.movImm64(0, frame | PTE.present | PTE.writable | PTE.user | (g.rng.chance(0.8) ? PTE.noExecute : 0))
      g.put(size: 64, opcode: [0x89], reg: 0, rm: .memory(base: 1, index: nil, scale: 1, displacement: 0))
      g.maybeFlush(page: linear, scratch: 0)
    }
    let reg = pickFree()
    asm.movImm32(3, UInt32(linear + UInt64(rng.below(0x1000 - 8))))
    let m = RMOperand.memory(base: 3, index: nil, scale: 1, displacement: 0)
    if reg != 3 && rng.chance(0.5) {
      put(size: 64, opcode: [0x89], reg: reg, rm: m)
    } else {
      put(size: 64, opcode: [0x8B], reg: reg, rm: m)
    }
  }

  /// MOV CR3 with the same value or the other address space.
  mutating func cr3Reload() {
    guarded { g in
      g.asm.readCR(0, 3)
      if g.rng.chance(0.5) {
        g.asm.raw([0x48, 0x35] + littleEndian(SystemLayout.pml4A ^ SystemLayout.pml4B, count: 4))  // xor rax, imm32
      }
      g.asm.writeCR(3, 0)
    }
    if rng.chance(0.5) { aliasRead() }
  }

  mutating func aliasRead() {
    asm.movImm32(3, UInt32(SystemLayout.alias + UInt64(rng.below(0x2000 - 8))))
    put(size: 64, opcode: [0x8B], reg: pickFree(), rm: .memory(base: 3, index: nil, scale: 1, displacement: 0))
  }

  mutating func invlpgSomewhere() {
    let target: UInt64
    switch rng.below(4) {
    case 0: target = SystemLayout.code + UInt64(rng.below(SystemLayout.codeSize))
    case 1: target = faultPageAddress()
    case 2: target = SystemLayout.alias + UInt64(rng.below(0x2000))
    default: target = SystemLayout.data + UInt64(rng.below(SystemLayout.dataPages << 12))
    }
    guarded { g in
      g.asm.movImm32(0, UInt32(target))
      g.asm.invlpg(0)
    }
  }

  // MARK: Self-modifying code

  /// A store into code: the next instruction, an instruction a chained branch reaches later in
  /// the item, or a function on another page called before and after the store. In a loop the
  /// patched instruction has run before, so its translation is stale.
  mutating func selfModify() {
    let target = asm.newLabel()
    let reg = pickFree()
    var base = pickFree()
    while base == 0 || base == reg { base = pickFree() }
    // The patched instruction: op eax, imm32 (5 bytes; the opcode byte or the immediate is rewritten).
    let opcodes: [UInt8] = [0x05, 0x0D, 0x25, 0x2D, 0x35, 0x3D]
    func patch(_ g: inout Self) {
      if g.rng.chance(0.3) {
        g.asm.movAddress(base, target)
        g.put(
          size: 8, opcode: [0xC6], reg: 0, rm: .memory(base: base, index: nil, scale: 1, displacement: 0),
          immediate: [g.rng.pick(opcodes)])
      } else if g.rng.chance(0.5) {
        g.asm.movAddress(base, target, addend: 1)
        g.put(
          opcode: [0xC7], reg: 0, rm: .memory(base: base, index: nil, scale: 1, displacement: 0),
          immediate: littleEndian(g.rng.next(), count: 4))
      } else {
        g.asm.movAddress(base, target, addend: 1)
        g.put(opcode: [0x83], reg: 0, rm: .memory(base: base, index: nil, scale: 1, displacement: 0), immediate: [1])
      }
    }
    func patched(_ g: inout Self) {
      g.asm.bind(target)
      g.asm.raw([g.rng.pick(opcodes)] + littleEndian(g.rng.next(), count: 4))
    }
    switch rng.below(4) {
    case 0:
      // Into the next instruction.
      patch(&self)
      patched(&self)
    case 1:
      // The patched instruction first (in a loop it ran in the previous iteration), the store
      // after it in the same block.
      patched(&self)
      burst(rng.below(3))
      patch(&self)
    case 2:
      // Into a block a branch reaches later.
      let later = asm.newLabel()
      patch(&self)
      asm.jmp(later)
      burst(2)
      asm.bind(later)
      burst(rng.below(2))
      patched(&self)
    default:
      // Into a function on another page, called before and after.
      guard
        let f = function(
          room: 100,
          { g in
            g.burst(g.rng.below(2))
            patched(&g)
          })
      else { return burst(1) }
      asm.call(f)
      patch(&self)
      asm.call(f)
    }
  }
}

import X86

/// A generated system-level program and the machine state it starts from.
public struct SystemProgram: Sendable {
  public var seed: UInt64
  /// Code sections (main code, functions) at their guest addresses.
  var sections: [(base: UInt64, bytes: [UInt8])]
  var entry: UInt64
  var gprs: [UInt64]
  var interruptsEnabled: Bool
  var cr3: UInt64
  var globalPages: Bool
  var faultFlags: [UInt64]
  var handlerInvalidates: Bool
  /// The timer: its intervals (in retired instructions) come from this seed, uniform in
  /// 1...2 * `timerMean`.
  var timerSeed: UInt64
  var timerMean: Int
  /// The top-level items, by kind, with their start addresses (for listings), and which were left
  /// out (reduction).
  var items: [(kind: String, address: UInt64)]
  var skipped: Set<Int>
  /// Ranges of the main code that hold 32-bit code (listed in that mode).
  var code32: [Range<UInt64>]
}

extension SystemProgram {
  /// A program written by hand (tests): `body` emits the main code at `SystemLayout.code`, which
  /// starts at CPL 0 with every fault page present and writable.
  static func handWritten(interruptsEnabled: Bool = true, _ body: (inout SystemAssembler) -> Void) -> SystemProgram {
    var a = SystemAssembler(sections: [(SystemLayout.code, SystemLayout.codeSize)])
    body(&a)
    var gprs = [UInt64](repeating: 0, count: 16)
    gprs[4] = SystemLayout.userStackTop
    return SystemProgram(
      seed: 0, sections: a.assemble()!, entry: SystemLayout.code, gprs: gprs, interruptsEnabled: interruptsEnabled,
      cr3: SystemLayout.pml4A, globalPages: false,
      faultFlags: Array(repeating: PTE.present | PTE.writable | PTE.user, count: SystemLayout.faultPageCount),
      handlerInvalidates: false, timerSeed: 0, timerMean: 1_000_000, items: [], skipped: [], code32: [])
  }
}

/// Generates random system-level programs for `SystemDiffTester`: straight-line code made of
/// *items*, each a self-contained snippet — bursts of the translated instruction forms (ALU, MOV,
/// LEA, MOVZX/MOVSX, IMUL, shifts, CMOVcc/SETcc, PUSH/POP) over several data pages, forward
/// branches, counted loops (backward Jcc), calls into functions on other pages, and the system
/// events: page faults the handler fixes, PTE rewrites with and without INVLPG or a CR3 reload,
/// alias remaps, CR3 switches, self-modifying stores, CPUID, RDTSC(P), MSRs, SWAPGS, SYSCALL /
/// SYSRET / IRETQ between CPL 0 and 3, a trip through 32-bit compatibility mode, INT n, port I/O,
/// PUSHF/POPF with IF, TF and AC, CLI/STI/HLT, debug registers with armed breakpoints,
/// non-canonical addresses, divide errors, CR0.WP / CR4.PGE / CR8 writes.
///
/// Every instruction that may fault in a way the handler cannot fix runs with R14 holding the
/// address to resume at (the handler clears it), so a program stays on its path whatever the
/// privilege level really is; R15 is the loop counter; RSP stays in the user stack. A skipped
/// item (`skip`, for reduction) consumes the same random numbers but emits nothing.
struct SystemProgramGenerator {
  private var rng: RandomSource
  private var asm = SystemAssembler(sections: [
    (SystemLayout.code, SystemLayout.codeSize - 64), (SystemLayout.functions, SystemLayout.functionsSize),
  ])
  /// The generator's belief (exact unless a fault or a skipped item changed it).
  private var cpl = 0
  private var interruptsOn = true
  private var inLoop = false
  private var code32: [Range<UInt64>] = []
  private let skip: Set<Int>
  private let itemCount: Int
  let seed: UInt64

  /// Registers the program may write: all but RSP, R14 (resume address) and R15 (loop counter).
  static let free = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]

  init(seed: UInt64, items: Int, skip: Set<Int> = []) {
    self.seed = seed
    rng = RandomSource(seed: seed)
    itemCount = items
    self.skip = skip
  }

  mutating func generate() -> SystemProgram {
    let gprs = (0..<16).map { r -> UInt64 in
      switch r {
      case 4: return SystemLayout.userStackTop
      case 14, 15: return 0
      default: return rng.interesting(bits: 64)
      }
    }
    interruptsOn = rng.chance(0.8)
    let cr3 = rng.chance(0.5) ? SystemLayout.pml4A : SystemLayout.pml4B
    let global = rng.chance(0.5)
    let faultFlags = (0..<SystemLayout.faultPageCount).map { _ -> UInt64 in
      var f = PTE.present | PTE.writable | PTE.user
      switch rng.below(5) {
      case 0: f &= ~PTE.present
      case 1: f &= ~PTE.writable
      case 2: f &= ~PTE.user
      case 3: f = rng.chance(0.5) ? PTE.user : PTE.writable
      default: break
      }
      return f
    }
    let handlerInvalidates = rng.chance(0.5)
    let timerSeed = rng.next()
    let timerMean = rng.pick([15, 100, 400, 2000, 10000])
    var items: [(String, UInt64)] = []
    for i in 0..<itemCount {
      guard asm.room > 600 else { break }
      let start = asm.here
      let saved = asm
      let compatRanges = code32.count
      let kind = item()
      if skip.contains(i) {
        asm.discard(since: saved)
        code32.removeLast(code32.count - compatRanges)
      }
      items.append((kind, start))
    }
    // The end: the exit port (allowed at CPL 3 too).
    asm.current = 0
    asm.movImm32(2, UInt32(SystemLayout.exitPort))
    asm.raw([0xEF, 0xF4, 0xEB, 0xFD])  // out dx, eax; hlt; jmp $-1
    let sections = asm.assemble() ?? [(SystemLayout.code, [0xBA, 0xE1, 0, 0, 0, 0xEF, 0xF4])]
    return SystemProgram(
      seed: seed, sections: sections, entry: SystemLayout.code, gprs: gprs, interruptsEnabled: interruptsOn,
      cr3: cr3, globalPages: global, faultFlags: faultFlags, handlerInvalidates: handlerInvalidates,
      timerSeed: timerSeed, timerMean: timerMean, items: items, skipped: skip, code32: code32)
  }

  // MARK: Items

  /// One top-level item; returns its kind.
  private mutating func item() -> String {
    switch rng.below(100) {
    case 0..<22: burst(rng.below(8) + 2); return "burst"
    case 22..<28: forwardBranch(); return "branch"
    case 28..<38: loop(); return "loop"
    case 38..<42: callFunction(); return "call"
    case 42..<48: faultAccess(); return "fault-page"
    case 48..<52: reprotect(); return "pte-protect"
    case 52..<55: aliasRemap(); return "pte-alias"
    case 55..<57: cr3Reload(); return "cr3"
    case 57..<59: invlpgSomewhere(); return "invlpg"
    case 59..<64: selfModify(); return "smc"
    case 64..<66: cpuidOrTSC(); return "cpuid-tsc"
    case 66..<69: msr(); return "msr"
    case 69..<74: privilegeChange(); return "privilege"
    case 74..<76: compatibilityTrip(); return "compat32"
    case 76..<79: softwareInterrupt(); return "int"
    case 79..<82: portIO(); return "io"
    case 82..<86: flags(); return "flags"
    case 86..<88: interruptFlag(); return "cli-sti-hlt"
    case 88..<91: debugRegisters(); return "debug"
    case 91..<94: nonCanonical(); return "noncanonical"
    case 94..<96: divideError(); return "divide"
    default: controlRegisters(); return "cr-write"
    }
  }

  // MARK: Translated forms

  private mutating func pickFree() -> Int { rng.pick(Self.free) }

  /// Emits one instruction through `Encoder` (its arguments are evaluated first).
  private mutating func put(
    size: Int = 32, prefixes: [UInt8] = [], opcode: [UInt8], reg: Int? = nil, rm: RMOperand? = nil,
    opcodeRegister: Int? = nil, immediate: [UInt8] = []
  ) {
    var e = Encoder()
    e.emit(
      size: size, prefixes: prefixes, opcode: opcode, reg: reg, rm: rm, opcodeRegister: opcodeRegister,
      immediate: immediate)
    asm.raw(e.bytes)
  }

  /// A memory operand of `size` bytes in ordinary memory (data pages mostly, the alias pages, the
  /// stack for reads), its base register loaded just before; sometimes across a page boundary.
  private mutating func memoryOperand(size: Int, write: Bool, avoid: Int? = nil) -> RMOperand {
    var base = pickFree()
    while base == avoid { base = pickFree() }
    if !write && rng.chance(0.08) {
      return .memory(base: 4, index: nil, scale: 1, displacement: Int32(rng.below(8) * 8))
    }
    let page: UInt64
    switch rng.below(10) {
    case 0: page = SystemLayout.alias + UInt64(rng.below(SystemLayout.aliasPageCount)) << 12
    case 1: page = SystemLayout.faultPages + UInt64(rng.below(SystemLayout.faultPageCount)) << 12
    default: page = SystemLayout.data + UInt64(rng.below(SystemLayout.dataPages - 1)) << 12
    }
    let offset: UInt64 = rng.chance(0.1) ? 0x1000 - UInt64(rng.below(size) + 1) : UInt64(rng.below(0x1000 - 64))
    let displacement = Int32(rng.below(32)) - 8
    asm.movImm32(base, UInt32(page + offset) &- UInt32(bitPattern: displacement))
    if rng.chance(0.2) {
      var index = pickFree()
      while index == base || index == avoid { index = pickFree() }
      let scale = rng.pick([1, 2, 4, 8])
      let count = rng.below(4)
      asm.movImm32(index, UInt32(count))
      asm.movImm32(base, UInt32(page + offset) &- UInt32(bitPattern: displacement) &- UInt32(count * scale))
      return .memory(base: base, index: index, scale: scale, displacement: displacement)
    }
    return .memory(base: base, index: nil, scale: 1, displacement: displacement)
  }

  private mutating func burst(_ count: Int) {
    for _ in 0..<count { translatedForm() }
  }

  /// One instruction of the forms the translator covers (and now and then one it leaves to the
  /// interpreter: XCHG of registers, MUL, BSWAP, BT).
  private mutating func translatedForm() {
    let size = rng.pick([8, 16, 32, 32, 64, 64])
    let op = rng.below(8)
    let dst = pickFree()
    let src = pickFree()
    let immediate = littleEndian(rng.interesting(bits: 32), count: size == 8 ? 1 : size == 16 ? 2 : 4)
    let w: UInt8 = size == 8 ? 0 : 1
    switch rng.below(22) {
    case 0, 1:
      put(size: size, opcode: [UInt8(op) << 3 | w], reg: src, rm: .register(dst))
    case 2, 3:
      if size != 8 && rng.chance(0.5) {
        put(size: size, opcode: [0x83], reg: op, rm: .register(dst), immediate: [UInt8(rng.below(256))])
      } else {
        put(size: size, opcode: [size == 8 ? 0x80 : 0x81], reg: op, rm: .register(dst), immediate: immediate)
      }
    case 4:
      let m = memoryOperand(size: size / 8, write: false, avoid: dst)
      put(size: size, opcode: [UInt8(op) << 3 | 2 | w], reg: dst, rm: m)
    case 5:
      let m = memoryOperand(size: size / 8, write: op != 7, avoid: src)
      put(size: size, opcode: [UInt8(op) << 3 | w], reg: src, rm: m)
    case 6:
      let m = memoryOperand(size: size / 8, write: op != 7)
      put(size: size, opcode: [size == 8 ? 0x80 : 0x81], reg: op, rm: m, immediate: immediate)
    case 7:
      put(size: size, opcode: [0x88 | w], reg: src, rm: .register(dst))
    case 8:
      if size >= 32 && rng.chance(0.5) {
        asm.movImm32(dst, UInt32(truncatingIfNeeded: rng.interesting(bits: 32)))
      } else {
        put(size: size, opcode: [0xC6 | w], reg: 0, rm: .register(dst), immediate: immediate)
      }
    case 9:
      let m = memoryOperand(size: size / 8, write: false, avoid: dst)
      put(size: size, opcode: [0x8A | w], reg: dst, rm: m)
    case 10:
      let m = memoryOperand(size: size / 8, write: true, avoid: src)
      put(size: size, opcode: [0x88 | w], reg: src, rm: m)
    case 11:
      let index = rng.chance(0.5) ? pickFree() : nil
      let base = rng.chance(0.1) ? 4 : pickFree()
      let s = max(size, 16)
      put(
        size: s, opcode: [0x8D], reg: dst,
        rm: .memory(
          base: base, index: index, scale: 1 << rng.below(4), displacement: Int32(truncatingIfNeeded: rng.next())))
    case 12:
      let s = rng.pick([16, 32, 64])
      let from = rng.pick([[0x0F, 0xB6], [0x0F, 0xB7], [0x0F, 0xBE], [0x0F, 0xBF], [0x63]] as [[UInt8]])
      let rm: RMOperand =
        rng.chance(0.5)
        ? .register(src) : memoryOperand(size: from == [0x63] ? 4 : from[1] & 1 == 0 ? 1 : 2, write: false, avoid: dst)
      put(size: from == [0x63] ? 64 : s, opcode: from, reg: dst, rm: rm)
    case 13:
      let s = rng.pick([16, 32, 64])
      switch rng.below(3) {
      case 0: put(size: s, opcode: [0x0F, 0xAF], reg: dst, rm: .register(src))
      case 1: put(size: s, opcode: [0x6B], reg: dst, rm: .register(src), immediate: [UInt8(rng.below(256))])
      default:
        let m = memoryOperand(size: s / 8, write: false, avoid: dst)
        put(size: s, opcode: [0x0F, 0xAF], reg: dst, rm: m)
      }
    case 14:
      let kind = rng.pick([0, 1, 2, 3, 4, 5, 7])
      switch rng.below(3) {
      case 0:
        put(size: size, opcode: [0xC0 | w], reg: kind, rm: .register(dst), immediate: [UInt8(rng.below(70))])
      case 1: put(size: size, opcode: [0xD0 | w], reg: kind, rm: .register(dst))
      default:
        put(size: size, opcode: [0xD2 | w], reg: kind, rm: .register(dst))
      }
    case 15:
      let rm: RMOperand = rng.chance(0.7) ? .register(dst) : memoryOperand(size: size / 8, write: true)
      put(size: size, opcode: [0xFE | w], reg: rng.below(2), rm: rm)
      if rng.chance(0.3) { put(size: size, opcode: [0xF6 | w], reg: 2 + rng.below(2), rm: .register(dst)) }
    case 16:
      let cc = UInt8(rng.below(16))
      if rng.chance(0.5) {
        let s = rng.pick([16, 32, 64])
        let rm: RMOperand = rng.chance(0.7) ? .register(src) : memoryOperand(size: s / 8, write: false, avoid: dst)
        put(size: s, opcode: [0x0F, 0x40 | cc], reg: dst, rm: rm)
      } else {
        put(size: 8, opcode: [0x0F, 0x90 | cc], reg: 0, rm: .register(dst))
      }
    case 17:
      put(size: size, opcode: [0x84 | w], reg: src, rm: .register(dst))
    case 18:
      // PUSH reg/imm/mem ... POP reg.
      let n = rng.below(3) + 1
      for _ in 0..<n {
        switch rng.below(3) {
        case 0: asm.push(pickFree())
        case 1: asm.raw([0x68] + littleEndian(rng.next(), count: 4))
        default:
          let m = memoryOperand(size: 8, write: false)
          put(opcode: [0xFF], reg: 6, rm: m)
        }
      }
      for _ in 0..<n { asm.pop(pickFree()) }
    case 19, 20:
      // Atomic read-modify-writes of memory (LOCK ADD..XOR, INC/DEC, XADD, XCHG, CMPXCHG).
      let m = memoryOperand(size: size / 8, write: true, avoid: src)
      switch rng.below(6) {
      case 0: put(size: size, prefixes: [0xF0], opcode: [0x0F, 0xC0 | w], reg: src, rm: m)
      case 1:
        // CMPXCHG against RAX: often loaded from the same place first, so that it also succeeds.
        if case .memory(let base, let index, _, _) = m, base != 0, index != 0, rng.chance(0.5) {
          put(size: size, opcode: [0x8A | w], reg: 0, rm: m)
        }
        put(size: size, prefixes: rng.chance(0.7) ? [0xF0] : [], opcode: [0x0F, 0xB0 | w], reg: src, rm: m)
      case 2: put(size: size, opcode: [0x86 | w], reg: src, rm: m)
      case 3:
        put(size: size, prefixes: [0xF0], opcode: [UInt8(op == 7 ? 0 : op) << 3 | w], reg: src, rm: m)
      case 4:
        put(
          size: size, prefixes: [0xF0], opcode: [size == 8 ? 0x80 : 0x81], reg: op == 7 ? 5 : op, rm: m,
          immediate: immediate)
      default: put(size: size, prefixes: [0xF0], opcode: [0xFE | w], reg: rng.below(2), rm: m)
      }
    default:
      switch rng.below(4) {
      case 0: put(size: size, opcode: [0x86 | w], reg: src, rm: .register(dst))
      case 1: put(size: max(size, 32), opcode: [0xF7], reg: 4, rm: .register(dst))
      case 2: put(size: max(size, 32), opcode: [0x0F, 0xC8], opcodeRegister: dst)
      default: put(size: max(size, 16), opcode: [0x0F, 0xA3], reg: src, rm: .register(dst))
      }
    }
  }

  private mutating func forwardBranch() {
    let over = asm.newLabel()
    put(size: 64, opcode: [0x39], reg: pickFree(), rm: .register(pickFree()))
    if rng.chance(0.5) {
      // A short Jcc over register-only instructions (at most 4 bytes each).
      asm.jccShort(rng.below(16), over)
      for _ in 0..<(rng.below(4) + 1) {
        let size = rng.pick([32, 64])
        if rng.chance(0.5) {
          put(size: size, opcode: [UInt8(rng.below(8)) << 3 | 1], reg: pickFree(), rm: .register(pickFree()))
        } else {
          put(
            size: size, opcode: [0x83], reg: rng.below(8), rm: .register(pickFree()), immediate: [UInt8(rng.below(256))]
          )
        }
      }
    } else {
      asm.jcc(rng.below(16), over)
      burst(rng.below(4) + 1)
    }
    asm.bind(over)
  }

  /// A counted loop (R15): a body of translated forms and loop-safe system items, DEC R15D / JNZ.
  private mutating func loop() {
    guard !inLoop else { return burst(3) }
    inLoop = true
    defer { inLoop = false }
    let top = asm.newLabel()
    asm.movImm32(15, UInt32(rng.below(40) + 2))
    asm.bind(top)
    for _ in 0..<(rng.below(4) + 1) {
      switch rng.below(12) {
      case 0: faultAccess()
      case 1: reprotect()
      case 2, 3: selfModify()
      case 4: callFunction()
      case 5: forwardBranch()
      case 6: aliasRemap()
      case 7: if rng.chance(0.5) { softwareInterrupt() } else { portIO() }
      case 8: if rng.chance(0.5) { flags() } else { interruptFlag() }
      default: burst(rng.below(6) + 1)
      }
    }
    asm.raw([0x41, 0xFF, 0xCF])  // dec r15d
    let distance = Int(asm.here) + 2 - Int(asm.labels[top] ?? 0)
    if distance <= 128 && rng.chance(0.7) { asm.jccShort(5, top) } else { asm.jcc(5, top) }
  }

  /// A function on the functions pages, called once or twice (and so reached through a
  /// cross-page link and returned from through RET's table).
  private mutating func callFunction() {
    let f = asm.newLabel()
    asm.current = 1
    guard asm.room > 300 else {
      asm.current = 0
      return burst(2)
    }
    asm.bind(f)
    burst(rng.below(5) + 1)
    asm.ret()
    asm.current = 0
    for _ in 0..<(rng.below(2) + 1) { asm.call(f) }
  }

  // MARK: Paging

  private mutating func faultPageAddress() -> UInt64 {
    SystemLayout.faultPages + UInt64(rng.below(SystemLayout.faultPageCount)) << 12 + UInt64(rng.below(0x1000 - 8))
  }

  /// A load, store or read-modify-write in a fault page: #PF (not present, read-only, supervisor)
  /// that the handler fixes, or a plain access once fixed.
  private mutating func faultAccess() {
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
  private mutating func guarded(_ body: (inout Self) -> Void) {
    let resume = asm.newLabel()
    asm.movAddress(14, resume)
    body(&self)
    asm.bind(resume)
    asm.raw([0x45, 0x31, 0xF6])  // xor r14d, r14d
  }

  /// After a page-table write: nothing (the TLB may keep the old entry), INVLPG, or a CR3 reload.
  private mutating func maybeFlush(page: UInt64, scratch: Int) {
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
  private mutating func reprotect() {
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
  private mutating func aliasRemap() {
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
  private mutating func cr3Reload() {
    guarded { g in
      g.asm.readCR(0, 3)
      if g.rng.chance(0.5) {
        g.asm.raw([0x48, 0x35] + littleEndian(SystemLayout.pml4A ^ SystemLayout.pml4B, count: 4))  // xor rax, imm32
      }
      g.asm.writeCR(3, 0)
    }
    if rng.chance(0.5) { aliasRead() }
  }

  private mutating func aliasRead() {
    asm.movImm32(3, UInt32(SystemLayout.alias + UInt64(rng.below(0x2000 - 8))))
    put(size: 64, opcode: [0x8B], reg: pickFree(), rm: .memory(base: 3, index: nil, scale: 1, displacement: 0))
  }

  private mutating func invlpgSomewhere() {
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
  private mutating func selfModify() {
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
      let f = asm.newLabel()
      asm.current = 1
      guard asm.room > 100 else {
        asm.current = 0
        return burst(1)
      }
      asm.bind(f)
      burst(rng.below(2))
      patched(&self)
      asm.ret()
      asm.current = 0
      asm.call(f)
      patch(&self)
      asm.call(f)
    }
  }

  // MARK: Privileged and system instructions

  private mutating func cpuidOrTSC() {
    switch rng.below(3) {
    case 0:
      asm.movImm32(0, rng.pick([0, 1, 4, 7, 0xB, 0xD, 0x8000_0000, 0x8000_0001, 0x8000_0008, 0x4000_0000, 0x1234]))
      asm.movImm32(1, UInt32(rng.below(3)))
      asm.raw([0x0F, 0xA2])
    case 1: asm.raw([0x0F, 0x31])
    default: asm.raw([0x0F, 0x01, 0xF9])
    }
  }

  /// RDMSR/WRMSR of harmless MSRs (TSC_AUX, KERNEL_GS_BASE, FS/GS base with an access through
  /// the segment afterwards, PAT, EFER unchanged, the TSC), SWAPGS; #GP at CPL 3.
  private mutating func msr() {
    let base = SystemLayout.data + UInt64(rng.below(SystemLayout.dataPages - 1)) << 12
    switch rng.below(6) {
    case 0, 1:
      let index = rng.pick([MSRIndex.fsBase, MSRIndex.gsBase, MSRIndex.kernelGSBase, MSRIndex.tscAux])
      let value: UInt64 = rng.chance(0.1) ? 0x8000_0000_0000_0000 : base
      guarded { g in
        g.asm.movImm32(1, index)
        g.asm.movImm32(0, UInt32(truncatingIfNeeded: value))
        g.asm.movImm32(2, UInt32(truncatingIfNeeded: value >> 32))
        g.asm.raw([0x0F, 0x30])
      }
      let reg = pickFree()
      asm.movImm32(3, UInt32(rng.below(0x800)))
      put(
        size: 64, prefixes: [rng.chance(0.5) ? 0x64 : 0x65], opcode: [rng.chance(0.5) ? 0x8B : 0x89], reg: reg,
        rm: .memory(base: 3, index: nil, scale: 1, displacement: 0))
    case 2:
      guarded { g in
        g.asm.movImm32(
          1,
          g.rng.pick([
            MSRIndex.efer, MSRIndex.star, MSRIndex.lstar, MSRIndex.apicBase, MSRIndex.pat, MSRIndex.tsc, 0x1234,
          ]))
        g.asm.raw([0x0F, 0x32])
      }
    case 3:
      guarded { g in
        g.asm.movImm32(1, MSRIndex.pat)
        g.asm.movImm32(0, 0x0007_0406)
        g.asm.movImm32(2, 0x0007_0406)
        g.asm.raw([0x0F, 0x30])
      }
    case 4:
      guarded { g in
        g.asm.movImm32(1, MSRIndex.tsc)
        g.asm.movImm32(0, UInt32(g.rng.below(1 << 20)))
        g.asm.movImm32(2, 0)
        g.asm.raw([0x0F, 0x30])
        g.asm.raw([0x0F, 0x31])
      }
    default:
      guarded { g in g.asm.raw([0x0F, 0x01, 0xF8]) }  // swapgs
    }
  }

  /// SYSCALL (to CPL 0, the handler jumps back to RCX), SYSRET or IRETQ to CPL 3 (IF set),
  /// IRETQ to the same level.
  private mutating func privilegeChange() {
    switch rng.below(4) {
    case 0:
      asm.raw([0x0F, 0x05])
      cpl = 0
    case 1:
      guarded { g in
        let user = g.asm.newLabel()
        g.asm.movAddress(1, user)
        var flags: UInt64 = 0x202 | UInt64(g.rng.below(0x100)) & 0xD5
        if g.rng.chance(0.1) { flags |= 0x4_0000 }  // AC
        if g.rng.chance(0.05) { flags |= 0x100 }  // TF
        g.asm.movImm32(11, UInt32(flags))
        g.asm.raw([0x48, 0x0F, 0x07])  // sysretq
        g.asm.bind(user)
      }
      cpl = 3
    default:
      let toUser = rng.chance(0.7)
      guarded { g in
        let target = g.asm.newLabel()
        g.asm.raw([0x48, 0x89, 0xE0])  // mov rax, rsp
        if toUser || g.cpl == 3 {
          g.asm.raw([0x6A, UInt8(SystemLayout.userSS)])
        } else {
          g.asm.raw([0x6A, UInt8(SystemLayout.kernelSS)])
        }
        g.asm.push(0)
        g.asm.raw([0x9C, 0x48, 0x81, 0x0C, 0x24] + littleEndian(0x200, count: 4))  // pushfq; or qword [rsp], IF
        g.asm.raw([0x6A, UInt8(toUser || g.cpl == 3 ? SystemLayout.userCS : SystemLayout.kernelCS)])
        g.asm.pushAddress(target)
        g.asm.raw([0x48, 0xCF])
        g.asm.bind(target)
      }
      if toUser { cpl = 3 }
    }
  }

  /// IRETQ to 32-bit code at CPL 3 (the user code32 selector), a few instructions there (the
  /// interpreter runs them inside dbt), and back to 64-bit code by a far return.
  private mutating func compatibilityTrip() {
    let code = asm.newLabel()
    let back = asm.newLabel()
    asm.raw([0x48, 0x89, 0xE0])  // mov rax, rsp
    asm.raw([0x6A, UInt8(SystemLayout.userSS)])
    asm.push(0)
    asm.raw([0x9C, 0x48, 0x81, 0x0C, 0x24] + littleEndian(0x200, count: 4))
    asm.raw([0x6A, UInt8(SystemLayout.userCS32)])
    asm.pushAddress(code)
    asm.raw([0x48, 0xCF])
    asm.bind(code)
    let start = asm.here
    let regs = [0, 1, 2, 3, 5, 6, 7]
    for _ in 0..<(rng.below(6) + 1) {
      let d = rng.pick(regs)
      switch rng.below(4) {
      case 0: put(opcode: [UInt8(rng.below(8)) << 3 | 1], reg: rng.pick(regs), rm: .register(d))
      case 1: asm.movImm32(d, UInt32(truncatingIfNeeded: rng.next()))
      case 2:
        asm.movImm32(3, UInt32(SystemLayout.data + UInt64(rng.below(0x3000))))
        put(
          opcode: [rng.chance(0.5) ? 0x89 : 0x8B], reg: d == 3 ? 0 : d,
          rm: .memory(base: 3, index: nil, scale: 1, displacement: 0))
      default:
        asm.raw([0x50 + UInt8(d), 0x58 + UInt8(rng.pick(regs))])  // push r32; pop r32
      }
    }
    asm.raw([0x6A, UInt8(SystemLayout.userCS)])
    asm.pushAddress(back)
    asm.raw([0xCB])  // retf (32-bit)
    code32.append(start..<asm.here)
    asm.bind(back)
    cpl = 3
  }

  /// INT 0x80 (allowed at CPL 3), INT3, INT 0x81 (gate DPL 0: #GP at CPL 3), INT 0x90 (no gate: #NP).
  private mutating func softwareInterrupt() {
    switch rng.below(4) {
    case 0, 1: asm.raw([0xCD, 0x80])
    case 2: asm.raw([0xCC])
    default: guarded { g in g.asm.raw([0xCD, g.rng.chance(0.5) ? 0x81 : 0x90]) }
    }
  }

  /// IN/OUT on the test port at every width (DX or imm8), and the denied port (#GP at CPL 3).
  private mutating func portIO() {
    let port = rng.chance(0.85) ? SystemLayout.testPort : SystemLayout.deniedPort
    guarded { g in
      let width = g.rng.below(3)
      let opSize: [UInt8] = width == 1 ? [0x66] : []
      let wide: UInt8 = width == 0 ? 0 : 1
      if g.rng.chance(0.5) {
        g.asm.movImm32(2, UInt32(port))
        g.asm.raw(opSize + [g.rng.chance(0.5) ? 0xEE | wide : 0xEC | wide])
      } else {
        g.asm.raw(opSize + [g.rng.chance(0.5) ? 0xE6 | wide : 0xE4 | wide, UInt8(port)])
      }
    }
  }

  /// PUSHF/POPF changing arithmetic flags, DF, IF (CPL 0 only; ignored at CPL 3), AC, and TF for
  /// a few instructions (single-step traps the translator leaves to the interpreter).
  private mutating func flags() {
    asm.raw([0x9C])
    let reg = pickFree()
    asm.pop(reg)
    var set: UInt64 = UInt64(rng.below(0x100)) & 0xD5
    var clear: UInt64 = 0xD5 | 0x400
    if rng.chance(0.3) { clear |= 0x200 } else { set |= 0x200 }
    if rng.chance(0.1) { set |= 0x4_0000 } else { clear |= 0x4_0000 }
    if rng.chance(0.05) { set |= 0x400 }
    let trace = rng.chance(0.2)
    if trace { set |= 0x100 }
    put(size: 64, opcode: [0x81], reg: 4, rm: .register(reg), immediate: littleEndian(~clear, count: 4))
    put(size: 64, opcode: [0x81], reg: 1, rm: .register(reg), immediate: littleEndian(set, count: 4))
    asm.push(reg)
    asm.raw([0x9D])
    if cpl == 0 { interruptsOn = set & 0x200 != 0 }
    if trace || set & 0x4_0000 != 0 {
      burst(rng.below(5) + 1)
      asm.raw([0x9C])
      put(
        size: 64, opcode: [0x81], reg: 4, rm: .memory(base: 4, index: nil, scale: 1, displacement: 0),
        immediate: littleEndian(~UInt64(0x4_0500), count: 4))
      asm.raw([0x9D])
    }
  }

  /// CLI, STI, STI; HLT (the timer wakes it), HLT with interrupts on: CPL 0 only (#GP at CPL 3).
  private mutating func interruptFlag() {
    switch rng.below(4) {
    case 0:
      guarded { g in g.asm.raw([0xFA]) }
      if cpl == 0 { interruptsOn = false }
    case 1:
      guarded { g in g.asm.raw([0xFB]) }
      if cpl == 0 { interruptsOn = true }
    default:
      guard interruptsOn || cpl == 0 else { return burst(1) }
      guarded { g in g.asm.raw(g.rng.chance(0.5) ? [0xFB, 0xF4] : [0xF4]) }
      if cpl == 0 { interruptsOn = true }
    }
  }

  /// Arms DR0-DR3: an instruction breakpoint on code later in the item (or in a loop, on the next
  /// iteration), or a data breakpoint on memory the item then touches; reads DR6/DR7; disarms.
  private mutating func debugRegisters() {
    let n = rng.below(4)
    switch rng.below(4) {
    case 0:
      let target = asm.newLabel()
      guarded { g in
        g.asm.movAddress(0, target)
        g.asm.writeDR(n, 0)
        g.asm.movImm32(0, 1 << UInt32(2 * n) | 0x400)
        g.asm.writeDR(7, 0)
      }
      burst(rng.below(3))
      asm.bind(target)
      burst(rng.below(3) + 1)
    case 1:
      let address = SystemLayout.data + UInt64(rng.below(SystemLayout.dataPages << 12)) & ~7
      let len = rng.pick([0, 1, 3, 2])
      let kind = rng.pick([1, 3])
      guarded { g in
        g.asm.movImm32(0, UInt32(address))
        g.asm.writeDR(n, 0)
        g.asm.movImm32(0, 1 << UInt32(2 * n) | UInt32(kind | len << 2) << UInt32(16 + 4 * n))
        g.asm.writeDR(7, 0)
      }
      let reg = pickFree()
      asm.movImm32(3, UInt32(address + UInt64(rng.below(4))))
      put(
        size: 32, opcode: [rng.chance(0.5) ? 0x89 : 0x8B], reg: reg == 3 ? 0 : reg,
        rm: .memory(base: 3, index: nil, scale: 1, displacement: 0))
      burst(rng.below(3))
    case 2:
      guarded { g in
        g.asm.readDR(g.pickFree(), 7)
        g.asm.readDR(g.pickFree(), 6)
      }
    default:
      guarded { g in
        g.asm.raw([0x31, 0xC0])
        g.asm.writeDR(7, 0)
      }
    }
  }

  /// Non-canonical addresses: a load (#GP), a jump (#GP at the jump), a push at CPL 3 (#SS).
  private mutating func nonCanonical() {
    let address = rng.pick([0x8000_0000_0000_0000, 0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_F000] as [UInt64])
    switch rng.below(3) {
    case 0:
      guarded { g in
        let reg = g.pickFree()
        g.asm.movImm64(reg, address)
        g.put(size: 64, opcode: [0x8B], reg: 0, rm: .memory(base: reg, index: nil, scale: 1, displacement: 0))
      }
    case 1:
      guarded { g in
        g.asm.movImm64(0, address)
        g.asm.raw([0xFF, 0xE0])  // jmp rax
      }
    default:
      guard cpl == 3 else { return burst(1) }
      let resume = asm.newLabel()
      asm.raw([0x48, 0x89, 0xE5])  // mov rbp, rsp
      asm.movAddress(14, resume)
      asm.movImm64(4, address)
      asm.push(0)
      asm.bind(resume)
      asm.raw([0x48, 0x89, 0xEC])  // mov rsp, rbp
      asm.raw([0x45, 0x31, 0xF6])
    }
  }

  /// DIV by zero and IDIV overflow (#DE).
  private mutating func divideError() {
    guarded { g in
      if g.rng.chance(0.5) {
        g.asm.raw([0x31, 0xC9, 0xF7, 0xF1])  // xor ecx, ecx; div ecx
      } else {
        g.asm.movImm32(0, 0x8000_0000)
        g.asm.raw([0x99])  // cdq
        g.asm.movImm32(1, 0xFFFF_FFFF)
        g.asm.raw([0xF7, 0xF9])  // idiv ecx
      }
    }
  }

  /// CR0.WP toggled (supervisor writes to read-only pages), CR4.PGE toggled (a full flush), CR8.
  private mutating func controlRegisters() {
    guarded { g in
      switch g.rng.below(3) {
      case 0:
        g.asm.readCR(0, 0)
        g.asm.raw([0x48, 0x35] + littleEndian(0x1_0000, count: 4))
        g.asm.writeCR(0, 0)
      case 1:
        g.asm.readCR(0, 4)
        g.asm.raw([0x48, 0x35] + littleEndian(0x80, count: 4))
        g.asm.writeCR(4, 0)
      default:
        g.asm.movImm32(0, UInt32(g.rng.below(16)))
        g.asm.raw([0x44, 0x0F, 0x22, 0xC0])  // mov cr8, rax
      }
    }
    if rng.chance(0.5) { faultAccess() }
  }
}

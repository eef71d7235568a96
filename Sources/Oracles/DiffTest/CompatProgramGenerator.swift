import CNative
import X86

/// A segment as the generator predicts it after a load: what its descriptor allows, so memory
/// operands can be aimed inside it, at its limits or past them.
struct SegmentView: Sendable, Equatable {
  var selector: UInt16
  /// False for a null selector: any access through it is #GP(0).
  var usable: Bool
  var base: UInt32
  /// The limit in bytes (scaled by G).
  var limit: UInt32
  var expandDown: Bool
  /// D/B: a 32-bit stack, or the 4 GiB upper bound of an expand-down data segment.
  var big: Bool
  var readable: Bool
  var writable: Bool
  var isCode: Bool

  static func null(_ selector: UInt16) -> SegmentView {
    SegmentView(
      selector: selector, usable: false, base: 0, limit: 0, expandDown: false, big: false, readable: false,
      writable: false, isCode: false)
  }

  init(
    selector: UInt16, usable: Bool, base: UInt32, limit: UInt32, expandDown: Bool, big: Bool, readable: Bool,
    writable: Bool, isCode: Bool
  ) {
    self.selector = selector
    self.usable = usable
    self.base = base
    self.limit = limit
    self.expandDown = expandDown
    self.big = big
    self.readable = readable
    self.writable = writable
    self.isCode = isCode
  }

  init(selector: UInt16, descriptor raw: UInt64) {
    let d = SegmentDescriptor(raw: raw)
    self.init(
      selector: selector, usable: true, base: UInt32(truncatingIfNeeded: d.base), limit: d.limit,
      expandDown: d.expandDown, big: d.defaultBig, readable: d.readable, writable: d.writable, isCode: d.isCode)
  }

  /// The lowest and highest valid offsets.
  var lowest: UInt64 { expandDown ? UInt64(limit) + 1 : 0 }
  var highest: UInt64 { expandDown ? (big ? 0xFFFF_FFFF : 0xFFFF) : UInt64(limit) }

  /// Whether `size` bytes at `offset` pass the limit check.
  func contains(_ offset: UInt64, size: Int) -> Bool {
    usable && offset >= lowest && offset &+ UInt64(size - 1) <= highest && offset &+ UInt64(size - 1) >= offset
  }

  /// The linear address of `offset`.
  func linear(_ offset: UInt64) -> UInt64 { (UInt64(base) &+ offset) & 0xFFFF_FFFF }

  /// Whether some valid offset below 2^`addressBits` lands in the sandbox.
  func reachesSandbox(addressBits: Int) -> Bool {
    guard usable else { return false }
    let first = (UInt64(CN_SANDBOX_ADDR) &- UInt64(base)) & 0xFFFF_FFFF
    let last = first + UInt64(CN_SANDBOX_SIZE) - 1
    let top: UInt64 = addressBits == 16 ? 0xFFFF : 0xFFFF_FFFF
    return max(first, lowest) <= min(last, highest, top)
  }
}

/// A memory operand: its prefixes (segment override, address size) and the ModRM bytes for a
/// given ModRM.reg.
struct CompatMemory: Sendable {
  enum Form: Sendable {
    /// 32-bit addressing: base + index * scale + displacement (base nil: disp32 alone).
    case a32(base: Int?, index: Int?, scale: Int, displacement: Int32)
    /// 16-bit addressing: ModRM.rm 0-7 with mod 1 or 2 (or 0 without displacement), or a direct
    /// disp16 (rm 6, mod 0) when `rm` is nil.
    case a16(rm: Int?, displacement: Int16?)
  }
  var form: Form
  /// 0x67 when the address size differs from the code size, a segment override when needed.
  var prefixes: [UInt8]
  /// The segment register the access goes through.
  var segment: Int
  /// The offset the registers and displacement add up to.
  var offset: UInt64

  func modrm(reg: Int) -> [UInt8] {
    let r = UInt8(reg & 7) << 3
    switch form {
    case .a32(let base, let index, let scale, let displacement):
      let ss: UInt8 = scale == 8 ? 3 : scale == 4 ? 2 : scale == 2 ? 1 : 0
      let disp32 = littleEndian(UInt64(UInt32(bitPattern: displacement)), count: 4)
      guard let base else {
        if let index { return [r | 4, ss << 6 | UInt8(index) << 3 | 5] + disp32 }
        return [r | 5] + disp32
      }
      let mod: UInt8 =
        displacement == 0 && base != 5 ? 0 : Int32(Int8(truncatingIfNeeded: displacement)) == displacement ? 1 : 2
      var out: [UInt8]
      if index != nil || base == 4 {
        out = [mod << 6 | r | 4, ss << 6 | UInt8(index ?? 4) << 3 | UInt8(base)]
      } else {
        out = [mod << 6 | r | UInt8(base)]
      }
      if mod == 1 { out.append(UInt8(truncatingIfNeeded: displacement)) }
      if mod == 2 { out += disp32 }
      return out
    case .a16(let rm, let displacement):
      guard let rm else {
        return [r | 6] + littleEndian(UInt64(UInt16(bitPattern: displacement ?? 0)), count: 2)
      }
      guard let displacement else { return [r | UInt8(rm)] }
      if Int16(Int8(truncatingIfNeeded: displacement)) == displacement {
        return [1 << 6 | r | UInt8(rm), UInt8(truncatingIfNeeded: displacement)]
      }
      return [2 << 6 | r | UInt8(rm)] + littleEndian(UInt64(UInt16(bitPattern: displacement)), count: 2)
    }
  }
}

/// Generates programs of 16- or 32-bit code for compatibility mode, each with its initial state:
/// the selectors, an LDT (kept across programs and partly redrawn for each, since installing an
/// entry costs the native side a system call) and registers aimed into the segments.
///
/// Segment bases and limits are drawn around the sandbox so that offsets reach it from every kind
/// of segment: expand-up segments starting in or before it, expand-down segments whose valid range
/// starts in it, and a 16-bit segment based 60 KiB below its middle, where a 16-bit offset or SP
/// that wraps from 0 to FFFFh still lands in it. The generator predicts each segment load (the
/// SDM's checks) to know what a register holds afterwards; after an instruction that must fault it
/// generates nothing more, since nothing more runs.
public struct CompatProgramGenerator: Sendable {
  public let mode: DiffTestMode
  public let classes: [InstructionClass]
  var rng: RandomSource
  private let totalWeight: Int

  var items: [GeneratedInstruction] = []
  var undefined: UInt64 = 0
  /// The LDT of the current program (redrawn in part for each).
  var ldt: [LDTEntry] = []
  var programs = 0
  /// What the segment registers hold at this point of the program (ES CS SS DS FS GS).
  var segments: [SegmentView] = []
  /// ESP at this point of the program, when the generator can tell.
  var esp: UInt32?
  /// An instruction that certainly faults was generated.
  var ended = false
  /// Bytes to place in the initial sandbox (far pointers, selectors read from memory).
  var patches: [(offset: Int, bytes: [UInt8])] = []

  static let sandbox = UInt64(CN_SANDBOX_ADDR)
  static let sandboxSize = UInt64(CN_SANDBOX_SIZE)

  public init(mode: DiffTestMode, classes: [InstructionClass], seed: UInt64) {
    precondition(mode.isCompatibility, "CompatProgramGenerator generates 16- and 32-bit code")
    self.mode = mode
    let usable = classes.filter { $0.isAvailable(in: mode) }
    self.classes = usable.isEmpty ? InstructionClass.compatibilityClasses : usable
    rng = RandomSource(seed: seed)
    totalWeight = self.classes.reduce(0) { $0 + Self.weight($1) }
  }

  static func weight(_ c: InstructionClass) -> Int { c == .enterLeave ? 5 : c.weight }

  var codeBits: Int { mode == .compat16 ? 16 : 32 }

  // MARK: - programs

  /// The next test: an initial state and a program of `count` instructions under test.
  public mutating func nextTest(count: Int) -> (initial: MachineState, program: TestProgram) {
    var initial = initialState()
    items = []
    undefined = 0
    ended = false
    patches = []
    for _ in 0..<count where !ended { emitRandom(pickClass()) }
    for p in patches {
      for (k, b) in p.bytes.enumerated() where p.offset + k < initial.sandbox.count {
        initial.sandbox[p.offset + k] = b
      }
    }
    let program = TestProgram(
      instructions: items, codeMode: mode.codeMode, origin: mode == .compat16 ? 0 : CN_CODE_ADDR)
    return (initial, program)
  }

  mutating func pickClass() -> InstructionClass {
    var r = rng.below(totalWeight)
    for c in classes {
      if r < Self.weight(c) { return c }
      r -= Self.weight(c)
    }
    return classes[0]
  }

  mutating func emitRandom(_ c: InstructionClass) {
    switch c {
    case .segmentLoad: emitSegmentLoad()
    case .segmentMove: emitSegmentMove()
    case .stackSize: emitStackSize()
    case .enterLeave: emitEnterLeave()
    case .string16: emitString16()
    default: emitSegmentLimit()
    }
  }

  // MARK: - the environment

  /// A fresh initial state: the LDT (redrawn in part), selectors, registers, flags and sandbox.
  mutating func initialState() -> MachineState {
    refreshLDT()
    programs += 1
    let cs: UInt16 =
      mode == .compat16
      ? Self.ldtSelector(0) : (rng.chance(0.8) ? CompatDescriptorTables.user32Code : Self.ldtSelector(1))
    // SS: a writable data segment with room for a stack in the sandbox.
    var ssCandidates: [UInt16] = [CompatDescriptorTables.userData]
    for i in 2..<ldt.count where isStackCandidate(ldt[i]) { ssCandidates.append(Self.ldtSelector(i)) }
    var ss = CompatDescriptorTables.userData
    var initialESP = UInt32(Self.sandbox + 0x1000)
    for _ in 0..<8 {
      let candidate = rng.pick(ssCandidates)
      let view = SegmentView(selector: candidate, descriptor: descriptor(candidate)!)
      if let p = stackPointer(in: view, below: 0x300, above: 0x80) {
        ss = candidate
        initialESP = p
        break
      }
    }
    // Data segments: mostly ones that 16-bit offsets can aim into the sandbox with, so 16-bit
    // addressing (compat16's default) reaches memory; also the flat user data segment, null and
    // anything loadable.
    let data = dataSelectors()
    let near = data.filter { SegmentView(selector: $0, descriptor: descriptor($0)!).reachesSandbox(addressBits: 16) }
    func dataSelector(null: Double) -> UInt16 {
      if rng.chance(null) { return 0 }
      if !near.isEmpty && rng.chance(0.6) { return rng.pick(near) }
      return rng.chance(0.4) ? CompatDescriptorTables.userData : rng.pick(data)
    }
    let ds = dataSelector(null: 0)
    let es = dataSelector(null: 0)
    let fs = dataSelector(null: 0.25)
    let gs = dataSelector(null: 0.25)
    let selectors = [es, cs, ss, ds, fs, gs]
    segments = selectors.map { s in descriptor(s).map { SegmentView(selector: s, descriptor: $0) } ?? .null(s) }
    esp = initialESP
    var gpr = (0..<8).map { _ in rng.interesting(bits: 32) }
    gpr[4] = UInt64(initialESP)
    // R8-R15 cannot be reached from compatibility mode; both sides must leave them alone.
    gpr += (8..<16).map { _ in rng.next() }
    let flags = (rng.next() & 0x0CD5) | 0x2
    var sandbox = [UInt8](repeating: 0, count: Int(CN_SANDBOX_SIZE))
    let dense = rng.chance(0.8)
    for i in sandbox.indices where dense || rng.chance(0.1) {
      sandbox[i] = UInt8(truncatingIfNeeded: rng.next())
    }
    return MachineState(
      gpr: gpr, rip: mode == .compat16 ? 0 : CN_CODE_ADDR, rflags: flags, sandbox: sandbox, segments: selectors,
      ldt: ldt)
  }

  static func ldtSelector(_ index: Int, rpl: UInt16 = 3) -> UInt16 { UInt16(index) << 3 | 4 | rpl }

  /// The descriptor a selector names (nil for null or out of its table).
  func descriptor(_ selector: UInt16) -> UInt64? { CompatDescriptorTables.descriptor(selector, ldt: ldt) }

  func isStackCandidate(_ e: LDTEntry) -> Bool {
    !e.empty && !e.notPresent && e.contents != .code && !e.readExecOnly
  }

  /// Selectors that load into DS/ES/FS/GS: user data and code, present readable LDT entries.
  func dataSelectors() -> [UInt16] {
    var list: [UInt16] = [CompatDescriptorTables.userData, CompatDescriptorTables.user32Code]
    for (i, e) in ldt.enumerated() where !e.empty && !e.notPresent && !(e.contents == .code && e.readExecOnly) {
      list.append(Self.ldtSelector(i))
    }
    return list
  }

  /// Redraws the LDT: all of it every 64 programs, two entries otherwise.
  mutating func refreshLDT() {
    if ldt.isEmpty || programs % 64 == 0 {
      ldt = (0..<Int(CN_LDT_ENTRIES)).map { _ in LDTEntry.emptyEntry }
      for i in ldt.indices { ldt[i] = randomEntry(index: i) }
      return
    }
    for _ in 0..<2 {
      let i = rng.below(ldt.count)
      ldt[i] = randomEntry(index: i)
    }
  }

  /// Entry 0 is the 16-bit code segment at the code page (compat16's CS), entry 1 a flat 32-bit
  /// code segment (another CS for compat32), entries 2 and 3 stacks, the rest anything.
  mutating func randomEntry(index: Int) -> LDTEntry {
    switch index {
    case 0:
      let limit: UInt32 = rng.pick([0xFFF, 0xFFFF, 0xF_FFFF])
      return LDTEntry(
        base: UInt32(CN_CODE_ADDR), limit: limit, is32Bit: false, contents: .code, readExecOnly: rng.chance(0.25))
    case 1:
      return LDTEntry(
        base: 0, limit: 0xF_FFFF, is32Bit: true, contents: .code, readExecOnly: rng.chance(0.25), limitInPages: true)
    case 2, 3:
      return randomDataEntry(readOnly: false, present: true)
    default:
      switch rng.below(100) {
      case 0..<60: return randomDataEntry()
      case 60..<70: return randomCodeEntry()
      case 70..<78: return .emptyEntry
      case 78..<84:
        var e = rng.chance(0.7) ? randomDataEntry() : randomCodeEntry()
        e.notPresent = true
        return e
      default: return randomDataEntry(readOnly: false, present: true)
      }
    }
  }

  mutating func randomCodeEntry() -> LDTEntry {
    let readOnlyExec = rng.chance(0.3)
    switch rng.below(3) {
    case 0:
      return LDTEntry(
        base: UInt32(CN_CODE_ADDR), limit: rng.pick([0xFFF, 0xFFFF]), is32Bit: rng.chance(0.5), contents: .code,
        readExecOnly: readOnlyExec)
    case 1:
      return LDTEntry(
        base: 0, limit: 0xF_FFFF, is32Bit: rng.chance(0.5), contents: .code, readExecOnly: readOnlyExec,
        limitInPages: true)
    default:
      return LDTEntry(
        base: UInt32(Self.sandbox) + UInt32(rng.pick([0, 0x800, 0x1000])), limit: rng.pick([0xFFF, 0x1FFF, 0xFFFF]),
        is32Bit: rng.chance(0.5), contents: .code, readExecOnly: readOnlyExec)
    }
  }

  /// A data segment positioned against the sandbox (see the type's comment).
  mutating func randomDataEntry(readOnly: Bool? = nil, present: Bool? = nil) -> LDTEntry {
    let s = UInt32(Self.sandbox)
    var e: LDTEntry
    switch rng.below(10) {
    case 0:
      e = LDTEntry(base: 0, limit: 0xF_FFFF, is32Bit: rng.chance(0.8), contents: .data, limitInPages: true)
    case 1, 2, 3:
      let base = s &+ UInt32(bitPattern: Int32(rng.pick([0, 0, 0x10, 0x800, 0x1000, 0x1F00, -0x10, -0x800])))
      if rng.chance(0.2) {
        e = LDTEntry(
          base: base, limit: UInt32(rng.below(3)), is32Bit: rng.chance(0.5), contents: .data, limitInPages: true)
      } else {
        let limit: UInt32 = rng.pick([0x1FFF, 0xFFF, 0x7FF, 0xFFFF, 0x1000, UInt32(rng.below(0x3000)), 0xF_FFFF])
        e = LDTEntry(base: base, limit: limit, is32Bit: rng.chance(0.5), contents: .data)
      }
    case 4:
      // 16-bit offsets F000h-FFFFh reach the sandbox's first page: SP or SI/DI wrapping from 0 to
      // FFFFh lands there.
      e = LDTEntry(base: s &+ 0x1000 &- 0x10000, limit: 0xFFFF, is32Bit: rng.chance(0.2), contents: .data)
    case 5, 6:
      // Expand-down, 16-bit upper bound: valid offsets limit+1 ... FFFFh.
      let limit = UInt32(rng.pick([0x0FFF, 0x7FFF, 0xDFFF, 0xEFFF, 0xF7FF, 0xFF00, 0xFFFE, 0xFFFF]))
      let k = UInt32(rng.pick([0, 0x400, 0x1000, 0x1800]))
      e = LDTEntry(base: s &+ k &- (limit &+ 1), limit: limit, is32Bit: false, contents: .expandDownData)
    case 7, 8:
      // Expand-down, 4 GiB upper bound.
      let k = UInt32(rng.pick([0, 0x400, 0x1000, 0x1800]))
      if rng.chance(0.5) {
        let raw = UInt32(rng.pick([0xF_FFFE, 0xF_FFFD, 0xF_FFF0, 0x8_0000]))
        let limit = raw << 12 | 0xFFF
        e = LDTEntry(
          base: s &+ k &- (limit &+ 1), limit: raw, is32Bit: true, contents: .expandDownData, limitInPages: true)
      } else {
        let limit = UInt32(rng.pick([0xF_FFFF, 0xF_0000, 0x0_FFFF, 0xFFF]))
        e = LDTEntry(base: s &+ k &- (limit &+ 1), limit: limit, is32Bit: true, contents: .expandDownData)
      }
    default:
      e = LDTEntry(base: s, limit: rng.pick([0x1FFF, 0xFFFF]), is32Bit: rng.chance(0.5), contents: .data)
    }
    e.readExecOnly = readOnly ?? rng.chance(0.25)
    e.notPresent = !(present ?? !rng.chance(0.05))
    return e
  }

  /// An ESP inside `view` with `below` bytes of valid, mapped stack under it and `above` over it,
  /// or nil when the segment has no such place in the sandbox. Bits 31:16 are random for a
  /// 16-bit stack (only SP is used).
  mutating func stackPointer(in view: SegmentView, below: UInt64, above: UInt64) -> UInt32? {
    guard view.usable && view.writable else { return nil }
    for _ in 0..<12 {
      let k = below + UInt64(rng.below(Int(Self.sandboxSize - below - above)))
      let alignment: UInt64 = rng.chance(0.9) ? 3 : 1
      let offset = (Self.sandbox &+ k &- UInt64(view.base)) & 0xFFFF_FFFF & ~alignment
      let top: UInt64 = view.big ? 0xFFFF_FFFF : 0xFFFF
      guard offset <= top, offset >= below, view.contains(offset - below, size: Int(below + above)) else { continue }
      if view.big { return UInt32(offset) }
      return UInt32(offset) | UInt32(truncatingIfNeeded: rng.next()) << 16
    }
    return nil
  }

  /// An ESP for the current SS: usually in the middle of a valid stack, sometimes at an edge (SP
  /// about to wrap, the bottom of an expand-down segment, the limit, the guard page).
  mutating func anyStackPointer(room: UInt64 = 0x200) -> UInt32 {
    let ss = segments[2]
    if !rng.chance(0.08), let p = stackPointer(in: ss, below: room, above: 0x40) { return p }
    let high = UInt32(truncatingIfNeeded: rng.next()) << 16
    var candidates: [UInt64] = [UInt64(rng.below(8)), 0x10000 - UInt64(rng.below(8))]
    if ss.usable {
      candidates += [
        ss.lowest + UInt64(rng.below(12)), ss.highest &+ 1 &- UInt64(rng.below(8)),
        (Self.sandbox &+ UInt64(rng.below(12)) &- UInt64(ss.base)) & 0xFFFF_FFFF,
        (Self.sandbox &+ Self.sandboxSize &+ 4 &- UInt64(rng.below(12)) &- UInt64(ss.base)) & 0xFFFF_FFFF,
      ]
    }
    let pick = UInt32(truncatingIfNeeded: rng.pick(candidates))
    return ss.big ? pick : (pick & 0xFFFF) | high
  }

  // MARK: - bookkeeping

  mutating func add(
    _ bytes: [UInt8], _ c: InstructionClass, setup: Bool = false, defines: UInt64 = 0, undefines: UInt64 = 0,
    reads: UInt64 = 0
  ) {
    if reads & undefined != 0 { defineFlags() }
    undefined = (undefined & ~defines) | undefines
    items.append(
      GeneratedInstruction(
        bytes: bytes, instructionClass: c, isSetup: setup, undefinedFlags: undefines, definedFlags: defines,
        undefinedAfter: undefined))
  }

  /// CMP r, r: every arithmetic flag defined.
  mutating func defineFlags() {
    let bytes: [UInt8] = [0x39, 0xC0 | UInt8(rng.below(8)) << 3 | UInt8(rng.below(8))]
    undefined = 0
    items.append(
      GeneratedInstruction(
        bytes: bytes, instructionClass: .segmentLimit, isSetup: true, undefinedFlags: 0,
        definedFlags: FlagBits.arithmetic, undefinedAfter: 0))
  }

  /// MOV r32, imm32 (with 66h in 16-bit code).
  mutating func setRegister(_ r: Int, _ value: UInt32, _ c: InstructionClass) {
    add(operandSize(32) + [0xB8 + UInt8(r)] + littleEndian(UInt64(value), count: 4), c, setup: true)
    if r == 4 { esp = value }
  }

  /// The operand-size prefix for `size` bits in this code.
  func operandSize(_ size: Int) -> [UInt8] { (size == 16) != (codeBits == 16) && size != 8 ? [0x66] : [] }

  /// The address-size prefix for `bits`-bit addressing.
  func addressSize(_ bits: Int) -> [UInt8] { bits != codeBits ? [0x67] : [] }

  /// The stack's address mask (SS.B).
  var stackMask: UInt32 { segments[2].big ? 0xFFFF_FFFF : 0xFFFF }

  /// ESP after pushing (negative) or popping `delta` bytes: only SP moves on a 16-bit stack.
  mutating func moveStack(_ delta: Int) {
    guard let e = esp else { return }
    let m = stackMask
    esp = (e & ~m) | (UInt32(truncatingIfNeeded: Int64(e) + Int64(delta)) & m)
  }

  /// Sets ESP to a good place unless the generator already knows it (or, sometimes, anyway).
  mutating func ensureStack(_ c: InstructionClass, room: UInt64 = 0x200) {
    if esp == nil || rng.chance(0.2) { setRegister(4, anyStackPointer(room: room), c) }
  }

  /// A register other than ESP, not in `avoiding`.
  mutating func register(avoiding: Set<Int> = []) -> Int {
    let choices = [0, 1, 2, 3, 5, 6, 7].filter { !avoiding.contains($0) }
    return choices.isEmpty ? 0 : rng.pick(choices)
  }

  // MARK: - selectors and segment loads

  /// What loading `selector` into segment register `register` gives (SDM vol. 2 "MOV", "POP",
  /// "LDS/LES/LFS/LGS/LSS" protected-mode checks at CPL 3); nil when the load faults.
  func predictLoad(_ selector: UInt16, into register: Int) -> SegmentView? {
    if selector & 0xFFFC == 0 { return register == 2 ? nil : .null(selector) }
    guard let raw = descriptor(selector) else { return nil }
    let d = SegmentDescriptor(raw: raw)
    guard d.isCodeOrData else { return nil }
    let rpl = Int(selector & 3)
    if register == 2 {
      guard rpl == 3, d.writable, d.dpl == 3, d.present else { return nil }
    } else {
      guard d.readable else { return nil }
      if !d.conforming { guard rpl <= d.dpl, d.dpl >= 3 else { return nil } }
      guard d.present else { return nil }
    }
    return SegmentView(selector: selector, descriptor: raw)
  }

  /// A selector to load into `register`: valid ones and every way a load can fail.
  mutating func pickSelector(for register: Int) -> UInt16 {
    let rpl = UInt16(rng.chance(0.7) ? 3 : rng.below(4))
    switch rng.below(100) {
    case 0..<60:
      var valid: [UInt16] = []
      if register == 2 {
        valid.append(CompatDescriptorTables.userData)
        for (i, e) in ldt.enumerated() where isStackCandidate(e) { valid.append(Self.ldtSelector(i)) }
      } else {
        valid = dataSelectors() + [CompatDescriptorTables.user64Code]
        valid = valid.map { $0 & ~3 | rpl }
      }
      return rng.pick(valid)
    case 60..<66:
      // Null selectors only with RPL 0: a null selector with RPL 1-3 in DS/ES/FS/GS reads back as
      // 0 once the kernel has returned to CPL 3 (its IRET, to the signal handler or after any
      // interrupt during the test, nulls data segment registers whose hidden DPL is below the new
      // CPL, and a null-loaded register's is 0): a host artifact, not what the test did.
      return 0
    case 66..<78:
      return Self.ldtSelector(rng.below(ldt.count), rpl: register == 2 && rng.chance(0.7) ? 3 : rpl)
    case 78..<82:
      let index = rng.chance(0.5) ? Int(CN_LDT_ENTRIES) + rng.below(4) : Int(CN_LDT_ENTRIES) + rng.below(8176)
      return Self.ldtSelector(index, rpl: rpl)
    case 82..<91:
      // Kernel (DPL 0), system (TSS, LDT), empty and TLS entries of the GDT (never the CPU/node
      // entry, whose limit depends on the CPU the child runs on).
      return UInt16(rng.pick([1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14])) << 3 | rpl
    case 91..<93:
      return UInt16(16 + rng.below(8176)) << 3 | rpl
    default:
      // A stack descriptor with RPL 0-2: valid for data registers, #GP for SS.
      return Self.ldtSelector(2 + rng.below(2), rpl: UInt16(rng.below(3)))
    }
  }

  /// Records a segment load and ends the program when it faults.
  mutating func loaded(_ selector: UInt16, into register: Int) {
    if let view = predictLoad(selector, into: register) {
      segments[register] = view
    } else {
      ended = true
    }
  }

  // MARK: - memory operands

  /// An offset in `view` for `size` bytes: mostly valid and in the sandbox; sometimes straddling
  /// the limit, touching a guard page, or anywhere.
  mutating func pickOffset(_ view: SegmentView, size: Int, write: Bool, addressBits: Int) -> UInt64 {
    let top: UInt64 = addressBits == 16 ? 0xFFFF : 0xFFFF_FFFF
    let roll = rng.below(100)
    if roll < 84 && view.usable {
      for _ in 0..<12 {
        let k = UInt64(rng.below(Int(Self.sandboxSize) - size + 1))
        let offset = (Self.sandbox &+ k &- UInt64(view.base)) & 0xFFFF_FFFF
        if offset + UInt64(size - 1) <= top && view.contains(offset, size: size) { return offset }
      }
    }
    var candidates: [UInt64] = []
    if roll < 93 && view.usable {
      // Around the last offset where `size` bytes fit, and around the lowest valid offset.
      candidates = [
        view.highest &- UInt64(size) &+ UInt64(rng.below(size + 2)),
        view.lowest &+ UInt64(rng.below(2)) &- UInt64(rng.below(size + 1)),
      ]
    } else if roll < 98 {
      let end = Self.sandbox + Self.sandboxSize
      candidates = [
        end &- UInt64(rng.below(size + 2)) &- UInt64(view.base),
        Self.sandbox &- UInt64(rng.below(size + 1)) &- UInt64(view.base),
      ]
    } else {
      candidates = [rng.interesting(bits: addressBits)]
    }
    var offset = rng.pick(candidates) & top
    // Never write into the code page: the test's own instructions are there.
    let linear = view.linear(offset)
    if write && linear + UInt64(size) > CN_CODE_ADDR && linear < CN_CODE_ADDR + UInt64(CN_CODE_SIZE) {
      offset = (Self.sandbox &+ 0x800 &- UInt64(view.base)) & top
    }
    return offset
  }

  /// A memory operand through segment register `segment`, with the MOVs that set its registers.
  mutating func memoryOperand(
    segment: Int, size: Int, write: Bool, avoiding: Set<Int> = [], c: InstructionClass, addressBits bits: Int? = nil
  ) -> CompatMemory {
    var addressBits = bits ?? (rng.chance(0.75) ? codeBits : 48 - codeBits)
    // An address size that cannot reach the sandbox in this segment mostly gives way to one that can.
    if bits == nil && !segments[segment].reachesSandbox(addressBits: addressBits) && rng.chance(0.8) {
      addressBits = 48 - addressBits
    }
    let offset = pickOffset(segments[segment], size: size, write: write, addressBits: addressBits)
    var form: CompatMemory.Form
    var defaultSegment = 3
    if addressBits == 32 {
      let base: Int? = rng.chance(0.05) ? nil : register(avoiding: avoiding)
      var index: Int?
      var scale = 1
      if rng.chance(0.25) {
        let i = register(avoiding: avoiding.union(base.map { [$0] } ?? []))
        if i != base { index = i }
        scale = rng.pick([1, 2, 4, 8])
      }
      let displacement: Int32 =
        base == nil
        ? 0 : rng.pick([0, 0, Int32(rng.below(256)) - 128, Int32(bitPattern: UInt32(truncatingIfNeeded: rng.next()))])
      var rest = UInt32(truncatingIfNeeded: offset) &- UInt32(bitPattern: displacement)
      if let index {
        let v = UInt32(rng.below(64))
        setRegister(index, v, c)
        rest = rest &- v &* UInt32(scale)
      }
      if let base {
        setRegister(base, rest, c)
        if base == 5 { defaultSegment = 2 }
        form = .a32(base: base, index: index, scale: scale, displacement: displacement)
      } else {
        form = .a32(base: nil, index: index, scale: scale, displacement: Int32(bitPattern: rest))
      }
    } else {
      // rm: 0 BX+SI, 1 BX+DI, 2 BP+SI, 3 BP+DI, 4 SI, 5 DI, 6 BP, 7 BX (nil: disp16 alone).
      let registers: [[Int]] = [[3, 6], [3, 7], [5, 6], [5, 7], [6], [7], [5], [3]]
      let usable = (0..<8).filter { registers[$0].allSatisfy { !avoiding.contains($0) } }
      let rm: Int? = usable.isEmpty || rng.chance(0.08) ? nil : rng.pick(usable)
      var displacement: Int16? =
        rng.chance(0.4) ? nil : rng.pick([Int16(rng.below(256)) - 128, Int16(truncatingIfNeeded: rng.next())])
      if rm == 6 && displacement == nil { displacement = 0 }
      if let rm {
        let regs = registers[rm]
        var rest = UInt16(truncatingIfNeeded: offset) &- UInt16(bitPattern: displacement ?? 0)
        if regs.count == 2 {
          let v = UInt16(truncatingIfNeeded: rng.next())
          setRegister(regs[1], UInt32(truncatingIfNeeded: rng.next()) << 16 | UInt32(v), c)
          rest = rest &- v
        }
        // Bits 31:16 of the registers are random: 16-bit addressing must ignore them.
        setRegister(regs[0], UInt32(truncatingIfNeeded: rng.next()) << 16 | UInt32(rest), c)
        if rm == 2 || rm == 3 || rm == 6 { defaultSegment = 2 }
      } else {
        displacement = Int16(bitPattern: UInt16(truncatingIfNeeded: offset))
      }
      form = .a16(rm: rm, displacement: displacement)
    }
    var prefixes = addressSize(addressBits)
    if segment != defaultSegment || rng.chance(0.1) { prefixes.append([0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65][segment]) }
    return CompatMemory(form: form, prefixes: prefixes, segment: segment, offset: offset)
  }

  /// A segment register for a memory access: three times in four one whose segment allows it
  /// (usable, and readable or writable as needed; DS when it does, often), else any of the six
  /// (a null, read-only or execute-only one then faults).
  mutating func anySegment(write: Bool = false, addressBits: Int? = nil) -> Int {
    if rng.chance(0.75) {
      let fitting = (0..<6).filter { i in
        let view = segments[i]
        guard view.usable && (write ? view.writable : view.readable) else { return false }
        return addressBits.map { view.reachesSandbox(addressBits: $0) } ?? true
      }
      if !fitting.isEmpty { return fitting.contains(3) && rng.chance(0.4) ? 3 : rng.pick(fitting) }
    }
    return rng.below(6)
  }

  /// Mostly makes segment register `register` one that allows the access and reaches the sandbox
  /// at `addressBits`: when it does not, loads a selector that does (MOV r, imm; MOV Sreg, r as
  /// helpers), which also exercises the hidden part of a freshly loaded register.
  mutating func ensureSegment(_ register: Int, write: Bool, addressBits: Int, _ c: InstructionClass) {
    let view = segments[register]
    if register == 1
      || view.usable && (write ? view.writable : view.readable) && view.reachesSandbox(addressBits: addressBits)
    {
      return
    }
    guard rng.chance(0.7) else { return }
    let candidates = dataSelectors().filter { selector in
      guard let v = predictLoad(selector, into: register) else { return false }
      return (write ? v.writable : v.readable) && v.reachesSandbox(addressBits: addressBits)
    }
    guard !candidates.isEmpty else { return }
    let selector = rng.pick(candidates)
    let r = self.register()
    setRegister(r, UInt32(selector), c)
    add([0x8E, 0xC0 | UInt8(register) << 3 | UInt8(r)], c, setup: true)
    loaded(selector, into: register)
  }

  /// Places `bytes` at `offset` in `segment` in the initial sandbox (when that is where it lands).
  mutating func patch(segment: Int, offset: UInt64, _ bytes: [UInt8]) {
    let linear = segments[segment].linear(offset)
    guard linear >= Self.sandbox, linear + UInt64(bytes.count) <= Self.sandbox + Self.sandboxSize else { return }
    patches.append((Int(linear - Self.sandbox), bytes))
  }
}

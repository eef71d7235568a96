/// A small two-pass assembler for the system-level difftest: several sections at fixed guest
/// addresses, named labels shared by all of them, and fixups resolved at the end (rel8/rel32
/// branches, 32- and 64-bit absolute addresses). Instruction bytes come from `Encoder` or are
/// spelled out by the helpers below (system instructions the generic encoder has no shape for).
/// A label that is never defined resolves to address 0 (a reduced program may drop the item that
/// defined it).
struct SystemAssembler {
  struct Section {
    var base: UInt64
    var bytes: [UInt8] = []
    /// Bytes the section may hold before it reaches the next one.
    var capacity: Int
  }

  enum FixupKind { case rel8, rel32, abs32, abs64 }

  struct Fixup {
    var section: Int
    var offset: Int
    var kind: FixupKind
    var label: Int
    var addend: Int64
  }

  var sections: [Section]
  /// The section instructions are emitted into.
  var current = 0
  private(set) var labels: [UInt64?] = []
  private var fixups: [Fixup] = []

  init(sections: [(base: UInt64, capacity: Int)]) {
    self.sections = sections.map { Section(base: $0.base, capacity: $0.capacity) }
  }

  /// The guest address of the next byte in the current section.
  var here: UInt64 { sections[current].base + UInt64(sections[current].bytes.count) }
  /// Bytes left in the current section.
  var room: Int { sections[current].capacity - sections[current].bytes.count }

  mutating func newLabel() -> Int {
    labels.append(nil)
    return labels.count - 1
  }

  mutating func bind(_ label: Int) { labels[label] = here }

  mutating func raw(_ b: [UInt8]) { sections[current].bytes += b }

  mutating func emit(_ build: (inout Encoder) -> Void) {
    var e = Encoder()
    build(&e)
    raw(e.bytes)
  }

  private mutating func fixup(_ kind: FixupKind, _ label: Int, addend: Int64 = 0) {
    fixups.append(
      Fixup(section: current, offset: sections[current].bytes.count, kind: kind, label: label, addend: addend))
    switch kind {
    case .rel8: raw([0])
    case .rel32, .abs32: raw([0, 0, 0, 0])
    case .abs64: raw([0, 0, 0, 0, 0, 0, 0, 0])
    }
  }

  // MARK: Control transfers

  mutating func jmp(_ label: Int) {
    raw([0xE9])
    fixup(.rel32, label)
  }
  mutating func jmpShort(_ label: Int) {
    raw([0xEB])
    fixup(.rel8, label)
  }
  /// Jcc rel32; `cc` is the condition nibble (4 = E/Z, 5 = NE/NZ ...).
  mutating func jcc(_ cc: Int, _ label: Int) {
    raw([0x0F, 0x80 | UInt8(cc & 15)])
    fixup(.rel32, label)
  }
  mutating func jccShort(_ cc: Int, _ label: Int) {
    raw([0x70 | UInt8(cc & 15)])
    fixup(.rel8, label)
  }
  mutating func call(_ label: Int) {
    raw([0xE8])
    fixup(.rel32, label)
  }
  mutating func ret() { raw([0xC3]) }

  // MARK: Moves of constants and addresses

  /// MOV r32, imm32 (zero-extends into the 64-bit register).
  mutating func movImm32(_ reg: Int, _ value: UInt32) {
    if reg >= 8 { raw([0x41]) }
    raw([0xB8 + UInt8(reg & 7)] + littleEndian(UInt64(value), count: 4))
  }
  /// MOV r64, imm64.
  mutating func movImm64(_ reg: Int, _ value: UInt64) {
    raw([reg >= 8 ? 0x49 : 0x48, 0xB8 + UInt8(reg & 7)] + littleEndian(value, count: 8))
  }
  /// MOV r32, label + addend (every label of the program lies below 4 GiB).
  mutating func movAddress(_ reg: Int, _ label: Int, addend: Int64 = 0) {
    if reg >= 8 { raw([0x41]) }
    raw([0xB8 + UInt8(reg & 7)])
    fixup(.abs32, label, addend: addend)
  }
  /// PUSH imm32 of a label's address (sign-extended: labels lie below 2 GiB).
  mutating func pushAddress(_ label: Int) {
    raw([0x68])
    fixup(.abs32, label)
  }
  /// A 64-bit data word holding a label's address.
  mutating func quadAddress(_ label: Int) { fixup(.abs64, label) }

  mutating func push(_ reg: Int) { raw(reg >= 8 ? [0x41, 0x50 + UInt8(reg & 7)] : [0x50 + UInt8(reg)]) }
  mutating func pop(_ reg: Int) { raw(reg >= 8 ? [0x41, 0x58 + UInt8(reg & 7)] : [0x58 + UInt8(reg)]) }

  /// MOV r64, CRn / MOV CRn, r64 / MOV r64, DRn / MOV DRn, r64.
  mutating func readCR(_ reg: Int, _ cr: Int) { systemMove(0x20, reg: reg, special: cr) }
  mutating func writeCR(_ cr: Int, _ reg: Int) { systemMove(0x22, reg: reg, special: cr) }
  mutating func readDR(_ reg: Int, _ dr: Int) { systemMove(0x21, reg: reg, special: dr) }
  mutating func writeDR(_ dr: Int, _ reg: Int) { systemMove(0x23, reg: reg, special: dr) }
  private mutating func systemMove(_ opcode: UInt8, reg: Int, special: Int) {
    if reg >= 8 { raw([0x41]) }
    raw([0x0F, opcode, 0xC0 | UInt8(special & 7) << 3 | UInt8(reg & 7)])
  }

  /// INVLPG [reg].
  mutating func invlpg(_ reg: Int) {
    emit { $0.emit(opcode: [0x0F, 0x01], reg: 7, rm: .memory(base: reg, index: nil, scale: 1, displacement: 0)) }
  }

  /// Forgets what was emitted since `saved` (a skipped item): the sections and fixups go back,
  /// labels made or bound since then stay unbound (references to them resolve to 0).
  mutating func discard(since saved: SystemAssembler) {
    var kept = labels
    for i in kept.indices { kept[i] = i < saved.labels.count ? saved.labels[i] : nil }
    self = saved
    labels = kept
  }

  // MARK: Resolution

  /// The sections' bytes with every fixup applied; nil when a branch does not reach its label or a
  /// section overflowed.
  func assemble() -> [(base: UInt64, bytes: [UInt8])]? {
    var out = sections
    for s in out where s.bytes.count > s.capacity { return nil }
    for f in fixups {
      let target = Int64(bitPattern: (labels[f.label] ?? 0)) &+ f.addend
      let site = Int64(out[f.section].base) + Int64(f.offset)
      switch f.kind {
      case .rel8:
        let rel = target - (site + 1)
        guard (-128...127).contains(rel) else { return nil }
        out[f.section].bytes[f.offset] = UInt8(truncatingIfNeeded: rel)
      case .rel32:
        let rel = target - (site + 4)
        guard Int64(Int32.min)...Int64(Int32.max) ~= rel else { return nil }
        for (k, b) in littleEndian(UInt64(bitPattern: rel), count: 4).enumerated() {
          out[f.section].bytes[f.offset + k] = b
        }
      case .abs32:
        for (k, b) in littleEndian(UInt64(bitPattern: target), count: 4).enumerated() {
          out[f.section].bytes[f.offset + k] = b
        }
      case .abs64:
        for (k, b) in littleEndian(UInt64(bitPattern: target), count: 8).enumerated() {
          out[f.section].bytes[f.offset + k] = b
        }
      }
    }
    return out.map { ($0.base, $0.bytes) }
  }
}

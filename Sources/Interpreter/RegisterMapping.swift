import VMM
import X86

/// Conversions between the VMM's engine-neutral register structs and the CPU model's flat state.
extension CPUState {
  /// Loads the general registers, RIP and RFLAGS (reserved bits forced as the CPU keeps them).
  public func load(_ r: Registers) {
    for i in 0..<16 { setGPR(i, r[encoding: i]) }
    rip = r.rip
    rflags = (r.rflags & 0x3F_7FD7) | 0x2
  }

  /// The general registers, RIP and RFLAGS.
  public func registers() -> Registers {
    var r = Registers()
    for i in 0..<16 { r[encoding: i] = gpr(i) }
    r.rip = rip
    r.rflags = rflags
    return r
  }

  /// Loads segments, descriptor tables, control registers and EFER; derives CPL and code mode.
  public func load(_ s: SpecialRegisters) {
    setSegment(.cs, SegmentCache(s.cs))
    setSegment(.ds, SegmentCache(s.ds))
    setSegment(.es, SegmentCache(s.es))
    setSegment(.fs, SegmentCache(s.fs))
    setSegment(.gs, SegmentCache(s.gs))
    setSegment(.ss, SegmentCache(s.ss))
    setSegment(.tr, SegmentCache(s.tr))
    setSegment(.ldtr, SegmentCache(s.ldt))
    gdtr = (s.gdt.base, s.gdt.limit)
    idtr = (s.idt.base, s.idt.limit)
    cr0 = s.cr0
    cr2 = s.cr2
    cr3 = s.cr3
    cr4 = s.cr4
    self[offset: CPUStateLayout.cr8] = s.cr8
    efer = s.efer
    self[offset: CPUStateLayout.apicBase] = s.apicBase
    // Derived state: privilege from SS.DPL (as KVM/VMX define it; CS.DPL differs for conforming
    // code), 0 in real mode; the code mode from CR0.PE, EFER.LMA and CS.L/D.
    cpl = s.cr0 & 1 == 0 ? 0 : Int(s.ss.dpl)
    if s.cr0 & 1 == 0 {
      codeMode = .bits16
    } else if s.efer & (1 << 10) != 0 && s.cs.l {
      codeMode = .bits64
    } else {
      codeMode = s.cs.db ? .bits32 : .bits16
    }
  }

  /// Segments, descriptor tables, control registers and EFER.
  public func specialRegisters() -> SpecialRegisters {
    var s = SpecialRegisters()
    s.cs = Segment(segment(.cs))
    s.ds = Segment(segment(.ds))
    s.es = Segment(segment(.es))
    s.fs = Segment(segment(.fs))
    s.gs = Segment(segment(.gs))
    s.ss = Segment(segment(.ss))
    s.tr = Segment(segment(.tr))
    s.ldt = Segment(segment(.ldtr))
    s.gdt = DescriptorTable(base: gdtr.base, limit: gdtr.limit)
    s.idt = DescriptorTable(base: idtr.base, limit: idtr.limit)
    s.cr0 = cr0
    s.cr2 = cr2
    s.cr3 = cr3
    s.cr4 = cr4
    s.cr8 = self[offset: CPUStateLayout.cr8]
    s.efer = efer
    s.apicBase = self[offset: CPUStateLayout.apicBase]
    return s
  }
}

extension SegmentCache {
  /// Packs `kvm_segment`-style fields into descriptor attribute bits (type S DPL P ... AVL L D/B G).
  public init(_ s: Segment) {
    var a = UInt16(s.type & 0xF)
    if s.s { a |= 1 << 4 }
    a |= UInt16(s.dpl & 3) << 5
    if s.present && !s.unusable { a |= 1 << 7 }
    if s.avl { a |= 1 << 12 }
    if s.l { a |= 1 << 13 }
    if s.db { a |= 1 << 14 }
    if s.g { a |= 1 << 15 }
    self.init(selector: s.selector, base: s.base, limit: s.limit, attributes: a)
  }
}

extension Segment {
  /// The `kvm_segment`-style form of the model's segment cache.
  public init(_ c: SegmentCache) {
    self.init(
      selector: c.selector, base: c.base, limit: c.limit, type: UInt8(c.attributes & 0xF),
      s: c.attributes & (1 << 4) != 0, dpl: UInt8((c.attributes >> 5) & 3), present: c.attributes & (1 << 7) != 0,
      l: c.attributes & (1 << 13) != 0, db: c.attributes & (1 << 14) != 0, g: c.attributes & (1 << 15) != 0)
    avl = c.attributes & (1 << 12) != 0
    unusable = !present
  }
}

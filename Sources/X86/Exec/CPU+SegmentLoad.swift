/// Segment register loads and the code mode derived from CS.
extension CPU {
  /// The single segment-load point: real and virtual-8086 mode set base = selector * 16; in protected
  /// mode data and stack segments go through the system layer's full load checks (every model), and
  /// CS is loaded by the system layer's far transfers. The flat-user oracle mode reads descriptors
  /// with the null, limit and present checks only.
  func loadSegment(_ s: Int, selector: UInt16) throws(Fault) {
    guard let seg = SegmentRegister(rawValue: s) else { throw Fault.invalidOpcode }
    if isRealMode || state.rflags & Flags.vm != 0 {
      var c = state.segment(seg)
      c.selector = selector
      c.base = UInt64(selector) << 4
      state.setSegment(seg, c)
      return
    }
    if seg != .cs && !flatUser {
      try system.loadSegment(seg, selector)
      return
    }
    // What remains: CS in real mode's far transfers and the flat-user oracle mode, which has no
    // descriptor tables of its own (selectors index the host's GDT layout).
    if selector & 0xFFFC == 0 {
      if seg == .cs || (seg == .ss && (state.codeMode != .bits64 || state.cpl == 3)) {
        throw Fault.generalProtection(0)
      }
      state.setSegment(seg, SegmentCache(selector: selector, base: 0, limit: 0, attributes: 0))
      return
    }
    let table = selector & 4 != 0 ? state.segment(.ldtr).base : state.gdtr.base
    let limit = selector & 4 != 0 ? UInt64(state.segment(.ldtr).limit) : UInt64(state.gdtr.limit)
    let index = UInt64(selector & 0xFFF8)
    if index + 7 > limit { throw Fault.generalProtection(UInt32(selector & 0xFFFC)) }
    let d = try readLinear(table &+ index, size: 8)
    let attributes = UInt16(truncatingIfNeeded: (d >> 40) & 0xF0FF)
    if attributes & 0x80 == 0 {
      throw seg == .ss
        ? Fault.stackFault(UInt32(selector & 0xFFFC)) : .exception(vector: 11, errorCode: UInt32(selector & 0xFFFC))
    }
    var lim = UInt32(truncatingIfNeeded: (d & 0xFFFF) | ((d >> 32) & 0xF_0000))
    if attributes & 0x8000 != 0 { lim = lim << 12 | 0xFFF }
    let base = ((d >> 16) & 0xFF_FFFF) | ((d >> 32) & 0xFF00_0000)
    state.setSegment(seg, SegmentCache(selector: selector, base: base, limit: lim, attributes: attributes))
    if seg == .cs { updateCodeMode() }
  }

  /// Derives the code mode from CS (L with EFER.LMA: 64-bit; D: 32-bit; else 16-bit).
  public func updateCodeMode() {
    let attributes = state.segment(.cs).attributes
    if isRealMode {
      state.codeMode = .bits16
    } else if state.efer & 0x400 != 0 && attributes & 0x2000 != 0 {
      state.codeMode = .bits64
    } else {
      state.codeMode = attributes & 0x4000 != 0 ? .bits32 : .bits16
    }
  }
}

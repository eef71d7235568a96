/// The out-of-line half of the fast path's lazy status flags (`CPU+LazyFlags.swift`): computing a
/// pending record's flags into RFLAGS, and the conditions the inline `lazyCondition` does not
/// answer. Kept in a file of its own, after `CPU.swift`, so that changing these slow paths does not
/// move the page loops' code (whose speed on this project's hosts depends on its placement by as
/// much as 10-20%: docs/interpreter-execution.md).
extension CPU {
  @inline(never)
  func materializePendingFlags() {
    let slot = lazyKindSlot
    let size = Int((slot >> 8) & 0xFF)
    let a = lazyA
    let b = lazyB
    let f: UInt64
    switch slot & 0xFF {
    case LazyFlagsKind.add: f = ALU.add(a, b, carry: 0, size).1
    case LazyFlagsKind.sub: f = ALU.sub(a, b, borrow: 0, size).1
    case LazyFlagsKind.inc: f = (ALU.add(a, 1, carry: 0, size).1 & ~Flags.cf) | b
    case LazyFlagsKind.dec: f = (ALU.sub(a, 1, borrow: 0, size).1 & ~Flags.cf) | b
    default: f = ALU.logic(lazyResult, size)
    }
    let overridden = (slot >> 16) & 0xFFFF
    let values = (slot >> 32) & 0xFFFF
    stateRaw.storeBytes(of: LazyFlagsKind.none, toByteOffset: CPUStateLayout.lazyFlags, as: UInt64.self)
    setArithmeticFlags((f & ~overridden) | values)
  }

  @inline(never)
  func lazyConditionOutOfLine(_ cc: UInt8) -> Bool {
    let slot = lazyKindSlot
    // Nothing pending, a rotate's CF/OF on top of the record, or PF: from RFLAGS.
    guard slot != LazyFlagsKind.none, slot >> 16 == 0, cc >> 1 != 5 else {
      materializeFlags()
      return condition(cc)
    }
    // CF, ZF, SF and OF, as `ALU.add`/`ALU.sub`/`ALU.logic` define them (PF is not needed).
    let sign = ALU.sign(Int((slot >> 8) & 0xFF))
    let r = lazyResult
    let a = lazyA
    let b = lazyB
    let of: Bool
    switch slot & 0xFF {
    case LazyFlagsKind.add: of = (a ^ r) & (b ^ r) & sign != 0
    case LazyFlagsKind.sub: of = (a ^ b) & (a ^ r) & sign != 0
    case LazyFlagsKind.inc: of = r == sign  // only 0x7F..F + 1 overflows
    case LazyFlagsKind.dec: of = r == sign &- 1  // only 0x80..0 - 1 overflows
    default: of = false
    }
    let f =
      lazyCarry | (r == 0 ? Flags.zf : 0) | (r & sign != 0 ? Flags.sf : 0) | (of ? Flags.of : 0)
    return CPU.condition(cc, holdsFor: f)
  }
}

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
    // The flags a condition needs, each as `ALU.add`/`ALU.sub`/`ALU.logic` defines it.
    let sign = ALU.sign(Int((slot >> 8) & 0xFF))
    let r = lazyResult
    let a = lazyA
    let b = lazyB
    let cf: Bool
    let of: Bool
    switch slot & 0xFF {
    case LazyFlagsKind.add:
      cf = r < a
      of = (a ^ r) & (b ^ r) & sign != 0
    case LazyFlagsKind.sub:
      cf = a < b
      of = (a ^ b) & (a ^ r) & sign != 0
    case LazyFlagsKind.inc:
      cf = b != 0
      of = r == sign  // only 0x7F..F + 1 overflows
    case LazyFlagsKind.dec:
      cf = b != 0
      of = r == sign &- 1  // only 0x80..0 - 1 overflows
    default:
      cf = false
      of = false
    }
    let zf = r == 0
    let sf = r & sign != 0
    let holds: Bool
    switch cc >> 1 {
    case 0: holds = of
    case 1: holds = cf
    case 2: holds = zf
    case 3: holds = cf || zf
    case 4: holds = sf
    case 6: holds = sf != of
    default: holds = zf || sf != of
    }
    return cc & 1 == 0 ? holds : !holds
  }
}

/// Lazily evaluated status flags for the fast path.
///
/// Most flags an instruction computes are never read: the next arithmetic instruction overwrites
/// them first. So the fast handlers of ADD, SUB, CMP, AND, OR, XOR, TEST, INC and DEC do not
/// compute CF, PF, AF, ZF, SF and OF; they record what the flags come from (the kind of operation,
/// the operand size, the result and the two operands) in the state page
/// (`CPUStateLayout.lazyFlags`, four slots), and the flags are computed when something reads them.
/// ROL and ROR, which write only CF and OF, add those two to a pending record (bits 16-31 of
/// the kind slot say which flags it overrides, bits 32-47 hold their values) rather than
/// materializing it. A conditional jump, CMOVcc or SETcc answers from the record directly (every
/// condition but parity: ZF and SF from the result, CF and OF from the operands as `ALU` defines
/// them); everything else materializes the six flags into RFLAGS through the same `ALU` functions
/// the eager paths use, so the values cannot differ.
///
/// The record is pending only inside the fast path: the page loops, `completeFast` and the page
/// loop's hand-over to the general path materialize it before anything else can look at RFLAGS.
/// Outside them RFLAGS in the state page is always exact and the kind slot is zero, which is what
/// every other reader (the general path, exception delivery, the VMM's register accessors, the
/// binary translator) relies on. While a record is pending, RFLAGS holds every flag except the six
/// status flags.
extension CPU {
  /// What a pending record's status flags come from (slot 0, with the operand size in bits 8-15
  /// and the overridden flags in bits 16-47).
  enum LazyFlagsKind {
    /// Nothing pending: RFLAGS is exact.
    static let none: UInt64 = 0
    /// ADD: result = a + b.
    static let add: UInt64 = 1
    /// SUB and CMP: result = a - b.
    static let sub: UInt64 = 2
    /// AND, OR, XOR and TEST: CF = OF = AF = 0.
    static let logic: UInt64 = 3
    /// INC: result = a + 1, CF kept (in the record's `b` slot).
    static let inc: UInt64 = 4
    /// DEC: result = a - 1, CF kept (in the record's `b` slot).
    static let dec: UInt64 = 5
  }

  /// The record's slot 0: kind, operand size and overridden flags (`LazyFlagsKind`).
  @inline(__always) var lazyKindSlot: UInt64 {
    stateRaw.load(fromByteOffset: CPUStateLayout.lazyFlags, as: UInt64.self)
  }
  /// The result the record's flags come from (masked to the operand size).
  @inline(__always) var lazyResult: UInt64 {
    stateRaw.load(fromByteOffset: CPUStateLayout.lazyFlags + 8, as: UInt64.self)
  }
  /// The record's first operand (the destination's old value).
  @inline(__always) var lazyA: UInt64 {
    stateRaw.load(fromByteOffset: CPUStateLayout.lazyFlags + 16, as: UInt64.self)
  }
  /// The record's second operand (for INC and DEC, the CF they keep).
  @inline(__always) var lazyB: UInt64 {
    stateRaw.load(fromByteOffset: CPUStateLayout.lazyFlags + 24, as: UInt64.self)
  }

  /// Records the status flags of an operation of `kind` on `size`-byte values (all masked to the
  /// size) instead of computing them.
  @inline(__always)
  func setLazyFlags(_ kind: UInt64, size: Int, result: UInt64, a: UInt64, b: UInt64) {
    stateRaw.storeBytes(of: kind | UInt64(size) << 8, toByteOffset: CPUStateLayout.lazyFlags, as: UInt64.self)
    stateRaw.storeBytes(of: result, toByteOffset: CPUStateLayout.lazyFlags + 8, as: UInt64.self)
    stateRaw.storeBytes(of: a, toByteOffset: CPUStateLayout.lazyFlags + 16, as: UInt64.self)
    stateRaw.storeBytes(of: b, toByteOffset: CPUStateLayout.lazyFlags + 24, as: UInt64.self)
  }

  /// Whether a record is pending (RFLAGS's status flags are stale).
  @inline(__always) var lazyFlagsPending: Bool { lazyKindSlot != LazyFlagsKind.none }

  /// Writes a pending record's status flags into RFLAGS and clears it; nothing when none is pending.
  @inline(__always) func materializeFlags() {
    if lazyKindSlot != LazyFlagsKind.none { materializePendingFlags() }
  }

  /// CF (0 or 1), from the pending record or from RFLAGS.
  @inline(__always) var lazyCarry: UInt64 {
    let slot = lazyKindSlot
    if slot & (Flags.cf << 16) != 0 { return (slot >> 32) & 1 }
    switch slot & 0xFF {
    case LazyFlagsKind.none: return flags & Flags.cf
    case LazyFlagsKind.add: return lazyResult < lazyA ? 1 : 0
    case LazyFlagsKind.sub: return lazyA < lazyB ? 1 : 0
    case LazyFlagsKind.logic: return 0
    default: return lazyB
    }
  }

  /// Sets CF and OF (`values` holds just those two bits), leaving the other status flags as they
  /// are: on top of a pending record when there is one, else in RFLAGS.
  @inline(__always) func setCarryAndOverflow(_ values: UInt64) {
    let slot = lazyKindSlot
    if slot == LazyFlagsKind.none {
      setFlagsMasked(Flags.cf | Flags.of, values)
    } else {
      let overrides = (Flags.cf | Flags.of) << 16
      stateRaw.storeBytes(
        of: (slot & 0xFFFF) | overrides | values << 32, toByteOffset: CPUStateLayout.lazyFlags, as: UInt64.self)
    }
  }

  /// RFLAGS with the bits of `mask` replaced by those of `values`.
  @inline(__always) private func setFlagsMasked(_ mask: UInt64, _ values: UInt64) {
    let old = stateRaw.load(fromByteOffset: CPUStateLayout.rflags, as: UInt64.self)
    stateRaw.storeBytes(of: (old & ~mask) | values, toByteOffset: CPUStateLayout.rflags, as: UInt64.self)
  }

  /// Writes all six status flags eagerly (an instruction whose handler computes them in full):
  /// any pending record is dropped, since every flag it stands for is overwritten.
  @inline(__always) func setStatusFlagsDroppingLazy(_ f: UInt64) {
    stateRaw.storeBytes(of: LazyFlagsKind.none, toByteOffset: CPUStateLayout.lazyFlags, as: UInt64.self)
    setArithmeticFlags(f)
  }

  /// `condition(cc)` for the fast handlers: straight from a pending record, except parity and
  /// the flags a rotate put on top of one, which materialize it. JE/JNE on a pending record (the
  /// commonest) is answered inline, the rest out of line.
  @inline(__always) func lazyCondition(_ cc: UInt8) -> Bool {
    let slot = lazyKindSlot
    if cc >> 1 == 2 && slot != LazyFlagsKind.none { return (lazyResult == 0) == (cc & 1 == 0) }
    return lazyConditionOutOfLine(cc)
  }
}

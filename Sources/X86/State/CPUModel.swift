/// Which processor the model imitates; selects quirks and the instruction set.
public enum CPUModel: Sendable, Equatable {
  /// A modern x86-64 processor advertising (CPUID) only what the model implements.
  case host64
  /// Intel 8086/8088: no 0F map (0F is POP CS), unmasked shift counts, FLAGS 12-15 read as 1,
  /// PUSH SP pushes the decremented value, SALC, 60-6F alias Jcc, C0/C1 alias C2/C3, 1 MiB wrap.
  case i8086
  /// Intel 80286: FLAGS 12-15 zero in real mode, shift counts masked to 5 bits, 24-bit addresses.
  case i80286
  /// Intel 80386: 32-bit registers through 66/67, 32-bit addresses.
  case i80386

  /// Physical address mask (the address bus width).
  public var physicalAddressMask: UInt64 {
    switch self {
    case .i8086: return 0xF_FFFF
    case .i80286: return 0xFF_FFFF
    case .i80386: return 0xFFFF_FFFF
    case .host64: return (1 << 52) - 1
    }
  }

  /// True for the 16-bit-only chips (8086, 286): no 66/67 prefixes, no FS/GS, no 32-bit registers.
  public var is16BitOnly: Bool { self == .i8086 || self == .i80286 }
}

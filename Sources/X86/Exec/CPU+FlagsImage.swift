/// The FLAGS image as PUSHF and interrupts see it, and POPF/IRET loading it back.
extension CPU {
  /// Applies the model's fixed FLAGS bits (8086: 12-15 set; 286 real mode: 12-15 clear; bits 1, 3, 5).
  public func normalizeFlags(_ f: UInt64) -> UInt64 {
    var v = (f | Flags.reserved1) & ~(UInt64(1) << 3 | UInt64(1) << 5)
    switch model {
    case .i8086: v = (v | 0xF000) & 0xFFFF
    case .i80286: v = isRealMode ? v & 0x0FFF : v & 0x7FFF
    case .i80386: v &= 0x3_7FFF
    case .host64: v &= 0x3F_7FFF
    }
    return v
  }

  /// The FLAGS image PUSHF/INT push (VM and RF read as 0).
  func flagsImage() -> UInt64 { normalizeFlags(state.rflags) & ~(Flags.vm | Flags.rf) }

  /// POPF/IRET: writes FLAGS respecting CPL/IOPL and the operand size.
  func loadFlags(_ v: UInt64, size: Int) {
    var writable: UInt64 = Flags.arithmetic | Flags.tf | Flags.df | Flags.if | Flags.iopl | Flags.nt
    if model == .host64 { writable |= Flags.ac | Flags.id }
    if !isRealMode {
      let iopl = Int((state.rflags >> 12) & 3)
      if state.cpl > 0 { writable &= ~Flags.iopl }
      if state.cpl > iopl { writable &= ~Flags.if }
    }
    if size == 2 { writable &= 0xFFFF }
    state.rflags = normalizeFlags((state.rflags & ~writable) | (v & writable))
  }
}

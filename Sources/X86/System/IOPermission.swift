/// The protected-mode I/O permission check for IN, OUT, INS and OUTS (SDM vol. 1, "I/O Privilege
/// Level" and "I/O Permission Bit Map"): allowed when CPL <= IOPL outside virtual-8086 mode;
/// otherwise every bit for the accessed ports in the TSS I/O bitmap must be clear. The bitmap
/// offset is the 16-bit field at TSS offset 66H (same place in the 32-bit and 64-bit TSS); bits
/// beyond the TSS limit count as set. Failure is #GP(0).
public enum IOPermission {
  /// Throws #GP(0) unless CPL <= IOPL or the TSS I/O bitmap allows every byte of `size` at `port`.
  public static func check(
    port: UInt16, size: Int, state: CPUState, memory: some SystemMemoryAccess
  ) throws(Fault) {
    let mode = OperatingMode(state)
    if mode == .real { return }
    let iopl = Int((state.rflags >> 12) & 3)
    if mode != .virtual8086 && state.cpl <= iopl { return }
    let tr = state.segment(.tr)
    let type = UInt8(tr.attributes & 0xF)
    // Only a 32-bit/64-bit TSS has a bitmap (busy type 11 once loaded; 9 accepted too).
    guard tr.attributes & SegmentAttributes.present != 0,
      type == SystemDescriptorType.tssBusy || type == SystemDescriptorType.tssAvailable, tr.limit >= 0x67
    else { throw .gp(0) }
    let bitmapOffset = try memory.readLinear(tr.base &+ 0x66, size: 2, supervisor: true)
    let firstByte = bitmapOffset + UInt64(port >> 3)
    guard firstByte + 1 <= UInt64(tr.limit) else { throw .gp(0) }
    let bits = try memory.readLinear(tr.base &+ firstByte, size: 2, supervisor: true)
    let mask = ((UInt64(1) << UInt64(size)) - 1) << UInt64(port & 7)
    guard bits & mask == 0 else { throw .gp(0) }
  }
}

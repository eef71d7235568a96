/// The stack pointer at the current stack address size, PUSH and POP.
extension CPU {
  /// Stack address size in bytes: 8 in 64-bit mode, else SS.B ? 4 : 2.
  @inline(__always) var stackAddressSize: Int {
    if state.codeMode == .bits64 { return 8 }
    if isRealMode && model != .host64 && model != .i80386 { return 2 }
    return state.segment(.ss).attributes & 0x4000 != 0 ? 4 : 2
  }

  @inline(__always) func stackPointer() -> UInt64 { state.gpr(4) & ALU.mask(stackAddressSize) }

  @inline(__always) func setStackPointer(_ v: UInt64) { setReg(4, stackAddressSize, v) }

  /// Pushes without committing RSP; returns the new stack pointer.
  func pushValue(_ v: UInt64, size: Int, from sp: UInt64) throws(Fault) -> UInt64 {
    let m = ALU.mask(stackAddressSize)
    let nsp = (sp &- UInt64(size)) & m
    try write(seg: 2, offset: nsp, size: size, value: v)
    return nsp
  }

  func push(_ v: UInt64, size: Int) throws(Fault) {
    setStackPointer(try pushValue(v, size: size, from: stackPointer()))
  }

  func popValue(size: Int, from sp: UInt64) throws(Fault) -> (UInt64, UInt64) {
    let m = ALU.mask(stackAddressSize)
    let v = try read(seg: 2, offset: sp, size: size)
    return (v, (sp &+ UInt64(size)) & m)
  }

  func pop(size: Int) throws(Fault) -> UInt64 {
    let (v, nsp) = try popValue(size: size, from: stackPointer())
    setStackPointer(nsp)
    return v
  }
}

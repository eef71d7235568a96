/// The SSE and x87 register state and the instructions that move it as a whole (FXSAVE, FXRSTOR,
/// LDMXCSR, STMXCSR), plus the checks every SSE instruction makes before it runs.
///
/// Storage in the state page (`CPUStateLayout`): XMM0-15 at `xmm` (16 bytes each, little-endian),
/// and the first 160 bytes of the FXSAVE image at `fxLegacy`: FCW, FSW, abridged FTW, FOP, FIP,
/// FDP, MXCSR, MXCSR_MASK, then ST0-ST7 (16 bytes each). So FXSAVE is two copies and FXRSTOR two
/// copies and a check, plus the rotation between the physical register slots the state page holds
/// and the stack order (ST0 first) of the image (`CPU+X87State.swift`).
extension CPU {
  /// MXCSR bits this model implements (all of SSE's, DAZ included); FXSAVE reports it as
  /// MXCSR_MASK and LDMXCSR/FXRSTOR raise #GP(0) for any other bit.
  public static let mxcsrMask: UInt32 = 0xFFFF
  /// MXCSR after RESET and after FNINIT-like defaults: every exception masked, round to nearest.
  public static let mxcsrDefault: UInt32 = 0x1F80

  /// Byte offsets inside the FXSAVE image (SDM vol. 1, "FXSAVE Save Area").
  enum FXSAVEImage {
    static let mxcsr = 24
    static let mxcsrMask = 28
    static let xmm = 160
    /// The bytes FXSAVE writes (the rest of the 512 is reserved or the software's).
    static let written = 416
  }

  /// MXCSR.
  var mxcsr: UInt32 {
    get { stateRaw.load(fromByteOffset: CPUStateLayout.mxcsr, as: UInt32.self) }
    set {
      stateRaw.storeBytes(of: newValue, toByteOffset: CPUStateLayout.mxcsr, as: UInt32.self)
    }
  }

  /// XMM register `r` as two 64-bit halves (low, high).
  @inline(__always) func xmm(_ r: Int) -> (UInt64, UInt64) {
    let o = CPUStateLayout.xmm + 16 * r
    return (stateRaw.load(fromByteOffset: o, as: UInt64.self), stateRaw.load(fromByteOffset: o + 8, as: UInt64.self))
  }

  /// Sets XMM register `r` from two 64-bit halves.
  @inline(__always) func setXMM(_ r: Int, _ v: (UInt64, UInt64)) {
    let o = CPUStateLayout.xmm + 16 * r
    stateRaw.storeBytes(of: v.0, toByteOffset: o, as: UInt64.self)
    stateRaw.storeBytes(of: v.1, toByteOffset: o + 8, as: UInt64.self)
  }

  /// The power-on x87 and SSE state (SDM vol. 3, "Processor State After Reset"): FCW 0x0040, the
  /// other x87 registers 0, MXCSR 0x1F80, XMM0-15 zero. INIT leaves it alone.
  func resetSIMDState() {
    (stateRaw + CPUStateLayout.xmm).initializeMemory(as: UInt8.self, repeating: 0, count: 256)
    (stateRaw + CPUStateLayout.fxLegacy).initializeMemory(as: UInt8.self, repeating: 0, count: 160)
    stateRaw.storeBytes(of: UInt16(0x0040), toByteOffset: CPUStateLayout.fcw, as: UInt16.self)
    mxcsr = CPU.mxcsrDefault
    state[offset: CPUStateLayout.xcr0] = 1
  }

  /// The 512-byte FXSAVE64 image of the current x87/SSE state (what FXSAVE with REX.W stores;
  /// bytes 416-511 zero).
  public func fxsaveImage() -> [UInt8] {
    var image = [UInt8](repeating: 0, count: 512)
    image.withUnsafeMutableBytes { b in
      b.baseAddress!.copyMemory(from: stateRaw + CPUStateLayout.fxLegacy, byteCount: 160)
      (b.baseAddress! + FXSAVEImage.xmm).copyMemory(from: stateRaw + CPUStateLayout.xmm, byteCount: 256)
      b.storeBytes(of: CPU.mxcsrMask, toByteOffset: FXSAVEImage.mxcsrMask, as: UInt32.self)
      // Physical slots to stack order: image slot j is ST(j) = R((TOP + j) & 7).
      CPU.rotateX87Slots(b.baseAddress!, by: x87Top)
    }
    return image
  }

  /// Loads the x87/SSE state from a 512-byte FXSAVE image (as FXRSTOR64 does, without its
  /// checks: MXCSR bits outside `mxcsrMask` are dropped). Shorter images are ignored.
  public func loadFXSAVEImage(_ image: [UInt8]) {
    guard image.count >= FXSAVEImage.written else { return }
    image.withUnsafeBytes { b in
      (stateRaw + CPUStateLayout.fxLegacy).copyMemory(from: b.baseAddress!, byteCount: 160)
      (stateRaw + CPUStateLayout.xmm).copyMemory(from: b.baseAddress! + FXSAVEImage.xmm, byteCount: 256)
    }
    // Stack order to physical slots: Ri is image slot (i - TOP) & 7.
    CPU.rotateX87Slots(stateRaw + CPUStateLayout.fxLegacy, by: 8 - x87Top)
    mxcsr &= CPU.mxcsrMask
    stateRaw.storeBytes(of: UInt32(0), toByteOffset: CPUStateLayout.fxLegacy + FXSAVEImage.mxcsrMask, as: UInt32.self)
  }

  // MARK: Checks

  /// What every SSE instruction checks first (SDM vol. 2, exception class "SIMD"): #UD when CR0.EM
  /// is set or CR4.OSFXSR clear (the OS has not enabled SSE), #NM when CR0.TS is set (the OS
  /// switches the SIMD state lazily).
  @inline(__always) func requireSSE() throws(Fault) {
    let cr0 = state.cr0
    if cr0 & CR0.em != 0 || state.cr4 & CR4.osfxsr == 0 { throw Fault.invalidOpcode }
    if cr0 & CR0.ts != 0 { throw Fault.exception(vector: ExceptionVector.deviceNotAvailable, errorCode: nil) }
  }

  // MARK: FXSAVE, FXRSTOR, LDMXCSR, STMXCSR

  /// FXSAVE and FXSAVE64 (`wide`): 416 bytes at a 16-byte aligned address (#GP(0) otherwise);
  /// #NM when CR0.TS or CR0.EM is set. The legacy form stores FIP and FDP as offset and selector;
  /// this model keeps them as saved, so both forms store the same bytes.
  func fxsave(seg: Int, ea: UInt64) throws(Fault) {
    if state.cr0 & (CR0.ts | CR0.em) != 0 {
      throw Fault.exception(vector: ExceptionVector.deviceNotAvailable, errorCode: nil)
    }
    guard ea & 15 == 0 else { throw Fault.generalProtection() }
    try checkWrite(seg: seg, offset: ea, size: FXSAVEImage.written)
    let image = fxsaveImage()
    for i in stride(from: 0, to: FXSAVEImage.written, by: 8) {
      var q: UInt64 = 0
      for j in 0..<8 { q |= UInt64(image[i + j]) << (8 * UInt64(j)) }
      try write(seg: seg, offset: ea &+ UInt64(i), size: 8, value: q)
    }
  }

  /// FXRSTOR and FXRSTOR64: the state from a 16-byte aligned image; #GP(0) for misalignment or
  /// MXCSR bits outside `mxcsrMask`, #NM when CR0.TS or CR0.EM is set. Nothing changes on a fault.
  func fxrstor(seg: Int, ea: UInt64) throws(Fault) {
    if state.cr0 & (CR0.ts | CR0.em) != 0 {
      throw Fault.exception(vector: ExceptionVector.deviceNotAvailable, errorCode: nil)
    }
    guard ea & 15 == 0 else { throw Fault.generalProtection() }
    var image = [UInt8](repeating: 0, count: 512)
    for i in stride(from: 0, to: FXSAVEImage.written, by: 8) {
      let q = try read(seg: seg, offset: ea &+ UInt64(i), size: 8)
      for j in 0..<8 { image[i + j] = UInt8(truncatingIfNeeded: q >> (8 * UInt64(j))) }
    }
    let newMXCSR = image.withUnsafeBytes { $0.load(fromByteOffset: FXSAVEImage.mxcsr, as: UInt32.self) }
    guard newMXCSR & ~CPU.mxcsrMask == 0 else { throw Fault.generalProtection() }
    loadFXSAVEImage(image)
  }

  /// LDMXCSR m32: #GP(0) for bits outside `mxcsrMask`.
  func ldmxcsr(seg: Int, ea: UInt64) throws(Fault) {
    try requireSSE()
    let v = UInt32(truncatingIfNeeded: try read(seg: seg, offset: ea, size: 4))
    guard v & ~CPU.mxcsrMask == 0 else { throw Fault.generalProtection() }
    mxcsr = v
  }

  /// STMXCSR m32.
  func stmxcsr(seg: Int, ea: UInt64) throws(Fault) {
    try requireSSE()
    try write(seg: seg, offset: ea, size: 4, value: UInt64(mxcsr))
  }
}

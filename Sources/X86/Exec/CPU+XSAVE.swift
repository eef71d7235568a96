/// The XSAVE feature set for the state components this model has: x87 (component 0) and SSE
/// (component 1). XCR0 lives in the state page (`CPUStateLayout.xcr0`); CPUID leaf 0DH reports
/// the components and the 576-byte area (`CPUIDTable`).
///
/// The area is the 512-byte legacy region (the FXSAVE image: the x87 part in bytes 0-23 and
/// 32-159, MXCSR and MXCSR_MASK in 24-31, XMM0-15 in 160-415) followed by the 64-byte header,
/// whose first quadword is XSTATE_BV. Only the standard form exists here (no XSAVEC, XSAVES or
/// XSAVEOPT, which CPUID leaf 0DH sub-leaf 1 does not advertise; their encodings raise #UD).
/// The model does not track the init optimization: XINUSE is all ones, so XSAVE sets XSTATE_BV
/// for every requested component (the SDM allows XINUSE[i] = 1 at any time).
extension CPU {
  /// The state components this model supports (x87, SSE): CPUID.(EAX=0DH,ECX=0):EAX.
  public static let supportedXCR0: UInt64 = 0b11
  /// Bytes of the XSAVE area for every supported component: legacy region and header.
  public static let xsaveAreaSize = 576

  /// XCR0.
  var xcr0: UInt64 {
    get { stateRaw.load(fromByteOffset: CPUStateLayout.xcr0, as: UInt64.self) }
    set { stateRaw.storeBytes(of: newValue, toByteOffset: CPUStateLayout.xcr0, as: UInt64.self) }
  }

  /// #UD unless the OS enabled XSAVE (CR4.OSXSAVE), the first check of all five instructions.
  private func requireOSXSAVE() throws(Fault) {
    if state.cr4 & CR4.osxsave == 0 { throw Fault.invalidOpcode }
  }

  /// XGETBV: EDX:EAX = XCR[ECX]. Only XCR0 exists (XGETBV with ECX = 1 needs XGETBV1, not
  /// modelled): #GP(0) for any other ECX. Any privilege level.
  func executeXGETBV() throws(Fault) {
    try requireOSXSAVE()
    guard state.gpr(1) & 0xFFFF_FFFF == 0 else { throw Fault.generalProtection() }
    state.setGPR(0, xcr0 & 0xFFFF_FFFF)
    state.setGPR(2, xcr0 >> 32)
  }

  /// XSETBV: XCR[ECX] = EDX:EAX, at CPL 0 only. #GP(0) for ECX != 0, for bits outside
  /// `supportedXCR0`, and for a value without the x87 bit (bit 0 must stay set).
  func executeXSETBV() throws(Fault) {
    try requireOSXSAVE()
    guard state.cpl == 0 else { throw Fault.generalProtection() }
    guard state.gpr(1) & 0xFFFF_FFFF == 0 else { throw Fault.generalProtection() }
    let value = (state.gpr(2) & 0xFFFF_FFFF) << 32 | state.gpr(0) & 0xFFFF_FFFF
    guard value & ~CPU.supportedXCR0 == 0, value & 1 != 0 else { throw Fault.generalProtection() }
    xcr0 = value
  }

  /// The requested-feature bitmap: EDX:EAX AND XCR0.
  private var requestedFeatures: UInt64 {
    ((state.gpr(2) & 0xFFFF_FFFF) << 32 | state.gpr(0) & 0xFFFF_FFFF) & xcr0
  }

  /// The checks XSAVE and XRSTOR share: #UD without CR4.OSXSAVE, #NM with CR0.TS, #GP(0) for an
  /// area not aligned to 64 bytes.
  private func checkXSAVEArea(ea: UInt64) throws(Fault) {
    try requireOSXSAVE()
    if state.cr0 & CR0.ts != 0 {
      throw Fault.exception(vector: ExceptionVector.deviceNotAvailable, errorCode: nil)
    }
    guard ea & 63 == 0 else { throw Fault.generalProtection() }
  }

  /// The byte ranges of the legacy region that hold component `component` (0: x87, 1: SSE).
  private static func legacyRanges(component: Int) -> [Range<Int>] {
    component == 0 ? [0..<24, 32..<160] : [24..<32, 160..<416]
  }

  /// XSAVE (and XSAVE64, which stores the same bytes here: the model keeps FIP and FDP as
  /// saved). Writes the requested components' parts of the legacy region and XSTATE_BV; the
  /// rest of the area is left alone. The whole area is checked for writing first, so a page
  /// fault leaves memory unchanged.
  func executeXSAVE(seg: Int, ea: UInt64) throws(Fault) {
    try checkXSAVEArea(ea: ea)
    try checkWrite(seg: seg, offset: ea, size: CPU.xsaveAreaSize)
    let rfbm = requestedFeatures
    let image = fxsaveImage()
    for component in 0..<2 where rfbm & (1 << UInt64(component)) != 0 {
      for range in CPU.legacyRanges(component: component) {
        for i in stride(from: range.lowerBound, to: range.upperBound, by: 8) {
          var q: UInt64 = 0
          for j in 0..<8 { q |= UInt64(image[i + j]) << (8 * UInt64(j)) }
          try write(seg: seg, offset: ea &+ UInt64(i), size: 8, value: q)
        }
      }
    }
    let header = ea &+ 512
    let xstateBV = try read(seg: seg, offset: header, size: 8)
    try write(seg: seg, offset: header, size: 8, value: xstateBV | rfbm)
  }

  /// XRSTOR (standard form): for each requested component, loads it from the area when its
  /// XSTATE_BV bit is set and initializes it otherwise (x87: FCW 037FH, everything else zero and
  /// every register empty; SSE: XMM0-15 zero). MXCSR comes from the area whenever SSE is
  /// requested, as in the SDM's standard form. #GP(0), with nothing changed, for XSTATE_BV bits
  /// outside XCR0, a non-zero XCOMP_BV or reserved header bytes 16-23 (the compacted form is not
  /// modelled), and for reserved MXCSR bits.
  func executeXRSTOR(seg: Int, ea: UInt64) throws(Fault) {
    try checkXSAVEArea(ea: ea)
    let rfbm = requestedFeatures
    let header = ea &+ 512
    let xstateBV = try read(seg: seg, offset: header, size: 8)
    let xcompBV = try read(seg: seg, offset: header &+ 8, size: 8)
    let reserved = try read(seg: seg, offset: header &+ 16, size: 8)
    guard xstateBV & ~xcr0 == 0, xcompBV == 0, reserved == 0 else { throw Fault.generalProtection() }
    var image = fxsaveImage()
    for component in 0..<2 where rfbm & (1 << UInt64(component)) != 0 {
      // MXCSR and MXCSR_MASK (bytes 24-31) are read even when the component is initialized.
      let fromMemory = xstateBV & (1 << UInt64(component)) != 0
      for range in CPU.legacyRanges(component: component) {
        for i in stride(from: range.lowerBound, to: range.upperBound, by: 8) {
          let load = fromMemory || (component == 1 && i == 24)
          let q = load ? try read(seg: seg, offset: ea &+ UInt64(i), size: 8) : 0
          for j in 0..<8 { image[i + j] = UInt8(truncatingIfNeeded: q >> (8 * UInt64(j))) }
        }
      }
      if component == 0 && !fromMemory {
        image[0] = 0x7F  // FCW 037FH
        image[1] = 0x03
      }
    }
    if rfbm & 0b10 != 0 {
      let newMXCSR = image.withUnsafeBytes { $0.load(fromByteOffset: FXSAVEImage.mxcsr, as: UInt32.self) }
      guard newMXCSR & ~CPU.mxcsrMask == 0 else { throw Fault.generalProtection() }
    }
    loadFXSAVEImage(image)
  }
}

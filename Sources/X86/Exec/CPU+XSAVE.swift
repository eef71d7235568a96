/// The XSAVE feature set for the two state components the model has: x87 (bit 0) and SSE (bit 1).
/// No AVX or later components, no compacted form (XSAVEC), no supervisor states (XSAVES).
///
/// XCR0 lives in the state page (`CPUStateLayout.xcr0`). The XSAVE area's legacy region is the
/// FXSAVE image (`fxsaveImage()`, x87 registers in stack order); the header follows at offset
/// 512: XSTATE_BV (bytes 0-7), XCOMP_BV (bytes 8-15), the rest reserved (SDM vol. 1, ch. 13).
///
/// The model does not track the init optimization: XINUSE is taken to be 1 for every component,
/// which the SDM allows (a component in its initial configuration may be reported either way).
/// XSAVEOPT therefore writes what XSAVE writes.
extension CPU {
  /// XCR0 bits this model supports: x87 and SSE.
  static let xcr0Supported: UInt64 = 0x3

  /// Byte offsets of the XSAVE header fields from the start of the area.
  enum XSAVEHeader {
    static let xstateBV = 512
    static let xcompBV = 520
    static let reserved = 528
  }

  /// XCR0.
  var xcr0: UInt64 {
    get { state[offset: CPUStateLayout.xcr0] }
    set { state[offset: CPUStateLayout.xcr0] = newValue }
  }

  /// What every XSAVE-family instruction checks first: #UD without CR4.OSXSAVE, #NM with CR0.TS,
  /// #GP(0) for an area not aligned on 64 bytes.
  func checkXSAVEArea(ea: UInt64) throws(Fault) {
    if model != .host64 || state.cr4 & CR4.osxsave == 0 { throw Fault.invalidOpcode }
    if state.cr0 & CR0.ts != 0 { throw Fault.exception(vector: ExceptionVector.deviceNotAvailable, errorCode: nil) }
    guard ea & 63 == 0 else { throw Fault.generalProtection() }
  }

  /// The requested-feature bitmap: EDX:EAX & XCR0.
  var xsaveRequestedFeatures: UInt64 {
    (state.gpr(2) << 32 | state.gpr(0) & 0xFFFF_FFFF) & xcr0
  }

  /// The 8-byte-aligned byte ranges of the legacy region each component owns: x87 bytes 0-23 and
  /// 32-159, SSE bytes 24-31 (MXCSR, MXCSR_MASK) and 160-415 (XMM0-15).
  static func xsaveRanges(component: Int) -> [Range<Int>] {
    component == 0 ? [0..<24, 32..<160] : [24..<32, 160..<416]
  }

  /// XSAVE, XSAVE64, XSAVEOPT, XSAVEOPT64: the requested components into the legacy region, and
  /// XSTATE_BV's requested bits set (the other bits and the rest of the header are left alone).
  /// The 64-bit forms differ from the others only in the FIP/FDP format, which the model keeps as
  /// saved (as FXSAVE does).
  func xsave(seg: Int, ea: UInt64) throws(Fault) {
    try checkXSAVEArea(ea: ea)
    let rfbm = xsaveRequestedFeatures
    try probeWrite(seg: seg, offset: ea, size: XSAVEHeader.xstateBV + 8)
    let oldBV = try read(seg: seg, offset: ea &+ UInt64(XSAVEHeader.xstateBV), size: 8)
    let image = fxsaveImage()
    for component in 0..<2 where rfbm & (1 << UInt64(component)) != 0 {
      for range in CPU.xsaveRanges(component: component) {
        for i in stride(from: range.lowerBound, to: range.upperBound, by: 8) {
          var q: UInt64 = 0
          for j in 0..<8 { q |= UInt64(image[i + j]) << (8 * UInt64(j)) }
          try write(seg: seg, offset: ea &+ UInt64(i), size: 8, value: q)
        }
      }
    }
    try write(seg: seg, offset: ea &+ UInt64(XSAVEHeader.xstateBV), size: 8, value: oldBV | rfbm)
  }

  /// XRSTOR and XRSTOR64 (standard form only). #GP(0), with nothing restored, when XSTATE_BV has
  /// a bit XCR0 lacks, XCOMP_BV is not zero (no compacted form), header bytes 16-23 are not zero,
  /// or (SSE requested) MXCSR has reserved bits. Then each requested component is loaded when its
  /// XSTATE_BV bit is set and put in its initial configuration when it is clear; MXCSR is loaded
  /// whenever SSE is requested, whatever XSTATE_BV says.
  func xrstor(seg: Int, ea: UInt64) throws(Fault) {
    try checkXSAVEArea(ea: ea)
    let rfbm = xsaveRequestedFeatures
    let xstateBV = try read(seg: seg, offset: ea &+ UInt64(XSAVEHeader.xstateBV), size: 8)
    let xcompBV = try read(seg: seg, offset: ea &+ UInt64(XSAVEHeader.xcompBV), size: 8)
    let reserved = try read(seg: seg, offset: ea &+ UInt64(XSAVEHeader.reserved), size: 8)
    guard xstateBV & ~xcr0 == 0, xcompBV == 0, reserved == 0 else { throw Fault.generalProtection() }
    var image = [UInt8](repeating: 0, count: 512)
    for component in 0..<2 where rfbm & (1 << UInt64(component)) != 0 {
      for range in CPU.xsaveRanges(component: component) {
        for i in stride(from: range.lowerBound, to: range.upperBound, by: 8) {
          let q = try read(seg: seg, offset: ea &+ UInt64(i), size: 8)
          for j in 0..<8 { image[i + j] = UInt8(truncatingIfNeeded: q >> (8 * UInt64(j))) }
        }
      }
    }
    let newMXCSR = image.withUnsafeBytes { $0.load(fromByteOffset: FXSAVEImage.mxcsr, as: UInt32.self) }
    if rfbm & 2 != 0 && newMXCSR & ~CPU.mxcsrMask != 0 { throw Fault.generalProtection() }

    if rfbm & 1 != 0 {
      if xstateBV & 1 != 0 {
        image.withUnsafeMutableBytes { b in
          // Stack order to physical slots, by the TOP being loaded.
          let top = Int((b.load(fromByteOffset: 2, as: UInt16.self) >> 11) & 7)
          CPU.rotateX87Slots(b.baseAddress!, by: 8 - top)
          (stateRaw + CPUStateLayout.fxLegacy).copyMemory(from: b.baseAddress!, byteCount: 24)
          (stateRaw + CPUStateLayout.fxLegacy + 32).copyMemory(from: b.baseAddress! + 32, byteCount: 128)
        }
      } else {
        initializeX87Component()
      }
    }
    if rfbm & 2 != 0 {
      mxcsr = newMXCSR
      if xstateBV & 2 != 0 {
        image.withUnsafeBytes { b in
          (stateRaw + CPUStateLayout.xmm).copyMemory(from: b.baseAddress! + FXSAVEImage.xmm, byteCount: 256)
        }
      } else {
        (stateRaw + CPUStateLayout.xmm).initializeMemory(as: UInt8.self, repeating: 0, count: 256)
      }
    }
  }

  /// The x87 component's initial configuration (SDM vol. 1, "Processor Tracking of XSAVE-Managed
  /// State"): FCW 037FH, FSW 0, every register empty, FOP/FIP/FDP 0, ST0-7 zero.
  func initializeX87Component() {
    (stateRaw + CPUStateLayout.fxLegacy).initializeMemory(as: UInt8.self, repeating: 0, count: 24)
    (stateRaw + CPUStateLayout.fxLegacy + 32).initializeMemory(as: UInt8.self, repeating: 0, count: 128)
    x87ControlWord = 0x037F
  }

  /// XGETBV: EDX:EAX = XCR0 for ECX = 0; #GP(0) for any other ECX (no XGETBV1); #UD without
  /// CR4.OSXSAVE. Allowed at any privilege level.
  func executeXGETBV() throws(Fault) {
    if model != .host64 || state.cr4 & CR4.osxsave == 0 { throw Fault.invalidOpcode }
    guard state.gpr(1) & 0xFFFF_FFFF == 0 else { throw Fault.generalProtection() }
    state.setGPR(0, xcr0 & 0xFFFF_FFFF)
    state.setGPR(2, xcr0 >> 32)
  }

  /// XSETBV: XCR0 = EDX:EAX. #UD without CR4.OSXSAVE; #GP(0) outside CPL 0, for ECX other than 0,
  /// with bit 0 (x87) clear, or with any bit other than x87 and SSE.
  func executeXSETBV() throws(Fault) {
    if model != .host64 || state.cr4 & CR4.osxsave == 0 { throw Fault.invalidOpcode }
    try requireCPL0()
    let value = state.gpr(2) << 32 | state.gpr(0) & 0xFFFF_FFFF
    guard state.gpr(1) & 0xFFFF_FFFF == 0, value & 1 != 0, value & ~CPU.xcr0Supported == 0 else {
      throw Fault.generalProtection()
    }
    xcr0 = value
  }
}

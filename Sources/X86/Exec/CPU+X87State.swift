/// The x87 register state as the x87 instructions see it: the control word (FCW), the status word
/// (FSW, TOP in bits 11-13), the abridged tag byte and the eight PHYSICAL registers R0-R7.
///
/// Storage: the FXSAVE legacy area of the state page (`CPUStateLayout.fxLegacy`), shared with the
/// MMX code (`CPU+MMX.swift`): FCW +0, FSW +2, abridged tag +4 (bit i: Ri not empty), FOP +6,
/// FIP +8, FDP +16, and Ri at +32+16*i (slot i is Ri, not ST(i)). ST(j) is R((TOP+j)&7).
/// FXSAVE's image is in stack order (ST0 first); `fxsaveImage()` and `loadFXSAVEImage(_:)`
/// rotate between the two.
extension CPU {
  /// FSW bits (SDM vol. 1, "x87 FPU Status Register").
  enum X87Status {
    static let invalid: UInt16 = 0x0001
    static let denormal: UInt16 = 0x0002
    static let overflow: UInt16 = 0x0008
    static let underflow: UInt16 = 0x0010
    static let precision: UInt16 = 0x0020
    static let stackFault: UInt16 = 0x0040
    static let errorSummary: UInt16 = 0x0080
    static let c0: UInt16 = 0x0100
    static let c1: UInt16 = 0x0200
    static let c2: UInt16 = 0x0400
    static let c3: UInt16 = 0x4000
    static let busy: UInt16 = 0x8000
    static let topMask: UInt16 = 0x3800
    /// The six exception flags (IE, DE, ZE, OE, UE, PE).
    static let exceptions: UInt16 = 0x003F
  }

  private static let x87ControlOffset = CPUStateLayout.fxLegacy
  private static let x87OpcodeOffset = CPUStateLayout.fxLegacy + 6
  private static let x87InstructionPointerOffset = CPUStateLayout.fxLegacy + 8
  private static let x87DataPointerOffset = CPUStateLayout.fxLegacy + 16
  private static let x87RegisterOffset = CPUStateLayout.fxLegacy + 32

  /// The x87 control word (FCW).
  var x87ControlWord: UInt16 {
    get { stateRaw.load(fromByteOffset: CPU.x87ControlOffset, as: UInt16.self) }
    set { stateRaw.storeBytes(of: newValue, toByteOffset: CPU.x87ControlOffset, as: UInt16.self) }
  }

  /// TOP, the physical register number of ST(0).
  var x87Top: Int {
    get { Int((x87StatusWord >> 11) & 7) }
    set { x87StatusWord = (x87StatusWord & ~X87Status.topMask) | UInt16((newValue & 7) << 11) }
  }

  /// The physical register number of ST(`i`).
  @inline(__always) func x87Physical(_ i: Int) -> Int { (x87Top + i) & 7 }

  /// Physical register Ri.
  func x87Register(physical i: Int) -> X87Extended {
    let o = CPU.x87RegisterOffset + 16 * (i & 7)
    return X87Extended(
      significand: stateRaw.load(fromByteOffset: o, as: UInt64.self),
      signExponent: stateRaw.load(fromByteOffset: o + 8, as: UInt16.self))
  }

  /// Writes physical register Ri (bytes 10-15 of its slot stay zero).
  func setX87Register(physical i: Int, _ v: X87Extended) {
    let o = CPU.x87RegisterOffset + 16 * (i & 7)
    stateRaw.storeBytes(of: v.significand, toByteOffset: o, as: UInt64.self)
    stateRaw.storeBytes(of: v.signExponent, toByteOffset: o + 8, as: UInt16.self)
    stateRaw.storeBytes(of: UInt16(0), toByteOffset: o + 10, as: UInt16.self)
    stateRaw.storeBytes(of: UInt32(0), toByteOffset: o + 12, as: UInt32.self)
  }

  /// Whether ST(`i`) is empty.
  func x87IsEmpty(_ i: Int) -> Bool { x87AbridgedTag & (1 << UInt8(x87Physical(i))) == 0 }

  /// Marks ST(`i`) empty or not.
  func x87SetEmpty(_ i: Int, _ empty: Bool) {
    let bit = UInt8(1) << UInt8(x87Physical(i))
    x87AbridgedTag = empty ? x87AbridgedTag & ~bit : x87AbridgedTag | bit
  }

  /// The full 16-bit tag word (two bits per physical register: 00 valid, 01 zero, 10 special,
  /// 11 empty), derived from the abridged tag and the register contents (SDM vol. 1, "FXSAVE").
  var x87FullTagWord: UInt16 {
    var word: UInt16 = 0
    for i in 0..<8 {
      let tag: UInt16
      if x87AbridgedTag & (1 << UInt8(i)) == 0 {
        tag = 3
      } else {
        tag = x87Register(physical: i).tagClass
      }
      word |= tag << UInt16(2 * i)
    }
    return word
  }

  /// Rotates the eight 16-byte register slots of an FXSAVE legacy area by `by` positions:
  /// destination slot j takes source slot (j + by) & 7.
  static func rotateX87Slots(_ bytes: UnsafeMutableRawPointer, by: Int) {
    var copy = [UInt8](repeating: 0, count: 128)
    copy.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: bytes + 32, byteCount: 128) }
    copy.withUnsafeBytes { c in
      for j in 0..<8 {
        (bytes + 32 + 16 * j).copyMemory(from: c.baseAddress! + 16 * ((j + by) & 7), byteCount: 16)
      }
    }
  }
}

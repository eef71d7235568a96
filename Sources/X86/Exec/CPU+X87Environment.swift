/// The x87 environment: FNSTENV, FLDENV, FNSAVE, FRSTOR in their four layouts (16- or 32-bit
/// operand size; real/virtual-8086 or protected mode: SDM vol. 1, figures 8-9 to 8-12), and the
/// last instruction's opcode and pointers (FOP, FIP/FCS, FDP/FDS) they store.
///
/// The pointers live where FXSAVE keeps them (`CPUStateLayout.fxLegacy` + 6, + 8, + 16): in
/// 64-bit mode FIP and FDP as 64-bit offsets, elsewhere as FXSAVE's 32-bit layout (offset, then
/// the selector at + 12 and + 20), so FXSAVE stores what the mode's format wants. In 64-bit mode
/// no selector is kept: the stored environments hold zero selectors. In real and
/// virtual-8086 mode the environments hold linear addresses (selector * 16 + offset). Every x87
/// instruction but the control ones (FNINIT, FNCLEX, FLDCW, FNSTCW, FNSTSW, FNSTENV, FLDENV,
/// FNSAVE, FRSTOR) records FOP and FIP; those with a memory operand also FDP, the others keep
/// the previous FDP (as the host does).
extension CPU {
  private static let fopOffset = CPUStateLayout.fxLegacy + 6
  private static let fipOffset = CPUStateLayout.fxLegacy + 8
  private static let fdpOffset = CPUStateLayout.fxLegacy + 16

  /// Whether `ins` is an x87 control instruction (one that does not update FOP/FIP/FDP).
  static func isX87Control(_ ins: DecodedInstruction) -> Bool {
    let reg = (ins.modrm >> 3) & 7
    if ins.hasMemoryOperand {
      switch (ins.opcode, reg) {
      case (0xD9, 4...7), (0xDD, 4), (0xDD, 6), (0xDD, 7): return true
      default: return false
      }
    }
    return (ins.opcode == 0xDB && (ins.modrm == 0xE2 || ins.modrm == 0xE3)) || (ins.opcode == 0xDF && ins.modrm == 0xE0)
  }

  /// Records FOP, FIP and (with a memory operand) FDP for a non-control x87 instruction about to
  /// execute: nothing when it will not run (#NM, or #MF for the pending exception).
  func recordX87Pointers(_ ins: DecodedInstruction, ea: UInt64) {
    guard state.cr0 & (CR0.em | CR0.ts) == 0, x87StatusWord & X87Status.errorSummary == 0,
      !CPU.isX87Control(ins)
    else { return }
    let fop = UInt16(ins.opcode & 7) << 8 | UInt16(ins.modrm)
    stateRaw.storeBytes(of: fop, toByteOffset: CPU.fopOffset, as: UInt16.self)
    let rip = state.rip
    let seg = Int(ins.segment)
    if state.codeMode == .bits64 {
      stateRaw.storeBytes(of: rip, toByteOffset: CPU.fipOffset, as: UInt64.self)
      if ins.hasMemoryOperand { stateRaw.storeBytes(of: ea, toByteOffset: CPU.fdpOffset, as: UInt64.self) }
    } else {
      let cs = UInt64(state.segmentSelector(1))
      stateRaw.storeBytes(
        of: UInt64(UInt32(truncatingIfNeeded: rip)) | cs << 32, toByteOffset: CPU.fipOffset, as: UInt64.self)
      if ins.hasMemoryOperand {
        let ds = UInt64(state.segmentSelector(seg))
        stateRaw.storeBytes(
          of: UInt64(UInt32(truncatingIfNeeded: ea)) | ds << 32, toByteOffset: CPU.fdpOffset, as: UInt64.self)
      }
    }
  }

  /// The environment's pointer fields in the current mode.
  var x87Pointers: (fop: UInt16, fip: UInt64, fcs: UInt16, fdp: UInt64, fds: UInt16) {
    let fop = stateRaw.load(fromByteOffset: CPU.fopOffset, as: UInt16.self) & 0x7FF
    let fip = stateRaw.load(fromByteOffset: CPU.fipOffset, as: UInt64.self)
    let fdp = stateRaw.load(fromByteOffset: CPU.fdpOffset, as: UInt64.self)
    if state.codeMode == .bits64 {
      // No selectors in 64-bit mode: the host stores zeros (Intel too, where FCS and FDS are
      // deprecated).
      return (fop, fip, 0, fdp, 0)
    }
    return (
      fop, fip & 0xFFFF_FFFF, UInt16(truncatingIfNeeded: fip >> 32), fdp & 0xFFFF_FFFF,
      UInt16(truncatingIfNeeded: fdp >> 32)
    )
  }

  /// Sets the pointers from a loaded environment (in 64-bit mode the selectors are dropped).
  func setX87Pointers(fop: UInt16, fip: UInt64, fcs: UInt16, fdp: UInt64, fds: UInt16) {
    stateRaw.storeBytes(of: fop & 0x7FF, toByteOffset: CPU.fopOffset, as: UInt16.self)
    if state.codeMode == .bits64 {
      stateRaw.storeBytes(of: fip, toByteOffset: CPU.fipOffset, as: UInt64.self)
      stateRaw.storeBytes(of: fdp, toByteOffset: CPU.fdpOffset, as: UInt64.self)
    } else {
      stateRaw.storeBytes(of: (fip & 0xFFFF_FFFF) | UInt64(fcs) << 32, toByteOffset: CPU.fipOffset, as: UInt64.self)
      stateRaw.storeBytes(of: (fdp & 0xFFFF_FFFF) | UInt64(fds) << 32, toByteOffset: CPU.fdpOffset, as: UInt64.self)
    }
  }

  /// Real-address or virtual-8086 mode: the environment layouts with linear addresses.
  var x87RealLayout: Bool { isRealMode || state.rflags & Flags.vm != 0 }

  /// The 14- or 28-byte environment image (reserved halves of the 32-bit layouts read 0xFFFF, as
  /// the host stores them).
  func x87EnvironmentImage(wide: Bool) -> [UInt8] {
    let p = x87Pointers
    let tag = x87FullTagWord
    var words: [UInt32]
    if x87RealLayout {
      let ip = UInt32(truncatingIfNeeded: (UInt64(p.fcs) << 4) &+ p.fip)
      let dp = UInt32(truncatingIfNeeded: (UInt64(p.fds) << 4) &+ p.fdp)
      if wide {
        words = [
          ip & 0xFFFF, UInt32(p.fop) | (ip >> 16) << 12, dp & 0xFFFF, (dp >> 16) << 12,
        ]
      } else {
        words = [
          ip & 0xFFFF, UInt32(p.fop) | ((ip >> 16) & 0xF) << 12, dp & 0xFFFF, ((dp >> 16) & 0xF) << 12,
        ]
      }
    } else if wide {
      words = [
        UInt32(truncatingIfNeeded: p.fip), UInt32(p.fcs) | UInt32(p.fop) << 16, UInt32(truncatingIfNeeded: p.fdp),
        UInt32(p.fds),
      ]
    } else {
      words = [UInt32(p.fip & 0xFFFF), UInt32(p.fcs), UInt32(p.fdp & 0xFFFF), UInt32(p.fds)]
    }
    words = [UInt32(x87ControlWord), UInt32(x87StatusWord), UInt32(tag)] + words
    var bytes: [UInt8] = []
    for (i, w) in words.enumerated() {
      if wide {
        // Reserved upper halves: the control, status and tag words, and in protected mode the
        // FDS dword; in the real-mode layout the two low-order pointer words.
        let reserved = i < 3 || (!x87RealLayout && i == 6) || (x87RealLayout && (i == 3 || i == 5))
        let v = reserved ? w | 0xFFFF_0000 : w
        bytes += (0..<4).map { UInt8(truncatingIfNeeded: v >> UInt32(8 * $0)) }
      } else {
        bytes += [UInt8(truncatingIfNeeded: w), UInt8(truncatingIfNeeded: w >> 8)]
      }
    }
    return bytes
  }

  /// Loads an environment image (`wide`: the 28-byte layouts).
  func loadX87Environment(_ b: [UInt8], wide: Bool) {
    func word(_ i: Int) -> UInt32 {
      wide
        ? UInt32(b[4 * i]) | UInt32(b[4 * i + 1]) << 8 | UInt32(b[4 * i + 2]) << 16 | UInt32(b[4 * i + 3]) << 24
        : UInt32(b[2 * i]) | UInt32(b[2 * i + 1]) << 8
    }
    // The reserved bits as FLDCW leaves them: 6 set, 7 and 13-15 clear (the host).
    x87ControlWord = UInt16(truncatingIfNeeded: word(0)) & 0x1F3F | 0x40
    x87StatusWord = UInt16(truncatingIfNeeded: word(1))
    let tag = word(2)
    var abridged: UInt8 = 0
    for i in 0..<8 where (tag >> UInt32(2 * i)) & 3 != 3 { abridged |= 1 << UInt8(i) }
    x87AbridgedTag = abridged
    if x87RealLayout {
      let high: UInt32 = wide ? 0xFFFF : 0xF
      let ip = (word(3) & 0xFFFF) | ((word(4) >> 12) & high) << 16
      let dp = (word(5) & 0xFFFF) | ((word(6) >> 12) & high) << 16
      setX87Pointers(fop: UInt16(word(4) & 0x7FF), fip: UInt64(ip), fcs: 0, fdp: UInt64(dp), fds: 0)
    } else if wide {
      setX87Pointers(
        fop: UInt16((word(4) >> 16) & 0x7FF), fip: UInt64(word(3)), fcs: UInt16(truncatingIfNeeded: word(4)),
        fdp: UInt64(word(5)), fds: UInt16(truncatingIfNeeded: word(6)))
    } else {
      setX87Pointers(
        fop: 0, fip: UInt64(word(3)), fcs: UInt16(truncatingIfNeeded: word(4)), fdp: UInt64(word(5)),
        fds: UInt16(truncatingIfNeeded: word(6)))
    }
    updateX87ErrorSummary()
  }

  /// Writes `bytes` at seg:ea in naturally sized pieces (the caller has checked the range).
  func writeX87Bytes(seg: Int, ea: UInt64, _ bytes: [UInt8]) throws(Fault) {
    var i = 0
    while i < bytes.count {
      let n = bytes.count - i >= 8 ? 8 : (bytes.count - i >= 4 ? 4 : (bytes.count - i >= 2 ? 2 : 1))
      var v: UInt64 = 0
      for j in 0..<n { v |= UInt64(bytes[i + j]) << UInt64(8 * j) }
      try write(seg: seg, offset: ea &+ UInt64(i), size: n, value: v)
      i += n
    }
  }

  /// Reads `count` bytes at seg:ea. The first field (FCW, a word in the 16-bit formats and a
  /// doubleword in the 32-bit ones) and then the last byte are read first, in that order: across
  /// a page boundary the host's #PF reports the first of those accesses that faults in CR2
  /// (FLDENV, FRSTOR).
  func readX87Bytes(seg: Int, ea: UInt64, count: Int) throws(Fault) -> [UInt8] {
    _ = try read(seg: seg, offset: ea, size: count == 14 || count == 94 ? 2 : 4)
    _ = try read(seg: seg, offset: ea &+ UInt64(count - 1), size: 1)
    var out: [UInt8] = []
    out.reserveCapacity(count)
    var i = 0
    while i < count {
      let n = count - i >= 8 ? 8 : (count - i >= 4 ? 4 : (count - i >= 2 ? 2 : 1))
      let v = try read(seg: seg, offset: ea &+ UInt64(i), size: n)
      for j in 0..<n { out.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * j))) }
      i += n
    }
    return out
  }

  /// FNSTENV (D9 /6), FLDENV (D9 /4), FNSAVE (DD /6), FRSTOR (DD /4).
  func executeX87Environment(_ ins: DecodedInstruction, reg: Int, seg: Int, ea: UInt64) throws(Fault) {
    let wide = ins.operandSize != 2
    let envSize = wide ? 28 : 14
    let full = ins.opcode == 0xDD
    let size = envSize + (full ? 80 : 0)
    if reg == 6 {
      try requireX87(waiting: false)
      try checkWrite(seg: seg, offset: ea, size: size)
      var image = x87EnvironmentImage(wide: wide)
      if full {
        for i in 0..<8 {
          let v = x87Register(physical: x87Physical(i))
          image += (0..<8).map { UInt8(truncatingIfNeeded: v.significand >> UInt64(8 * $0)) }
          image += [UInt8(truncatingIfNeeded: v.signExponent), UInt8(truncatingIfNeeded: v.signExponent >> 8)]
        }
      }
      try writeX87Bytes(seg: seg, ea: ea, image)
      if full {
        // FNSAVE then initializes the FPU as FNINIT does.
        x87ControlWord = 0x037F
        x87StatusWord = 0
        x87AbridgedTag = 0
        (stateRaw + CPUStateLayout.fxLegacy + 6).initializeMemory(as: UInt8.self, repeating: 0, count: 18)
      } else {
        // FNSTENV masks every exception after storing.
        x87ControlWord |= X87Status.exceptions
        updateX87ErrorSummary()
      }
    } else {
      try requireX87(waiting: true)
      let image = try readX87Bytes(seg: seg, ea: ea, count: size)
      loadX87Environment(image, wide: wide)
      if full {
        for i in 0..<8 {
          let o = envSize + 10 * i
          var significand: UInt64 = 0
          for j in 0..<8 { significand |= UInt64(image[o + j]) << UInt64(8 * j) }
          let se = UInt16(image[o + 8]) | UInt16(image[o + 9]) << 8
          setX87Register(physical: x87Physical(i), X87Extended(significand: significand, signExponent: se))
        }
      }
    }
  }
}

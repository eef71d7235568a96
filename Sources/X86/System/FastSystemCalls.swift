/// SYSCALL/SYSRET, SYSENTER/SYSEXIT and SWAPGS (SDM vol. 2, one section each; AMD APM vol. 3 where
/// the vendors differ, `CPUVendor`). SYSCALL is #UD outside 64-bit mode on Intel and also works
/// from compatibility mode on AMD (entering at CSTAR); SYSENTER/SYSEXIT are #UD in IA-32e mode on
/// AMD. SYSRET is #UD outside 64-bit mode and checks RCX for canonical form before changing
/// privilege (#GP(0) at CPL 0), so a non-canonical return never faults in ring 3.
public enum FastSystemCalls {
  /// Flat 64-bit ring-0 code: type 11 (execute/read, accessed), S, P, L, G.
  static let kernelCode64: UInt16 = 0xA09B
  /// Flat 32-bit ring-0 code (SYSENTER outside IA-32e mode).
  static let kernelCode32: UInt16 = 0xC09B
  /// Flat ring-0 stack: type 3 (read/write, accessed), S, P, B, G.
  static let kernelStack: UInt16 = 0xC093
  static let userCode64: UInt16 = 0xA0FB
  static let userCode32: UInt16 = 0xC0FB
  static let userStack: UInt16 = 0xC0F3

  /// SYSCALL: RCX = return RIP, R11 = RFLAGS, RFLAGS &= ~SFMASK, CS/SS from STAR[47:32], RIP =
  /// LSTAR (CSTAR when an AMD CPU calls from compatibility mode), CPL 0.
  public static func syscall(returnRIP: UInt64, state: CPUState, vendor: CPUVendor = .intel) throws(Fault) {
    let mode = OperatingMode(state)
    let fromCompatibility = mode == .compatibility && vendor == .amd
    guard mode == .long64 || fromCompatibility, state.efer & EFER.sce != 0 else { throw .ud }
    let star = state[offset: CPUStateLayout.star]
    let selector = UInt16(truncatingIfNeeded: star >> 32)
    state.setGPR(1, returnRIP)
    state.setGPR(11, state.rflags & ~Flags.rf)
    state.rflags = state.rflags & ~(state[offset: CPUStateLayout.sfmask] | Flags.rf) | Flags.reserved1
    state.rip = state[offset: fromCompatibility ? CPUStateLayout.cstar : CPUStateLayout.lstar]
    state.setSegment(.ss, SegmentCache(selector: selector &+ 8, base: 0, limit: 0xFFFF_FFFF, attributes: kernelStack))
    SegmentLoader.commitCodeSegment(
      SegmentCache(selector: selector & 0xFFFC, base: 0, limit: 0xFFFF_FFFF, attributes: kernelCode64), cpl: 0,
      state: state)
  }

  /// SYSRET with operand size `operandSize` (8: back to 64-bit mode at RCX; 4: to compatibility
  /// mode at ECX). RFLAGS = R11 (with RF, VM cleared and bit 1 set); CS/SS from STAR[63:48]; CPL 3.
  public static func sysret(operandSize: Int, state: CPUState) throws(Fault) {
    guard OperatingMode(state) == .long64, state.efer & EFER.sce != 0 else { throw .ud }
    guard state.cpl == 0 else { throw .gp(0) }
    let rcx = state.gpr(1)
    if operandSize == 8 {
      guard Canonical.isCanonical(rcx, la57: state.cr4 & CR4.la57 != 0) else { throw .gp(0) }
    }
    let selector = UInt16(truncatingIfNeeded: state[offset: CPUStateLayout.star] >> 48)
    state.rflags = state.gpr(11) & 0x3C_7FD7 | Flags.reserved1
    let cs: SegmentCache
    if operandSize == 8 {
      state.rip = rcx
      cs = SegmentCache(selector: (selector &+ 16) | 3, base: 0, limit: 0xFFFF_FFFF, attributes: userCode64)
    } else {
      state.rip = rcx & 0xFFFF_FFFF
      cs = SegmentCache(selector: selector | 3, base: 0, limit: 0xFFFF_FFFF, attributes: userCode32)
    }
    // SS keeps its flat hidden state with DPL 3 (SDM: SS.DPL is forced to 3).
    state.setSegment(
      .ss, SegmentCache(selector: (selector &+ 8) | 3, base: 0, limit: 0xFFFF_FFFF, attributes: userStack))
    SegmentLoader.commitCodeSegment(cs, cpl: 3, state: state)
  }

  /// SYSENTER: CS = SYSENTER_CS, SS = CS + 8, RIP = SYSENTER_EIP, RSP = SYSENTER_ESP, CPL 0,
  /// VM/IF/RF cleared. #GP(0) in real mode or when SYSENTER_CS is null.
  public static func sysenter(state: CPUState, vendor: CPUVendor = .intel) throws(Fault) {
    if vendor == .amd && state.efer & EFER.lma != 0 { throw .ud }
    guard state.cr0 & CR0.pe != 0 else { throw .gp(0) }
    let csMSR = UInt16(truncatingIfNeeded: state[offset: CPUStateLayout.sysenterCS])
    guard csMSR & 0xFFFC != 0 else { throw .gp(0) }
    let ia32e = state.efer & EFER.lma != 0
    state.rflags &= ~(Flags.vm | Flags.if | Flags.rf)
    let eip = state[offset: CPUStateLayout.sysenterEIP]
    let esp = state[offset: CPUStateLayout.sysenterESP]
    state.rip = ia32e ? eip : eip & 0xFFFF_FFFF
    state.setGPR(4, ia32e ? esp : esp & 0xFFFF_FFFF)
    state.setSegment(
      .ss, SegmentCache(selector: (csMSR & 0xFFFC) &+ 8, base: 0, limit: 0xFFFF_FFFF, attributes: kernelStack))
    SegmentLoader.commitCodeSegment(
      SegmentCache(
        selector: csMSR & 0xFFFC, base: 0, limit: 0xFFFF_FFFF, attributes: ia32e ? kernelCode64 : kernelCode32),
      cpl: 0, state: state)
  }

  /// SYSEXIT with operand size `operandSize` (8: to 64-bit mode, CS = SYSENTER_CS + 32; 4: CS =
  /// SYSENTER_CS + 16), RIP = RDX, RSP = RCX, CPL 3.
  public static func sysexit(operandSize: Int, state: CPUState, vendor: CPUVendor = .intel) throws(Fault) {
    if vendor == .amd && state.efer & EFER.lma != 0 { throw .ud }
    let csMSR = UInt16(truncatingIfNeeded: state[offset: CPUStateLayout.sysenterCS])
    guard state.cr0 & CR0.pe != 0, state.rflags & Flags.vm == 0, csMSR & 0xFFFC != 0, state.cpl == 0 else {
      throw .gp(0)
    }
    let rcx = state.gpr(1)
    let rdx = state.gpr(2)
    let cs: SegmentCache
    let ss: SegmentCache
    if operandSize == 8 {
      let la57 = state.cr4 & CR4.la57 != 0
      guard Canonical.isCanonical(rcx, la57: la57), Canonical.isCanonical(rdx, la57: la57) else { throw .gp(0) }
      cs = SegmentCache(selector: (csMSR &+ 32) | 3, base: 0, limit: 0xFFFF_FFFF, attributes: userCode64)
      ss = SegmentCache(selector: (csMSR &+ 40) | 3, base: 0, limit: 0xFFFF_FFFF, attributes: userStack)
      state.rip = rdx
      state.setGPR(4, rcx)
    } else {
      cs = SegmentCache(selector: (csMSR &+ 16) | 3, base: 0, limit: 0xFFFF_FFFF, attributes: userCode32)
      ss = SegmentCache(selector: (csMSR &+ 24) | 3, base: 0, limit: 0xFFFF_FFFF, attributes: userStack)
      state.rip = rdx & 0xFFFF_FFFF
      state.setGPR(4, rcx & 0xFFFF_FFFF)
    }
    state.setSegment(.ss, ss)
    SegmentLoader.commitCodeSegment(cs, cpl: 3, state: state)
  }

  /// SWAPGS: exchanges GS.base and IA32_KERNEL_GS_BASE (64-bit mode, CPL 0).
  public static func swapgs(state: CPUState) throws(Fault) {
    guard OperatingMode(state) == .long64 else { throw .ud }
    guard state.cpl == 0 else { throw .gp(0) }
    var gs = state.segment(.gs)
    let kernel = state[offset: CPUStateLayout.kernelGSBase]
    state[offset: CPUStateLayout.kernelGSBase] = gs.base
    gs.base = kernel
    state.setSegment(.gs, gs)
  }
}

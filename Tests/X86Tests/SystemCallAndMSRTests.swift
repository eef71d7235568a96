import Testing

@testable import X86

@Suite struct SystemCallAndMSRTests {
  /// STAR with SYSCALL CS 0x08 (SS 0x10) and SYSRET base 0x10: compatibility CS 0x13, SS 0x1B,
  /// 64-bit CS 0x23.
  static let star: UInt64 = 0x0010_0008 << 32

  @Test func syscallSysretRoundTrip() throws {
    let (s, m) = makeLongMode()
    _ = m
    var msrs = MSRFile()
    try msrs.write(MSRIndex.star, value: Self.star, state: s, hostTSC: 0)
    try msrs.write(MSRIndex.lstar, value: 0xFFFF_FFFF_8100_0000, state: s, hostTSC: 0)
    try msrs.write(MSRIndex.sfmask, value: Flags.if | Flags.tf | Flags.df, state: s, hostTSC: 0)
    enterUser64(s, rip: 0x40_1000, rsp: 0x7_FFF0, flags: 0x202 | Flags.df | Flags.cf)
    try FastSystemCalls.syscall(returnRIP: 0x40_1002, state: s)
    #expect(s.gpr(1) == 0x40_1002)
    #expect(s.gpr(11) == 0x603)
    #expect(s.rflags == 0x3)  // IF and DF masked
    #expect(s.rip == 0xFFFF_FFFF_8100_0000)
    #expect(s.cpl == 0 && s.codeMode == .bits64)
    #expect(s.segment(.cs) == SegmentCache(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA09B))
    #expect(s.segment(.ss) == SegmentCache(selector: 0x10, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC093))
    #expect(s.gpr(4) == 0x7_FFF0)  // SYSCALL does not touch RSP
    try FastSystemCalls.sysret(operandSize: 8, state: s)
    #expect(s.rip == 0x40_1002 && s.cpl == 3 && s.codeMode == .bits64)
    #expect(s.rflags == 0x603)
    #expect(s.segment(.cs).selector == 0x23 && s.segment(.cs).attributes == 0xA0FB)
    #expect(s.segment(.ss).selector == 0x1B && s.segment(.ss).attributes == 0xC0F3)
    // SYSRET to compatibility mode.
    s.cpl = 0
    s.setSegment(.cs, SegmentCache(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, attributes: 0xA09B))
    s.setGPR(1, 0xFFFF_FFFF_0804_8000)
    try FastSystemCalls.sysret(operandSize: 4, state: s)
    #expect(s.rip == 0x0804_8000 && s.segment(.cs).selector == 0x13 && s.codeMode == .bits32)
  }

  @Test func syscallFaults() {
    let (s, _) = makeLongMode()
    s.efer &= ~EFER.sce
    #expect(faultOf { () throws(Fault) in try FastSystemCalls.syscall(returnRIP: 0, state: s) } == .ud)
    #expect(faultOf { () throws(Fault) in try FastSystemCalls.sysret(operandSize: 8, state: s) } == .ud)
    s.efer |= EFER.sce
    s.setGPR(1, 0x0000_8000_0000_0000)  // non-canonical: #GP(0) in ring 0, state untouched
    #expect(faultOf { () throws(Fault) in try FastSystemCalls.sysret(operandSize: 8, state: s) } == .gp(0))
    #expect(s.cpl == 0)
    s.cpl = 3
    #expect(faultOf { () throws(Fault) in try FastSystemCalls.sysret(operandSize: 8, state: s) } == .gp(0))
    // Compatibility mode: SYSCALL is #UD (Intel).
    s.cpl = 0
    s.setSegment(.cs, SegmentCache(selector: 0x08, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC09B))
    #expect(faultOf { () throws(Fault) in try FastSystemCalls.syscall(returnRIP: 0, state: s) } == .ud)
  }

  @Test func sysenterSysexitAndSwapgs() throws {
    let (s, _) = makeLongMode()
    s[offset: CPUStateLayout.sysenterCS] = 0x08
    s[offset: CPUStateLayout.sysenterEIP] = 0xFFFF_FFFF_8000_1000
    s[offset: CPUStateLayout.sysenterESP] = 0xFFFF_FFFF_8000_8000
    s.setGPR(1, 0x7000)
    s.setGPR(2, 0x40_0000)
    try FastSystemCalls.sysexit(operandSize: 8, state: s)
    #expect(s.cpl == 3 && s.rip == 0x40_0000 && s.gpr(4) == 0x7000 && s.segment(.cs).selector == 0x2B)
    #expect(s.segment(.ss).selector == 0x33)
    s.rflags = 0x202
    try FastSystemCalls.sysenter(state: s)
    #expect(s.cpl == 0 && s.rip == 0xFFFF_FFFF_8000_1000 && s.gpr(4) == 0xFFFF_FFFF_8000_8000)
    #expect(s.rflags == 0x2 && s.segment(.cs).selector == 0x08 && s.segment(.ss).selector == 0x10)
    s[offset: CPUStateLayout.sysenterCS] = 0
    #expect(faultOf { () throws(Fault) in try FastSystemCalls.sysenter(state: s) } == .gp(0))

    var gs = s.segment(.gs)
    gs.base = 0x1111
    s.setSegment(.gs, gs)
    s[offset: CPUStateLayout.kernelGSBase] = 0x2222
    try FastSystemCalls.swapgs(state: s)
    #expect(s.segment(.gs).base == 0x2222 && s[offset: CPUStateLayout.kernelGSBase] == 0x1111)
    s.cpl = 3
    #expect(faultOf { () throws(Fault) in try FastSystemCalls.swapgs(state: s) } == .gp(0))
  }

  @Test func msrValidation() throws {
    let (s, _) = makeLongMode()
    var msrs = MSRFile()
    func write(_ i: UInt32, _ v: UInt64) -> Fault? {
      faultOf { () throws(Fault) in try msrs.write(i, value: v, state: s, hostTSC: 1000) }
    }
    #expect(write(0x1234, 0) == .gp(0))  // unknown
    #expect(faultOf { () throws(Fault) in _ = try msrs.read(0x1234, state: s, hostTSC: 0) } == .gp(0))
    #expect(write(MSRIndex.efer, s.efer | 1 << 2) == .gp(0))  // reserved bit
    #expect(write(MSRIndex.efer, s.efer & ~EFER.lme) == .gp(0))  // LME change while paging
    #expect(write(MSRIndex.efer, s.efer & ~EFER.nxe) == nil)
    #expect(s.efer & EFER.lma != 0)  // LMA is read-only
    #expect(write(MSRIndex.fsBase, 0x0000_8000_0000_0000) == .gp(0))
    #expect(write(MSRIndex.gsBase, 0xFFFF_8000_0000_0000) == nil)
    #expect(s.segment(.gs).base == 0xFFFF_8000_0000_0000)
    #expect(write(MSRIndex.kernelGSBase, 0x1_0000_0000_0000) == .gp(0))
    #expect(write(MSRIndex.lstar, 0x1_0000_0000_0000) == .gp(0))
    #expect(write(MSRIndex.sfmask, 1 << 32) == .gp(0))
    #expect(write(MSRIndex.tscAux, 1 << 32) == .gp(0))
    #expect(write(MSRIndex.pat, 0x0007_0406_0007_0402) == .gp(0))  // type 2 is reserved
    #expect(write(MSRIndex.pat, 0x0007_0406_0007_0406) == nil)
    #expect(write(MSRIndex.apicBase, 0xFEE0_0000 | 1 << 11 | 1 << 10) == .gp(0))  // x2APIC not advertised
    #expect(write(MSRIndex.apicBase, 0xFEE0_0000 | 1 << 11) == nil)
    // TSC is the host counter plus an offset.
    #expect(write(MSRIndex.tsc, 5000) == nil)
    #expect(try msrs.read(MSRIndex.tsc, state: s, hostTSC: 1500) == 5500)
    s.cpl = 3
    #expect(write(MSRIndex.star, 0) == .gp(0))
  }
}

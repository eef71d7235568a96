import Testing

@testable import X86

/// The two vendor flavours of the virtual CPU: what CPUID says, and the instructions Intel and AMD
/// define differently (docs/cpu-vendors.md).
@Suite struct CPUVendorTests {
  @Test(arguments: CPUVendor.allCases)
  func cpuidNamesTheVendorAndSignature(_ vendor: CPUVendor) {
    var table = CPUIDTable(features: .interpreterModel)
    table.present(vendor)
    let leaf0 = table.query(leaf: 0, subleaf: 0)
    let words = [leaf0.ebx, leaf0.edx, leaf0.ecx]
    let text = String(
      decoding: words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> ($0 * 8)) } }, as: UTF8.self)
    #expect(text == vendor.identification)
    #expect(table.query(leaf: 1, subleaf: 0).eax == vendor.signature)
    #expect(table.cpuVendor == vendor)
    // The same features under either name.
    #expect(
      table.query(leaf: 1, subleaf: 0).edx == CPUIDTable(features: .interpreterModel).query(leaf: 1, subleaf: 0).edx)
  }

  /// A ring-3 caller in compatibility mode (32-bit code under a long-mode kernel).
  func compatibilityModeCaller() -> (CPUState, SystemTestMemory) {
    let (s, m) = makeLongMode()
    s.setSegment(.cs, SegmentCache(selector: 0x1B, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC0FB))
    s.cpl = 3
    s.codeMode = .bits32
    s[offset: CPUStateLayout.star] = UInt64(0x0023_0008) << 32
    s[offset: CPUStateLayout.lstar] = 0xFFFF_8000_0000_1000
    s[offset: CPUStateLayout.cstar] = 0xFFFF_8000_0000_2000
    return (s, m)
  }

  @Test func syscallFromCompatibilityModeIsUDOnIntel() {
    let (s, _) = compatibilityModeCaller()
    #expect(OperatingMode(s) == .compatibility)
    #expect(
      faultOf { () throws(Fault) in try FastSystemCalls.syscall(returnRIP: 0x1234, state: s, vendor: .intel) } == .ud)
  }

  @Test func syscallFromCompatibilityModeEntersAtCSTAROnAMD() {
    let (s, _) = compatibilityModeCaller()
    s.rflags = Flags.reserved1 | Flags.if
    #expect(
      faultOf { () throws(Fault) in try FastSystemCalls.syscall(returnRIP: 0x1234, state: s, vendor: .amd) } == nil)
    #expect(s.rip == 0xFFFF_8000_0000_2000)
    #expect(s.gpr(1) == 0x1234 && s.gpr(11) & Flags.if != 0)
    #expect(s.segment(.cs).selector == 0x08 && s.cpl == 0 && OperatingMode(s) == .long64)
  }

  @Test func sysenterInIA32eModeIsUDOnAMDOnly() {
    for (vendor, expected) in [(CPUVendor.intel, nil as Fault?), (.amd, .ud)] {
      let (s, _) = makeLongMode()
      s[offset: CPUStateLayout.sysenterCS] = 0x08
      s[offset: CPUStateLayout.sysenterEIP] = 0xFFFF_8000_0000_3000
      #expect(faultOf { () throws(Fault) in try FastSystemCalls.sysenter(state: s, vendor: vendor) } == expected)
    }
  }

  /// Every advertised feature that comes with MSRs has them readable (no RDMSR #GP for an MSR
  /// CPUID promises), and nothing the model does not execute is advertised.
  @Test func advertisedFeaturesAreModelled() throws {
    let features = CPUFeatures.interpreterModel
    let msrsOfFeature: [(CPUFeatures.Flag, [UInt32])] = [
      (.tsc, [MSRIndex.tsc]), (.pat, [MSRIndex.pat]),
      (.sep, [MSRIndex.sysenterCS, MSRIndex.sysenterESP, MSRIndex.sysenterEIP]),
      (.syscall, [MSRIndex.star, MSRIndex.lstar, MSRIndex.cstar, MSRIndex.sfmask]),
      (.longMode, [MSRIndex.efer, MSRIndex.fsBase, MSRIndex.gsBase, MSRIndex.kernelGSBase]),
      (.rdtscp, [MSRIndex.tscAux]),
    ]
    let (s, _) = makeLongMode()
    let msrs = MSRFile(features: features, physicalAddressBits: 40)
    for (flag, indices) in msrsOfFeature where features.contains(flag) {
      for index in indices {
        #expect(faultOf { () throws(Fault) in _ = try msrs.read(index, state: s, hostTSC: 0) } == nil, "MSR \(index)")
      }
    }
    // The x86-64-v2 level with its x87 and SSE state (docs/simd.md).
    for flag in [CPUFeatures.Flag.fpu, .mmx, .fxsr, .sse, .sse2, .sse3, .ssse3, .sse41, .sse42, .popcnt, .cx16, .xsave]
    {
      #expect(features.contains(flag))
    }
    // Not modelled in the X86 model (machine checks, MTRRs; the local APIC is the VMM's): not
    // advertised.
    for flag in [CPUFeatures.Flag.mce, .mtrr, .apic, .x2apic] {
      #expect(!features.contains(flag))
    }
  }
}

import Testing

@testable import X86

/// XGETBV, XSETBV, XSAVE and XRSTOR for the x87 and SSE components (`CPU+XSAVE.swift`), against
/// the rules of the SDM's chapter 13 ("Managing State Using the XSAVE Feature Set").
@Suite struct XSAVETests {
  /// A 64-bit CPU at CPL `cpl` with CR4.OSXSAVE set and `code` at 0x1000.
  func makeCPU(_ code: [UInt8], cpl: Int = 0) -> (CPU, TestRAM) {
    let (cpu, ram) = makeCPU64(code)
    cpu.state.cpl = cpl
    cpu.state.cr4 |= CR4.osxsave
    return (cpu, ram)
  }

  /// XCR0 as XGETBV reports it.
  func xcr0(_ cpu: CPU) -> UInt64 { cpu.state.gpr(Reg.rdx) << 32 | cpu.state.gpr(Reg.rax) }

  static let xgetbv: [UInt8] = [0x0F, 0x01, 0xD0]
  static let xsetbv: [UInt8] = [0x0F, 0x01, 0xD1]
  static let xsaveRBX: [UInt8] = [0x0F, 0xAE, 0x23]  // xsave [rbx]
  static let xrstorRBX: [UInt8] = [0x48, 0x0F, 0xAE, 0x2B]  // xrstor64 [rbx]

  @Test func xcr0StartsAsX87OnlyAndXSETBVSetsSSE() {
    let (cpu, _) = makeCPU(Self.xgetbv + Self.xsetbv + Self.xgetbv)
    cpu.state.setGPR(Reg.rcx, 0)
    #expect(cpu.step() == nil)
    #expect(xcr0(cpu) == 1, "XCR0 after reset")
    cpu.state.setGPR(Reg.rax, 3)
    cpu.state.setGPR(Reg.rdx, 0)
    #expect(cpu.step() == nil)
    cpu.state.setGPR(Reg.rax, 0)
    #expect(cpu.step() == nil)
    #expect(xcr0(cpu) == 3)
  }

  @Test func xsetbvRefusesWhatTheModelCannotHold() {
    // (ECX, EDX:EAX, CPL) that #GP: another XCR, AVX and upper bits, no x87 bit, user mode.
    let cases: [(UInt64, UInt64, Int)] = [(1, 3, 0), (0, 7, 0), (0, 1 << 32 | 3, 0), (0, 2, 0), (0, 0, 0), (0, 3, 3)]
    for (ecx, value, cpl) in cases {
      let (cpu, _) = makeCPU(Self.xsetbv, cpl: cpl)
      cpu.state.setGPR(Reg.rcx, ecx)
      cpu.state.setGPR(Reg.rax, value & 0xFFFF_FFFF)
      cpu.state.setGPR(Reg.rdx, value >> 32)
      #expect(cpu.step() == .exception(vector: 13, errorCode: 0), "ECX \(ecx) value \(value) CPL \(cpl)")
      #expect(cpu.xcr0 == 1)
    }
    // XGETBV of XCR1 (XGETBV1 is not modelled) is #GP too; XGETBV works at CPL 3.
    let (user, _) = makeCPU(Self.xgetbv + Self.xgetbv, cpl: 3)
    #expect(user.step() == nil)
    user.state.setGPR(Reg.rcx, 1)
    #expect(user.step() == .exception(vector: 13, errorCode: 0))
  }

  @Test func everyInstructionNeedsCR4OSXSAVE() {
    for code in [Self.xgetbv, Self.xsetbv, Self.xsaveRBX, Self.xrstorRBX] {
      let (cpu, _) = makeCPU(code)
      cpu.state.cr4 &= ~CR4.osxsave
      cpu.state.setGPR(Reg.rax, 0x2000)
      cpu.state.setGPR(Reg.rbx, 0x2000)
      #expect(cpu.step() == .exception(vector: 6, errorCode: nil), "\(code)")
    }
  }

  @Test func xsaveAndXRSTORCheckTSAndAlignment() {
    for code in [Self.xsaveRBX, Self.xrstorRBX] {
      var (cpu, _) = makeCPU(code)
      cpu.state.cr0 |= CR0.ts
      cpu.state.setGPR(Reg.rbx, 0x2000)
      #expect(cpu.step() == .exception(vector: 7, errorCode: nil), "CR0.TS: #NM")
      (cpu, _) = makeCPU(code)
      cpu.state.setGPR(Reg.rbx, 0x2010)
      #expect(cpu.step() == .exception(vector: 13, errorCode: 0), "16-byte aligned is not enough")
    }
  }

  /// An FXSAVE-style image: FCW 0x027F, FSW with TOP 0, XMMn holding n + 1 in every byte.
  func legacyImage(mxcsr: UInt32 = 0x1F80) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 512)
    b[0] = 0x7F
    b[1] = 0x02
    for i in 0..<4 { b[24 + i] = UInt8(truncatingIfNeeded: mxcsr >> (8 * UInt32(i))) }
    for r in 0..<16 { for j in 0..<16 { b[160 + 16 * r + j] = UInt8(r + 1) } }
    return b
  }

  @Test func xsaveStoresOnlyTheRequestedComponentsAndSetsTheirXSTATEBVBits() {
    let (sse, sseRAM) = makeCPU(Self.xsaveRBX)  // xsave [rbx]
    sse.xcr0 = 3
    sse.loadFXSAVEImage(legacyImage())
    sse.state.setGPR(Reg.rbx, 0x3000)
    sse.state.setGPR(Reg.rax, 2)
    sse.state.setGPR(Reg.rdx, 0xFFFF_FFFF)
    sseRAM.load([UInt8](repeating: 0xEE, count: 576), at: 0x3000)
    sseRAM.load([0x80, 0, 0, 0, 0, 0, 0, 0], at: 0x3000 + 512)
    #expect(sse.step() == nil)
    #expect(sseRAM.word(0x3000) == 0xEEEE, "x87 part untouched")
    #expect(sseRAM.qword(0x3000 + 24) == 0xFFFF << 32 | 0x1F80, "MXCSR and MXCSR_MASK")
    #expect(sseRAM.qword(0x3000 + 160 + 16 * 15) == 0x1010_1010_1010_1010)
    #expect(sseRAM.qword(0x3000 + 416) == 0xEEEE_EEEE_EEEE_EEEE, "bytes 416-511 untouched")
    #expect(sseRAM.qword(0x3000 + 512) == 0x82, "XSTATE_BV: SSE set, bit 7 kept")
    #expect(sseRAM.qword(0x3000 + 520) == 0xEEEE_EEEE_EEEE_EEEE, "the rest of the header untouched")
  }

  @Test func xsaveWithBothComponentsMatchesFXSAVE() {
    let (cpu, ram) = makeCPU(Self.xsaveRBX + [0x0F, 0xAE, 0x01])  // xsave [rbx]; fxsave [rcx]
    cpu.xcr0 = 3
    cpu.loadFXSAVEImage(legacyImage())
    cpu.state.setGPR(Reg.rbx, 0x3000)
    cpu.state.setGPR(Reg.rcx, 0x4000)
    cpu.state.setGPR(Reg.rax, 3)
    #expect(cpu.step() == nil)
    #expect(cpu.step() == nil)
    for i in stride(from: 0, to: 416, by: 8) { #expect(ram.qword(0x3000 + i) == ram.qword(0x4000 + i)) }
    #expect(ram.qword(0x3000 + 512) == 3)
  }

  @Test func xrstorLoadsSetComponentsAndInitializesClearOnes() {
    let (cpu, ram) = makeCPU(Self.xrstorRBX)
    cpu.xcr0 = 3
    cpu.state.setGPR(Reg.rbx, 0x3000)
    cpu.state.setGPR(Reg.rax, 3)
    var area = legacyImage(mxcsr: 0x3F80)
    area += [UInt8](repeating: 0, count: 64)
    area[512] = 0b10  // SSE from memory, x87 initialized
    ram.load(area, at: 0x3000)
    var before = legacyImage()
    before[0] = 0x55  // FCW 0x0255, to see it initialized
    cpu.loadFXSAVEImage(before)
    #expect(cpu.step() == nil)
    let after = cpu.fxsaveImage()
    #expect(after[0] == 0x7F && after[1] == 0x03, "x87 initialized: FCW 037FH")
    #expect(after[24] == 0x80 && after[25] == 0x3F, "MXCSR from memory")
    #expect(after[160 + 16 * 3] == 4, "XMM3 from memory")
    // Now SSE initialized: XMM zero, MXCSR still from memory.
    let (second, secondRAM) = makeCPU(Self.xrstorRBX)
    second.xcr0 = 3
    second.state.setGPR(Reg.rbx, 0x3000)
    second.state.setGPR(Reg.rax, 3)
    area[512] = 0b01
    secondRAM.load(area, at: 0x3000)
    second.loadFXSAVEImage(legacyImage())
    #expect(second.step() == nil)
    let image = second.fxsaveImage()
    #expect(image[160..<416].allSatisfy { $0 == 0 }, "XMM initialized")
    #expect(image[24] == 0x80 && image[25] == 0x3F, "standard form: MXCSR loaded anyway")
    #expect(image[0] == 0x7F && image[1] == 0x02, "x87 from memory (FCW 0x027F)")
  }

  @Test func xrstorRefusesBadHeadersAndMXCSRWithoutChangingAnything() {
    // XSTATE_BV outside XCR0 (XCR0 = 1 here), XCOMP_BV set, reserved header bytes, bad MXCSR.
    let headers: [(Int, UInt8, UInt64, UInt32)] = [(512, 0b10, 1, 0x1F80), (520, 1, 3, 0x1F80), (528, 1, 3, 0x1F80)]
    for (offset, byte, xcr0, mxcsr) in headers {
      let (cpu, ram) = makeCPU(Self.xrstorRBX)
      cpu.xcr0 = xcr0
      cpu.state.setGPR(Reg.rbx, 0x3000)
      cpu.state.setGPR(Reg.rax, 3)
      var area = legacyImage(mxcsr: mxcsr) + [UInt8](repeating: 0, count: 64)
      area[512] = 1
      area[offset] |= byte
      ram.load(area, at: 0x3000)
      let before = cpu.fxsaveImage()
      #expect(cpu.step() == .exception(vector: 13, errorCode: 0), "header byte \(offset)")
      #expect(cpu.fxsaveImage() == before)
    }
    let (cpu, ram) = makeCPU(Self.xrstorRBX)
    cpu.xcr0 = 3
    cpu.state.setGPR(Reg.rbx, 0x3000)
    cpu.state.setGPR(Reg.rax, 2)
    ram.load(legacyImage(mxcsr: 0x1_1F80) + [UInt8](repeating: 0, count: 64), at: 0x3000)
    let before = cpu.fxsaveImage()
    #expect(cpu.step() == .exception(vector: 13, errorCode: 0), "reserved MXCSR bit, even with XSTATE_BV 0")
    #expect(cpu.fxsaveImage() == before)
  }

  @Test func cpuidLeafDReportsTheComponentsWhenXSAVEIsAdvertised() {
    let table = CPUIDTable(features: CPUFeatures.interpreterModel.union(CPUFeatures([.xsave])))
    let d = table.query(leaf: 0xD, subleaf: 0)
    #expect(d.eax == 3 && d.ebx == 576 && d.ecx == 576 && d.edx == 0)
    #expect(table.query(leaf: 0xD, subleaf: 1).eax == 0, "no XSAVEOPT, XSAVEC, XGETBV1 or XSAVES")
  }
}

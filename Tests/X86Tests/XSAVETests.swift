import Testing

@testable import X86

/// XGETBV, XSETBV, XSAVE, XSAVEOPT and XRSTOR for the x87 and SSE state components, CPUID leaf
/// 0DH and CR4.OSXSAVE, against the rules of the SDM (vol. 1, ch. 13; vol. 2, the instructions).
@Suite struct XSAVETests {
  /// A CPU in 64-bit flat mode with CR4.OSXSAVE set, running `code`.
  func makeCPU(_ code: [UInt8], cpl: Int = 3) -> (CPU, TestRAM) {
    let (cpu, ram) = makeCPU64(code)
    cpu.state.cr4 |= CR4.osxsave
    cpu.state.cpl = cpl
    return (cpu, ram)
  }

  /// An FXSAVE-format legacy image: FCW 0x0262, FSW with TOP 5 and C1, abridged tag 0xA0 (R5 and
  /// R7 valid, so ST0 and ST2), ST(j) slot j filled with 0x10 + j, MXCSR `mxcsr`, XMMn = n.
  func legacyImage(mxcsr: UInt32 = 0x1F80) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 512)
    b[0] = 0x62
    b[1] = 0x02
    b[3] = 0x2A  // TOP 5 (bits 11-13), C1 (bit 9)
    b[4] = 0xA0
    for i in 0..<4 { b[24 + i] = UInt8(truncatingIfNeeded: mxcsr >> (8 * UInt32(i))) }
    for j in 0..<8 { for k in 0..<10 { b[32 + 16 * j + k] = UInt8(0x10 + j) } }
    for r in 0..<16 { for k in 0..<16 { b[160 + 16 * r + k] = UInt8(r) } }
    return b
  }

  func byte(_ ram: TestRAM, _ address: Int) -> UInt8 { UInt8(truncatingIfNeeded: ram.qword(address)) }

  @Test func xgetbvReadsXCR0AndXSETBVWritesIt() {
    // xgetbv; xsetbv; xgetbv
    let (cpu, _) = makeCPU([0x0F, 0x01, 0xD0, 0x0F, 0x01, 0xD1, 0x0F, 0x01, 0xD0], cpl: 0)
    cpu.state.setGPR(Reg.rcx, 0)
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rax) == 1, "XCR0 is 1 after RESET")
    #expect(cpu.state.gpr(Reg.rdx) == 0)
    cpu.state.setGPR(Reg.rax, 3)
    #expect(cpu.step() == nil)
    cpu.state.setGPR(Reg.rax, 0)
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rax) == 3)
    #expect(cpu.state[offset: CPUStateLayout.xcr0] == 3)
  }

  @Test func xsetbvRefusesWhatTheModelLacks() {
    let xsetbv: [UInt8] = [0x0F, 0x01, 0xD1]
    for (rax, rdx, rcx) in [(UInt64(0), UInt64(0), UInt64(0)), (2, 0, 0), (7, 0, 0), (3, 1, 0), (1, 0, 1)] {
      let (cpu, _) = makeCPU(xsetbv, cpl: 0)
      cpu.state.setGPR(Reg.rax, rax)
      cpu.state.setGPR(Reg.rdx, rdx)
      cpu.state.setGPR(Reg.rcx, rcx)
      #expect(cpu.step() == .exception(vector: 13, errorCode: 0), "EDX:EAX \(rdx):\(rax) ECX \(rcx)")
      #expect(cpu.state[offset: CPUStateLayout.xcr0] == 1)
    }
    let (user, _) = makeCPU(xsetbv, cpl: 3)
    user.state.setGPR(Reg.rax, 3)
    #expect(user.step() == .exception(vector: 13, errorCode: 0), "CPL 3")
    let (xgetbv1, _) = makeCPU([0x0F, 0x01, 0xD0])
    xgetbv1.state.setGPR(Reg.rcx, 1)
    #expect(xgetbv1.step() == .exception(vector: 13, errorCode: 0), "no XGETBV with ECX = 1")
  }

  @Test func everyXSAVEInstructionNeedsCR4OSXSAVE() {
    let forms: [[UInt8]] = [
      [0x0F, 0x01, 0xD0], [0x0F, 0x01, 0xD1], [0x0F, 0xAE, 0x20], [0x0F, 0xAE, 0x28], [0x0F, 0xAE, 0x30],
      [0x48, 0x0F, 0xAE, 0x20],
    ]
    for code in forms {
      let (cpu, _) = makeCPU(code, cpl: 0)
      cpu.state.cr4 &= ~CR4.osxsave
      cpu.state.setGPR(Reg.rax, 0x2000)
      #expect(cpu.step() == .exception(vector: 6, errorCode: nil), "\(code)")
    }
  }

  @Test func xsaveAndXRSTORRaiseNMWithCR0TSAndGPWhenMisaligned() {
    for code: [UInt8] in [[0x0F, 0xAE, 0x20], [0x0F, 0xAE, 0x28], [0x0F, 0xAE, 0x30]] {
      let (ts, _) = makeCPU(code)
      ts.state.cr0 |= CR0.ts
      ts.state.setGPR(Reg.rax, 0x2000)
      #expect(ts.step() == .exception(vector: 7, errorCode: nil))
      let (misaligned, _) = makeCPU(code)
      misaligned.state.setGPR(Reg.rax, 0x2020)  // 16- but not 64-byte aligned
      #expect(misaligned.step() == .exception(vector: 13, errorCode: 0))
    }
    // CR0.EM does not stop XSAVE (unlike FXSAVE).
    let (em, _) = makeCPU([0x0F, 0xAE, 0x20])
    em.state.cr0 |= CR0.em
    em.state.setGPR(Reg.rax, 0x2000)
    #expect(em.step() == nil)
  }

  @Test func xsaveWritesTheRequestedComponentsAndXSTATEBV() {
    let sentinel = [UInt8](repeating: 0xEE, count: 576)
    let (full, fullRAM) = makeCPU([0x0F, 0xAE, 0x23, 0x48, 0x0F, 0xAE, 0x21])  // xsave [rbx]; xsave64 [rcx]
    full.loadFXSAVEImage(legacyImage())
    full.xcr0 = 3
    fullRAM.load(sentinel, at: 0x2000)
    fullRAM.load(sentinel, at: 0x3000)
    fullRAM.load([0, 0, 0, 0, 0, 0, 0, 0], at: 0x2000 + 512)
    fullRAM.load([0, 0, 0, 0, 0, 0, 0, 0x40], at: 0x3000 + 512)
    full.state.setGPR(Reg.rax, 0xFFFF_FFFF)
    full.state.setGPR(Reg.rdx, 0xFFFF_FFFF)
    full.state.setGPR(Reg.rbx, 0x2000)
    full.state.setGPR(Reg.rcx, 0x3000)
    #expect(full.step() == nil)
    let image = full.fxsaveImage()
    for i in 0..<416 {
      #expect(byte(fullRAM, 0x2000 + i) == image[i], "legacy byte \(i)")
    }
    for i in 416..<512 { #expect(byte(fullRAM, 0x2000 + i) == 0xEE, "byte \(i) is not XSAVE's") }
    #expect(fullRAM.qword(0x2000 + 512) == 3, "XSTATE_BV: RFBM = mask & XCR0")
    #expect(fullRAM.qword(0x2000 + 520) == 0xEEEE_EEEE_EEEE_EEEE, "XCOMP_BV left alone")
    // x87 only (EAX = 1): SSE bytes untouched, XSTATE_BV bit 0 set and bit 62 kept.
    full.state.setGPR(Reg.rax, 1)
    full.state.setGPR(Reg.rdx, 0)
    #expect(full.step() == nil)
    #expect(fullRAM.word(0x3000) == 0x0262, "FCW")
    #expect(fullRAM.word(0x3000 + 2) == 0x2A00, "FSW")
    #expect(byte(fullRAM, 0x3000 + 4) == 0xA0, "abridged tag")
    #expect(byte(fullRAM, 0x3000 + 32) == 0x10, "ST0 first, in stack order")
    #expect(byte(fullRAM, 0x3000 + 32 + 16 * 7) == 0x17)
    #expect(fullRAM.qword(0x3000 + 24) == 0xEEEE_EEEE_EEEE_EEEE, "MXCSR belongs to SSE")
    #expect(fullRAM.qword(0x3000 + 160) == 0xEEEE_EEEE_EEEE_EEEE, "XMM0")
    #expect(fullRAM.qword(0x3000 + 512) == 0x4000_0000_0000_0001)
  }

  @Test func xsaveoptSavesLikeXSAVE() {
    let (cpu, ram) = makeCPU([0x0F, 0xAE, 0x33])  // xsaveopt [rbx]
    cpu.loadFXSAVEImage(legacyImage(mxcsr: 0x9FC0))
    cpu.xcr0 = 3
    ram.load([UInt8](repeating: 0, count: 576), at: 0x2000)
    cpu.state.setGPR(Reg.rax, 3)
    cpu.state.setGPR(Reg.rbx, 0x2000)
    #expect(cpu.step() == nil)
    #expect(ram.qword(0x2000 + 24) & 0xFFFF_FFFF == 0x9FC0)
    #expect(ram.qword(0x2000 + 28) & 0xFFFF_FFFF == UInt64(CPU.mxcsrMask))
    #expect(ram.qword(0x2000 + 160 + 16 * 9) == 0x0909_0909_0909_0909)
    #expect(ram.qword(0x2000 + 512) == 3)
  }

  @Test func xrstorLoadsSetComponentsAndInitializesClearOnes() {
    let (cpu, ram) = makeCPU([0x0F, 0xAE, 0x2B, 0x48, 0x0F, 0xAE, 0x2B])  // xrstor [rbx]; xrstor64 [rbx]
    cpu.xcr0 = 3
    var area = legacyImage(mxcsr: 0x3F80)
    area += [UInt8](repeating: 0, count: 64)
    area[512] = 1  // XSTATE_BV: x87 only
    ram.load(area, at: 0x2000)
    cpu.loadFXSAVEImage(legacyImage())  // XMMn = n before
    cpu.state.setGPR(Reg.rax, 3)
    cpu.state.setGPR(Reg.rbx, 0x2000)
    #expect(cpu.step() == nil)
    let after = cpu.fxsaveImage()
    for i in 0..<24 { #expect(after[i] == area[i], "x87 byte \(i)") }
    for i in 32..<160 { #expect(after[i] == area[i], "x87 register byte \(i)") }
    #expect(cpu.x87Top == 5)
    #expect(cpu.x87Register(physical: 5).signExponent == 0x1010, "ST0 is R5")
    #expect(cpu.mxcsr == 0x3F80, "MXCSR is loaded whenever SSE is requested")
    for r in 0..<16 { #expect(cpu.xmm(r) == (0, 0), "XSTATE_BV[1] = 0: XMM\(r) initialized") }
    // Now SSE loaded and x87 initialized.
    ram.load([2], at: 0x2000 + 512)
    #expect(cpu.step() == nil)
    #expect(cpu.x87ControlWord == 0x037F)
    #expect(cpu.x87StatusWord == 0)
    #expect(cpu.x87AbridgedTag == 0)
    #expect(cpu.fxsaveImage()[32..<160].allSatisfy { $0 == 0 })
    #expect(cpu.xmm(7) == (0x0707_0707_0707_0707, 0x0707_0707_0707_0707))
  }

  @Test func xrstorLeavesUnrequestedComponentsAlone() {
    let (cpu, ram) = makeCPU([0x0F, 0xAE, 0x2B])  // xrstor [rbx]
    cpu.xcr0 = 3
    var area = [UInt8](repeating: 0, count: 576)
    area[24] = 0x80
    area[25] = 0x1F
    ram.load(area, at: 0x2000)  // XSTATE_BV 0: initialize whatever is requested
    cpu.loadFXSAVEImage(legacyImage(mxcsr: 0x9FC0))
    cpu.state.setGPR(Reg.rax, 2)  // SSE only
    cpu.state.setGPR(Reg.rbx, 0x2000)
    #expect(cpu.step() == nil)
    #expect(cpu.x87ControlWord == 0x0262, "x87 not requested")
    #expect(cpu.mxcsr == 0x1F80)
    #expect(cpu.xmm(3) == (0, 0))
  }

  @Test func xrstorRefusesBadHeadersAndMXCSR() {
    func attempt(_ edit: (inout [UInt8]) -> Void, xcr0: UInt64 = 3) -> (CPUEvent?, [UInt8], [UInt8]) {
      let (cpu, ram) = makeCPU([0x0F, 0xAE, 0x2B])
      cpu.xcr0 = xcr0
      var area = legacyImage(mxcsr: 0x3F80) + [UInt8](repeating: 0, count: 64)
      area[512] = 3
      edit(&area)
      ram.load(area, at: 0x2000)
      cpu.state.setGPR(Reg.rax, 3)
      cpu.state.setGPR(Reg.rbx, 0x2000)
      let before = cpu.fxsaveImage()
      let fault = cpu.step()
      return (fault, before, cpu.fxsaveImage())
    }
    let gp = CPUEvent.exception(vector: 13, errorCode: 0)
    var r = attempt { $0[512] = 7 }
    #expect(r.0 == gp, "XSTATE_BV bit 2: not in XCR0")
    #expect(r.1 == r.2, "nothing restored")
    r = attempt({ _ in }, xcr0: 1)
    #expect(r.0 == gp, "XSTATE_BV bit 1 with XCR0 = 1")
    r = attempt { $0[520 + 7] = 0x80 }
    #expect(r.0 == gp, "XCOMP_BV[63]: no compacted form")
    r = attempt { $0[520] = 1 }
    #expect(r.0 == gp, "XCOMP_BV non-zero")
    r = attempt { $0[528] = 1 }
    #expect(r.0 == gp, "header bytes 16-23 reserved")
    r = attempt { $0[26] = 1 }
    #expect(r.0 == gp, "MXCSR bit 16 reserved")
    #expect(r.1 == r.2, "nothing restored")
    r = attempt { $0[540] = 0xFF }
    #expect(r.0 == nil, "header bytes 24-63 are not checked")
  }

  @Test func cpuidLeafDAndCR4OSXSAVEFollowTheAdvertisedFeatures() throws {
    let without = CPUIDTable(features: .systemBaseline)
    #expect(without.query(leaf: 0xD, subleaf: 0) == (0, 0, 0, 0))
    let with = CPUIDTable(features: CPUFeatures.systemBaseline.union(CPUFeatures([.xsave])))
    #expect(with.query(leaf: 1, subleaf: 0).ecx & (1 << 26) != 0)
    let d0 = with.query(leaf: 0xD, subleaf: 0)
    #expect(d0.eax == 3 && d0.edx == 0, "supported XCR0 bits: x87 and SSE")
    #expect(d0.ebx == 576 && d0.ecx == 576, "legacy region 512 + header 64")
    let d1 = with.query(leaf: 0xD, subleaf: 1)
    #expect(d1.eax == 1, "XSAVEOPT only: no XSAVEC, XGETBV1, XSAVES")

    let (cpu, _) = makeCPU64([0x0F, 0xA2])  // cpuid
    #expect(CPUFeatures.systemBaseline.allowedCR4 & CR4.osxsave == 0)
    #expect(CPUFeatures([.xsave]).allowedCR4 & CR4.osxsave != 0)
    cpu.state.cpl = 0
    cpu.system.features = CPUFeatures.systemBaseline
    #expect(throws: (any Error).self) { try cpu.system.movToCR(4, CR4.pae | CR4.osxsave) }
    cpu.system.features = CPUFeatures.systemBaseline.union(CPUFeatures([.xsave]))
    try cpu.system.movToCR(4, CR4.pae | CR4.osxsave)
    cpu.state.setGPR(Reg.rax, 1)
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rcx) & (1 << 27) != 0, "OSXSAVE reflects CR4")
  }
}

import Testing

@testable import X86

/// The x87/SSE state as a whole (FXSAVE, FXRSTOR, LDMXCSR, STMXCSR, reset values) and the checks
/// SSE instructions make against CR0 and CR4: the system-level rules the user-mode differential
/// test against the host CPU cannot reach.
@Suite struct SIMDStateTests {
  /// An image with XMMn holding n in every byte and MXCSR `mxcsr`.
  func image(mxcsr: UInt32 = 0x1F80) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 512)
    b[0] = 0x7F
    b[1] = 0x03
    for i in 0..<4 { b[24 + i] = UInt8(truncatingIfNeeded: mxcsr >> (8 * UInt32(i))) }
    for r in 0..<16 { for j in 0..<16 { b[160 + 16 * r + j] = UInt8(r) } }
    return b
  }

  @Test func fxsaveStoresTheImageAndFXRSTORLoadsIt() {
    let (cpu, ram) = makeCPU64([0x0F, 0xAE, 0x00, 0x48, 0x0F, 0xAE, 0x0B])  // fxsave [rax]; fxrstor64 [rbx]
    cpu.loadFXSAVEImage(image())
    cpu.state.setGPR(Reg.rax, 0x2000)
    cpu.state.setGPR(Reg.rbx, 0x3000)
    var other = image(mxcsr: 0x3F80)
    for j in 0..<16 { other[160 + 16 * 5 + j] = 0xA5 }
    ram.load(other, at: 0x3000)
    #expect(cpu.step() == nil)
    #expect(ram.word(0x2000) == 0x037F)
    #expect(ram.qword(0x2000 + 24) & 0xFFFF_FFFF == 0x1F80)
    #expect(ram.qword(0x2000 + 28) & 0xFFFF_FFFF == 0xFFFF, "MXCSR_MASK")
    #expect(ram.qword(0x2000 + 160 + 16 * 7) == 0x0707_0707_0707_0707)
    #expect(cpu.step() == nil)
    #expect(cpu.fxsaveImage()[24] == 0x80 && cpu.fxsaveImage()[25] == 0x3F)
    #expect(cpu.fxsaveImage()[160 + 16 * 5] == 0xA5)
  }

  @Test func misalignedImagesAndReservedMXCSRBitsAreGeneralProtectionFaults() {
    let (cpu, ram) = makeCPU64([0x0F, 0xAE, 0x00])  // fxsave [rax]
    cpu.state.setGPR(Reg.rax, 0x2008)
    #expect(cpu.step() == .exception(vector: 13, errorCode: 0))
    let (restore, restoreRAM) = makeCPU64([0x0F, 0xAE, 0x08])  // fxrstor [rax]
    restore.state.setGPR(Reg.rax, 0x2000)
    restoreRAM.load(image(mxcsr: 0x1_1F80), at: 0x2000)
    let before = restore.fxsaveImage()
    #expect(restore.step() == .exception(vector: 13, errorCode: 0))
    #expect(restore.fxsaveImage() == before, "a refused FXRSTOR changes nothing")
    _ = ram
  }

  @Test func ldmxcsrAndStmxcsr() {
    // ldmxcsr [rax]; stmxcsr [rax+8]; ldmxcsr [rax+16]
    let (cpu, ram) = makeCPU64([0x0F, 0xAE, 0x10, 0x0F, 0xAE, 0x58, 0x08, 0x0F, 0xAE, 0x50, 0x10])
    cpu.state.setGPR(Reg.rax, 0x2000)
    ram.load([0xC0, 0x9F, 0, 0], at: 0x2000)  // 0x9FC0: round toward zero, DAZ, FTZ
    ram.load([0, 0, 1, 0], at: 0x2010)  // bit 16: reserved
    #expect(cpu.step() == nil)
    #expect(cpu.step() == nil)
    #expect(ram.qword(0x2008) & 0xFFFF_FFFF == 0x9FC0)
    #expect(cpu.step() == .exception(vector: 13, errorCode: 0))
  }

  @Test func sseChecksCR0AndCR4First() {
    let pxor: [UInt8] = [0x66, 0x0F, 0xEF, 0xC1]
    var (cpu, _) = makeCPU64(pxor)
    cpu.state.cr0 |= CR0.ts
    #expect(cpu.step() == .exception(vector: 7, errorCode: nil), "CR0.TS: #NM")
    (cpu, _) = makeCPU64(pxor)
    cpu.state.cr0 |= CR0.em
    #expect(cpu.step() == .exception(vector: 6, errorCode: nil), "CR0.EM: #UD")
    (cpu, _) = makeCPU64(pxor)
    cpu.state.cr4 &= ~CR4.osfxsr
    #expect(cpu.step() == .exception(vector: 6, errorCode: nil), "no CR4.OSFXSR: #UD")
    (cpu, _) = makeCPU64([0x0F, 0xAE, 0x00])
    cpu.state.setGPR(Reg.rax, 0x2000)
    cpu.state.cr0 |= CR0.em
    #expect(cpu.step() == .exception(vector: 7, errorCode: nil), "FXSAVE with CR0.EM: #NM")
  }

  @Test func aligned16ByteOperandsMustBeAligned() {
    // movdqa xmm0, [rax]; movdqu xmm1, [rax]
    let (cpu, ram) = makeCPU64([0x66, 0x0F, 0x6F, 0x00, 0xF3, 0x0F, 0x6F, 0x08])
    cpu.state.setGPR(Reg.rax, 0x2004)
    ram.load((0..<16).map { UInt8($0) }, at: 0x2004)
    #expect(cpu.step() == .exception(vector: 13, errorCode: 0))
    cpu.state.rip = 0x1004
    #expect(cpu.step() == nil)
    #expect(cpu.xmm(1).0 == 0x0706_0504_0302_0100)
  }

  @Test func anUnmaskedSIMDExceptionIsXMOrUDByCR4() {
    for osxmmexcpt in [true, false] {
      let (cpu, _) = makeCPU64([0x0F, 0x2E, 0xC1])  // ucomiss xmm0, xmm1
      var i = image(mxcsr: 0x1F00)  // invalid-operation unmasked
      for j in 0..<4 { i[160 + j] = [0x01, 0x00, 0x80, 0x7F][j] }  // xmm0: a signaling NaN
      cpu.loadFXSAVEImage(i)
      if !osxmmexcpt { cpu.state.cr4 &= ~CR4.osxmmexcpt }
      let flags = cpu.state.rflags
      #expect(cpu.step() == .exception(vector: osxmmexcpt ? 19 : 6, errorCode: nil))
      #expect(cpu.fxsaveImage()[24] == 0x01, "IE recorded in MXCSR")
      #expect(cpu.state.rflags == flags, "no result")
    }
  }

  @Test func powerOnResetGivesTheArchitecturalValues() {
    let (cpu, _) = makeCPU64([])
    cpu.loadFXSAVEImage(image(mxcsr: 0x3F80))
    cpu.powerOnReset()
    let i = cpu.fxsaveImage()
    #expect(i[0] == 0x40 && i[1] == 0, "FCW 0040h after RESET")
    #expect(i[24] == 0x80 && i[25] == 0x1F, "MXCSR 1F80h")
    #expect(i[160..<416].allSatisfy { $0 == 0 }, "XMM registers zero")
  }
}

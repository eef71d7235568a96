import Testing

@testable import X86

/// The MMX state contract with the x87 unit (`CPU+MMX.swift`): what MMX instructions and EMMS do
/// to TOP, the abridged tag and the register slots, and the checks they make first (CR0.EM,
/// CR0.TS, a pending x87 exception). The host differential test shows the values after ordinary
/// instructions; these transitions from other x87 states and the system checks it cannot reach.
@Suite struct MMXStateTests {
  /// A FXSAVE image with FSW `fsw`, abridged tag `tag` and slot i holding 0x11*(i+1) in its 10
  /// bytes.
  func image(fsw: UInt16, tag: UInt8) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 512)
    b[0] = 0x7F
    b[1] = 0x03
    b[2] = UInt8(fsw & 0xFF)
    b[3] = UInt8(fsw >> 8)
    b[4] = tag
    b[24] = 0x80
    b[25] = 0x1F
    for i in 0..<8 { for j in 0..<10 { b[32 + 16 * i + j] = UInt8(0x11 * (i + 1)) } }
    return b
  }

  func fsw(_ cpu: CPU) -> UInt16 { UInt16(cpu.fxsaveImage()[2]) | UInt16(cpu.fxsaveImage()[3]) << 8 }

  func slot(_ cpu: CPU, _ i: Int) -> [UInt8] { Array(cpu.fxsaveImage()[(32 + 16 * i)..<(42 + 16 * i)]) }

  @Test func anMMXInstructionZeroesTOPMarksEveryTagValidAndSetsTheWrittenExponent() {
    let (cpu, _) = makeCPU64([0x0F, 0xFE, 0xCA])  // paddd mm1, mm2
    cpu.loadFXSAVEImage(image(fsw: 0x2800 | 0x0001, tag: 0x03))  // TOP = 5, IE set
    #expect(cpu.step() == nil)
    #expect(fsw(cpu) == 0x0001, "TOP cleared, the other FSW bits kept")
    #expect(cpu.fxsaveImage()[4] == 0xFF)
    // The image is in stack order: with TOP = 5, MM1 = R1 is image slot 4 and MM2 = R2 slot 5.
    #expect(slot(cpu, 1) == [UInt8](repeating: 0xBB, count: 8) + [0xFF, 0xFF], "0x55555555 + 0x66666666 per lane")
    #expect(slot(cpu, 2) == [UInt8](repeating: 0x66, count: 10), "a source slot is left alone")
  }

  @Test func readingAnMMXRegisterIntoAGeneralRegisterSwitchesTooWithoutWritingASlot() {
    let (cpu, _) = makeCPU64([0x48, 0x0F, 0x7E, 0xD8])  // movq rax, mm3
    cpu.loadFXSAVEImage(image(fsw: 0x3800, tag: 0))
    #expect(cpu.step() == nil)
    // TOP = 7: MM3 = R3 is image slot (3 - 7) & 7 = 4.
    #expect(cpu.state.gpr(Reg.rax) == 0x5555_5555_5555_5555)
    #expect(fsw(cpu) == 0 && cpu.fxsaveImage()[4] == 0xFF)
    #expect(slot(cpu, 3) == [UInt8](repeating: 0x55, count: 10))
  }

  @Test func emmsEmptiesEveryTagAndZeroesTOP() {
    let (cpu, _) = makeCPU64([0x0F, 0xEF, 0xC0, 0x0F, 0x77])  // pxor mm0, mm0; emms
    cpu.loadFXSAVEImage(image(fsw: 0x1000, tag: 0x81))
    #expect(cpu.step() == nil)
    #expect(cpu.fxsaveImage()[4] == 0xFF)
    #expect(slot(cpu, 0) == [0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF])
    #expect(cpu.step() == nil)
    #expect(cpu.fxsaveImage()[4] == 0)
    #expect(fsw(cpu) & 0x3800 == 0)
    #expect(slot(cpu, 0) == [0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], "EMMS leaves the registers' contents")
  }

  @Test func mmxAndEMMSCheckCR0AndAPendingX87ExceptionFirstAndChangeNothing() {
    for code in [[0x0F, 0xFE, 0xCA], [0x0F, 0x77]] as [[UInt8]] {
      let start = image(fsw: 0x2800, tag: 0x0F)
      var (cpu, _) = makeCPU64(code)
      cpu.loadFXSAVEImage(start)
      cpu.state.cr0 |= CR0.em
      #expect(cpu.step() == .exception(vector: 6, errorCode: nil), "CR0.EM: #UD")
      #expect(fsw(cpu) == 0x2800 && cpu.fxsaveImage()[4] == 0x0F)
      (cpu, _) = makeCPU64(code)
      cpu.loadFXSAVEImage(start)
      cpu.state.cr0 |= CR0.ts
      #expect(cpu.step() == .exception(vector: 7, errorCode: nil), "CR0.TS: #NM")
      #expect(fsw(cpu) == 0x2800 && cpu.fxsaveImage()[4] == 0x0F)
      (cpu, _) = makeCPU64(code)
      cpu.loadFXSAVEImage(image(fsw: 0x2800 | 0x0080 | 0x0004, tag: 0x0F))  // ES and ZE: pending
      #expect(cpu.step() == .exception(vector: 16, errorCode: nil), "FSW.ES: #MF")
      #expect(fsw(cpu) == 0x2884 && cpu.fxsaveImage()[4] == 0x0F)
    }
  }

  @Test func mmxNeedsNoOSFXSRButItsXMMConversionsDo() {
    var (cpu, _) = makeCPU64([0x0F, 0xFE, 0xCA])  // paddd mm1, mm2
    cpu.state.cr4 &= ~CR4.osfxsr
    #expect(cpu.step() == nil)
    (cpu, _) = makeCPU64([0x0F, 0x2A, 0xC1])  // cvtpi2ps xmm0, mm1
    cpu.state.cr4 &= ~CR4.osfxsr
    #expect(cpu.step() == .exception(vector: 6, errorCode: nil))
  }

  @Test func ssse3OnMMXRegistersSwitchesToo() {
    let (cpu, _) = makeCPU64([0x0F, 0x38, 0x1C, 0xC1])  // pabsb mm0, mm1
    cpu.loadFXSAVEImage(image(fsw: 0x3800, tag: 0))
    #expect(cpu.step() == nil)
    #expect(cpu.fxsaveImage()[4] == 0xFF && fsw(cpu) == 0)
    #expect(slot(cpu, 0) == [UInt8](repeating: 0x33, count: 8) + [0xFF, 0xFF], "TOP = 7: MM1 = R1 is image slot 2")
  }
}

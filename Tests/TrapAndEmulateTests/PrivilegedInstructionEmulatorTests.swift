import Testing
import TrapAndEmulate
import VMM
import X86

/// Each trapped instruction emulated on the virtual CPU, with its faults.
@Suite struct PrivilegedInstructionEmulatorTests {
  // MARK: Control registers

  @Test func movFromCR0ReadsTheVirtualCR0() throws {
    let f = try EmulatorFixture()
    let result = try f.run([0x0F, 0x20, 0xC0])  // mov rax, cr0
    #expect(result.action == .resume)
    #expect(f.state.gpr(0) == f.state.cr0)
    #expect(f.state.rip == EmulatorFixture.kernelCode + 3)
  }

  @Test func movToCR3SwitchesTheShadow() throws {
    let f = try EmulatorFixture()
    let oldRoot = f.shadows.activeRoot
    // A second address space: a copy of the root table.
    let newRoot: UInt64 = 0x3F000
    try f.memory.write(newRoot, bytes: try f.memory.read(f.tables.root, count: 0x1000))
    f.state.setGPR(0, newRoot)
    let result = try f.run([0x0F, 0x22, 0xD8])  // mov cr3, rax
    #expect(result.action == .resume)
    #expect(result.shadowRootChanged)
    #expect(f.state.cr3 == newRoot)
    #expect(f.shadows.activeRoot != oldRoot)
    #expect(f.shadows.isPageTableFrame(newRoot))
    #expect(f.state.rip == EmulatorFixture.kernelCode + 3)
  }

  @Test func movToCR0ClearingWPFlushesTheShadows() throws {
    let f = try EmulatorFixture()
    f.state.setGPR(0, f.state.cr0 & ~CR0.wp)
    let flushes = f.shadows.statistics.flushes
    let result = try f.run([0x0F, 0x22, 0xC0])  // mov cr0, rax
    #expect(result.action == .resume)
    #expect(f.state.cr0 & CR0.wp == 0)
    #expect(f.shadows.statistics.flushes == flushes + 1)
    #expect(result.shadowRootChanged)
  }

  @Test func aReservedCR4BitIsGPAndChangesNothing() throws {
    let f = try EmulatorFixture()
    let cr4 = f.state.cr4
    f.state.setGPR(0, cr4 | 1 << 30)
    #expect(try f.run([0x0F, 0x22, 0xE0]).action == reflectGP())  // mov cr4, rax
    #expect(f.state.cr4 == cr4)
    #expect(f.state.rip == EmulatorFixture.kernelCode, "a fault leaves RIP at the instruction")
  }

  @Test func movCRAtVirtualCPL3IsGP() throws {
    let f = try EmulatorFixture()
    try f.enterUserMode()
    #expect(try f.run([0x0F, 0x20, 0xD8]).action == reflectGP())  // mov rax, cr3
    #expect(try f.run([0x0F, 0x22, 0xD8]).action == reflectGP())  // mov cr3, rax
  }

  @Test func loweringCR8OpensTheInterruptWindow() throws {
    let f = try EmulatorFixture()
    f.state.setGPR(0, 9)
    #expect(!(try f.run([0x44, 0x0F, 0x22, 0xC0])).interruptWindowOpened)  // mov cr8, rax
    #expect(f.cpu.taskPriority == 9)
    f.state.setGPR(0, 2)
    #expect(try f.run([0x44, 0x0F, 0x22, 0xC0]).interruptWindowOpened)
    f.state.setGPR(0, 16)
    #expect(try f.run([0x44, 0x0F, 0x22, 0xC0]).action == reflectGP(), "CR8 bits above 3 are reserved")
  }

  // MARK: Descriptor tables

  @Test func lgdtAndLidtLoadTheVirtualRegistersFromGuestMemory() throws {
    let f = try EmulatorFixture()
    try f.memory.write(UInt16(0x57), at: EmulatorFixture.data)
    try f.memory.write(UInt64(0xFFFF_8000_0001_0000), at: EmulatorFixture.data + 2)
    f.state.setGPR(0, EmulatorFixture.data)
    #expect(try f.run([0x0F, 0x01, 0x10]).action == .resume)  // lgdt [rax]
    #expect(f.state.gdtr.base == 0xFFFF_8000_0001_0000 && f.state.gdtr.limit == 0x57)
    #expect(try f.run([0x0F, 0x01, 0x18]).action == .resume)  // lidt [rax]
    #expect(f.state.idtr.base == 0xFFFF_8000_0001_0000 && f.state.idtr.limit == 0x57)
    try f.memory.write(UInt64(0x0000_8000_0000_0000), at: EmulatorFixture.data + 2)
    #expect(try f.run([0x0F, 0x01, 0x10]).action == reflectGP(), "a non-canonical base")
  }

  @Test func ltrAndLldtLoadFromTheGuestsGDT() throws {
    let f = try EmulatorFixture()
    f.state.setSegment(.tr, SegmentCache(selector: 0, base: 0, limit: 0, attributes: 0))
    f.state.setGPR(0, 0x28)
    #expect(try f.run([0x0F, 0x00, 0xD8]).action == .resume)  // ltr ax
    #expect(f.state.segment(.tr).selector == 0x28 && f.state.segment(.tr).base == EmulatorFixture.tss)
    let busy = try f.memory.read(UInt8.self, at: EmulatorFixture.gdt + 0x28 + 5)
    #expect(busy & 0xF == 0xB, "LTR marks the guest's descriptor busy")
    #expect(try f.run([0x0F, 0x00, 0xD8]).action == reflectGP(0x28), "a busy TSS")
    f.state.setGPR(0, 0x38)
    #expect(try f.run([0x0F, 0x00, 0xD0]).action == .resume)  // lldt ax
    #expect(f.state.segment(.ldtr).base == 0x8800)
    f.state.setGPR(0, 0x10)
    #expect(try f.run([0x0F, 0x00, 0xD0]).action == reflectGP(0x10), "not an LDT descriptor")
  }

  @Test func storesOfDescriptorTableRegistersShowTheGuestsValues() throws {
    let f = try EmulatorFixture()
    try f.enterUserMode()
    f.state.setGPR(0, EmulatorFixture.userStack - 0x100)
    #expect(try f.run([0x0F, 0x01, 0x00]).action == .resume)  // sgdt [rax] at CPL 3 (the host's UMIP traps it)
    #expect(try f.memory.read(UInt16.self, at: EmulatorFixture.userStack - 0x100) == 0x47)
    #expect(try f.memory.read(UInt64.self, at: EmulatorFixture.userStack - 0xFE) == EmulatorFixture.gdt)
    #expect(try f.run([0x0F, 0x00, 0xC8]).action == .resume)  // str ax
    #expect(f.state.gpr(0) & 0xFFFF == 0x28)
    f.state.cr4 |= CR4.umip
    #expect(try f.run([0x0F, 0x01, 0x00]).action == reflectGP(), "the guest's own UMIP")
  }

  // MARK: Interrupt flag

  @Test func cliAndStiChangeTheVirtualInterruptFlag() throws {
    let f = try EmulatorFixture()
    let sti = try f.run([0xFB])
    #expect(f.cpu.interruptsEnabled && sti.interruptShadow && sti.interruptWindowOpened)
    let again = try f.run([0xFB])
    #expect(!again.interruptShadow, "STI with IF already set opens no shadow")
    _ = try f.run([0xFA])
    #expect(!f.cpu.interruptsEnabled)
    #expect(f.state.rip == EmulatorFixture.kernelCode + 3)
  }

  @Test func cliAtCPL3NeedsIOPL3() throws {
    let f = try EmulatorFixture()
    try f.enterUserMode(iopl: 0)
    #expect(try f.run([0xFA]).action == reflectGP())
    #expect(f.cpu.interruptsEnabled)
    try f.enterUserMode(iopl: 3)
    #expect(try f.run([0xFA]).action == .resume)
    #expect(!f.cpu.interruptsEnabled)
  }

  @Test func pushfShowsAndPopfLoadsTheVirtualFlags() throws {
    let f = try EmulatorFixture()
    f.state.rflags = Flags.reserved1 | Flags.if | Flags.cf
    #expect(try f.run([0x9C]).action == .resume)  // pushf
    #expect(f.state.gpr(4) == EmulatorFixture.kernelStack - 8)
    #expect(
      try f.memory.read(UInt64.self, at: EmulatorFixture.kernelStack - 8) == Flags.reserved1 | Flags.if | Flags.cf)
    try f.memory.write(UInt64(Flags.reserved1 | 3 << 12), at: EmulatorFixture.kernelStack - 8)
    #expect(try f.run([0x9D]).action == .resume)  // popf at CPL 0: IF and IOPL load
    #expect(f.state.rflags == Flags.reserved1 | 3 << 12)
    #expect(f.state.gpr(4) == EmulatorFixture.kernelStack)
  }

  @Test func popfAtCPL3LeavesIFAndIOPLAlone() throws {
    let f = try EmulatorFixture()
    try f.enterUserMode(iopl: 0)
    f.state.setGPR(4, EmulatorFixture.userStack - 8)
    try f.memory.write(UInt64(Flags.reserved1 | 3 << 12 | Flags.zf), at: EmulatorFixture.userStack - 8)
    #expect(try f.run([0x9D]).action == .resume)
    #expect(f.state.rflags == Flags.reserved1 | Flags.if | Flags.zf)
  }

  // MARK: HLT and port I/O

  @Test func hltHaltsAtCPL0AndIsGPAtCPL3() throws {
    let f = try EmulatorFixture()
    #expect(try f.run([0xF4]).action == .halt)
    #expect(f.state.rip == EmulatorFixture.kernelCode + 1)
    try f.enterUserMode()
    #expect(try f.run([0xF4]).action == reflectGP())
  }

  @Test func inAndOutReportTheAccessForTheBus() throws {
    let f = try EmulatorFixture()
    f.state.setGPR(0, 0xFFFF_FFFF_FFFF_FFFF)
    #expect(try f.run([0xE4, 0x80]).action == .portIn(port: 0x80, size: 1))  // in al, 0x80
    #expect(f.state.rip == EmulatorFixture.kernelCode, "IN retires with its value")
    f.emulator.completePortIn(0x5A)
    #expect(f.state.gpr(0) == 0xFFFF_FFFF_FFFF_FF5A && f.state.rip == EmulatorFixture.kernelCode + 2)
    f.state.setGPR(2, 0x3F8)
    f.state.setGPR(0, 0x1234_5678_9ABC_DEF0)
    #expect(try f.run([0xEF]).action == .portOut(port: 0x3F8, size: 4, value: 0x9ABC_DEF0))  // out dx, eax
    #expect(try f.run([0xED]).action == .portIn(port: 0x3F8, size: 4))  // in eax, dx
    f.emulator.completePortIn(0xCAFE_F00D)
    #expect(f.state.gpr(0) == 0xCAFE_F00D, "a 32-bit IN zero-extends into RAX")
  }

  @Test func portAccessAtCPL3FollowsTheGuestsIOBitmap() throws {
    let f = try EmulatorFixture()
    try f.enterUserMode(iopl: 0)
    #expect(try f.run([0xE6, 0x80]).action == .portOut(port: 0x80, size: 1, value: 0))  // out 0x80, al
    #expect(try f.run([0xE6, 0x81]).action == reflectGP())
    #expect(try f.run([0xE6, 0x7F]).action == reflectGP())
  }

  // MARK: Paging

  @Test func invlpgDropsTheShadowEntry() throws {
    let f = try EmulatorFixture()
    #expect(shadowAccess(EmulatorFixture.data, kind: .read, shadows: f.shadows) == .ok(physical: EmulatorFixture.data))
    #expect(f.shadows.shadowLeaf(EmulatorFixture.data) != nil)
    f.state.setGPR(0, EmulatorFixture.data + 0x10)
    let result = try f.run([0x0F, 0x01, 0x38])  // invlpg [rax]
    #expect(result.action == .resume)
    #expect(f.shadows.shadowLeaf(EmulatorFixture.data) == nil)
    #expect(f.shadows.statistics.invalidations == 1)
    #expect(result.shadowRootChanged, "the real TLB must forget the page too")
    try f.enterUserMode()
    #expect(try f.run([0x0F, 0x01, 0x38]).action == reflectGP())
  }

  @Test func aWriteOfTheEmulationToAGuestPageTableResyncsTheShadows() throws {
    let f = try EmulatorFixture()
    #expect(shadowAccess(EmulatorFixture.data, kind: .read, shadows: f.shadows) == .ok(physical: EmulatorFixture.data))
    let pte = try f.tables.entryAddress(EmulatorFixture.data, level: 1)
    // The guest's PUSHF lands on its own page table (mapped at 0x9000).
    try f.tables.map(0x9000, to: pte & ~0xFFF, leaf: PTE.rw | PTE.a | PTE.d)
    f.state.setGPR(4, 0x9000 + (pte & 0xFFF) + 8)
    #expect(try f.run([0x9C]).action == .resume)
    #expect(f.shadows.shadowLeaf(EmulatorFixture.data) == nil, "the leaf built from the overwritten entry is gone")
    #expect(f.shadows.statistics.resyncs >= 1)
  }

  @Test func aGuestStoreToItsPageTableIsCarriedOutByTheModelAndResyncs() throws {
    let f = try EmulatorFixture()
    #expect(shadowAccess(EmulatorFixture.data, kind: .read, shadows: f.shadows) == .ok(physical: EmulatorFixture.data))
    let pte = try f.tables.entryAddress(EmulatorFixture.data, level: 1)
    try f.tables.map(0x9000, to: pte & ~0xFFF, leaf: PTE.rw | PTE.a | PTE.d)
    let window = 0x9000 + (pte & 0xFFF)
    let newEntry: UInt64 = 0x8_7000 | PTE.p | PTE.rw
    f.state.setGPR(0, window)
    f.state.setGPR(3, newEntry)
    try f.memory.write(f.state.rip, bytes: [0x48, 0x89, 0x18])  // mov [rax], rbx
    #expect(f.shadows.handleFault(linear: window, kind: .write) == .pageTableWrite(physicalAddress: pte))
    let result = f.emulator.executeOnModel()
    #expect(result.action == .resume && result.shadowRootChanged)
    #expect(f.state.rip == EmulatorFixture.kernelCode + 3)
    #expect(try f.memory.read(UInt64.self, at: pte) == newEntry)
    #expect(f.shadows.shadowLeaf(EmulatorFixture.data) == nil)
    #expect(shadowAccess(EmulatorFixture.data, kind: .read, shadows: f.shadows) == .ok(physical: 0x8_7000))
    // A store the guest's tables refuse is its #PF, left to reflect.
    try f.tables.map(0x9000, to: pte & ~0xFFF, leaf: PTE.a | PTE.d)
    f.state.rip = EmulatorFixture.kernelCode
    #expect(f.emulator.executeOnModel().action == .reflect(vector: ExceptionVector.pageFault, errorCode: 3))
    #expect(f.emulator.statistics.modelExecutions == 2)
  }

  // MARK: MSRs

  @Test func wrmsrAndRdmsrUseTheVirtualMSRs() throws {
    let f = try EmulatorFixture()
    f.state.setGPR(1, UInt64(MSRIndex.lstar))
    f.state.setGPR(2, 0xFFFF_FFFF)
    f.state.setGPR(0, 0x8100_0000)
    #expect(try f.run([0x0F, 0x30]).action == .resume)  // wrmsr
    #expect(f.state[offset: CPUStateLayout.lstar] == 0xFFFF_FFFF_8100_0000)
    f.state.setGPR(0, 0)
    f.state.setGPR(2, 0)
    #expect(try f.run([0x0F, 0x32]).action == .resume)  // rdmsr
    #expect(f.state.gpr(0) == 0x8100_0000 && f.state.gpr(2) == 0xFFFF_FFFF)
    f.state.setGPR(2, 0x8000)
    #expect(try f.run([0x0F, 0x30]).action == reflectGP(), "a non-canonical LSTAR")
    f.state.setGPR(1, 0x1234)
    #expect(try f.run([0x0F, 0x32]).action == reflectGP(), "an unknown MSR")
    try f.enterUserMode()
    f.state.setGPR(1, UInt64(MSRIndex.lstar))
    #expect(try f.run([0x0F, 0x32]).action == reflectGP(), "RDMSR at CPL 3")
  }

  @Test func wrmsrOfEFERNXEFlushesTheShadows() throws {
    let f = try EmulatorFixture()
    f.state.setGPR(1, UInt64(MSRIndex.efer))
    let efer = f.state.efer & ~EFER.nxe
    f.state.setGPR(0, efer & 0xFFFF_FFFF)
    f.state.setGPR(2, 0)
    let flushes = f.shadows.statistics.flushes
    #expect(try f.run([0x0F, 0x30]).action == .resume)
    #expect(f.state.efer & EFER.nxe == 0)
    #expect(f.shadows.statistics.flushes == flushes + 1)
  }

  // MARK: Privilege changes

  @Test func iretqToUserModeSwitchesToTheUserShadow() throws {
    let f = try EmulatorFixture()
    let frame = EmulatorFixture.kernelStack - 40
    let values: [UInt64] = [
      EmulatorFixture.userCode, 0x23, Flags.reserved1 | Flags.if, EmulatorFixture.userStack, 0x1B,
    ]
    for (i, v) in values.enumerated() { try f.memory.write(v, at: frame + UInt64(i) * 8) }
    f.state.setGPR(4, frame)
    let kernelRoot = f.shadows.activeRoot
    let result = try f.run([0x48, 0xCF])  // iretq
    #expect(result.action == .resume && result.privilegeChanged && result.interruptWindowOpened)
    #expect(result.returnedFromInterrupt)  // unblocks NMIs
    #expect(f.state.cpl == 3 && f.state.rip == EmulatorFixture.userCode)
    #expect(f.state.gpr(4) == EmulatorFixture.userStack && f.state.segment(.ss).selector == 0x1B)
    #expect(f.shadows.mode == .user && f.shadows.activeRoot != kernelRoot && result.shadowRootChanged)
  }

  @Test func iretqToADPL0SelectorFromCPL3IsGP() throws {
    let f = try EmulatorFixture()
    try f.enterUserMode()
    let frame = EmulatorFixture.userStack - 40
    let values: [UInt64] = [EmulatorFixture.kernelCode, 0x08, Flags.reserved1, EmulatorFixture.kernelStack, 0x10]
    for (i, v) in values.enumerated() { try f.memory.write(v, at: frame + UInt64(i) * 8) }
    f.state.setGPR(4, frame)
    let result = try f.run([0x48, 0xCF])
    #expect(result.action == reflectGP(0x08))
    #expect(!result.returnedFromInterrupt)  // a faulting IRETQ leaves NMIs blocked
    #expect(f.state.cpl == 3)
  }

  @Test func syscallAndSysretMoveBetweenTheModes() throws {
    let f = try EmulatorFixture()
    f.state[offset: CPUStateLayout.star] = 0x0010_0008_0000_0000
    f.state[offset: CPUStateLayout.lstar] = 0x5000
    f.state[offset: CPUStateLayout.sfmask] = Flags.if
    try f.enterUserMode()
    let syscall = try f.run([0x0F, 0x05])
    #expect(syscall.privilegeChanged && f.state.cpl == 0 && f.state.rip == 0x5000)
    #expect(f.state.gpr(1) == EmulatorFixture.userCode + 2 && f.state.gpr(11) & Flags.if != 0)
    #expect(!f.cpu.interruptsEnabled && f.shadows.mode == .kernel)
    // Back with SYSRETQ from the kernel: RCX and R11.
    try f.memory.write(UInt64(0x5000), bytes: [0x48, 0x0F, 0x07])
    let sysret = f.emulator.emulate()
    #expect(sysret.privilegeChanged && f.state.cpl == 3 && f.state.rip == EmulatorFixture.userCode + 2)
    #expect(f.state.segment(.cs).selector == 0x23 && f.state.segment(.ss).selector == 0x1B)
    #expect(f.cpu.interruptsEnabled && f.shadows.mode == .user)
    #expect(try f.run([0x48, 0x0F, 0x07]).action == reflectGP(), "SYSRET at CPL 3")
  }

  @Test func swapgsExchangesTheVirtualGSBases() throws {
    let f = try EmulatorFixture()
    f.state[offset: CPUStateLayout.kernelGSBase] = 0x1234_0000
    #expect(try f.run([0x0F, 0x01, 0xF8]).action == .resume)
    #expect(f.state.segment(.gs).base == 0x1234_0000 && f.state[offset: CPUStateLayout.kernelGSBase] == 0)
  }

  // MARK: Reflection and what is not emulated

  @Test func aGPFromUserModeIsReflectedThroughTheGuestsIDTWithTheFrameItExpects() throws {
    let f = try EmulatorFixture()
    try f.enterUserMode()
    let fault = try f.run([0xF4])  // hlt at CPL 3
    #expect(fault.action == reflectGP())
    let result = f.emulator.reflect(vector: ExceptionVector.generalProtection, errorCode: 0)
    #expect(result.action == .resume && result.privilegeChanged)
    #expect(f.state.cpl == 0 && f.state.rip == EmulatorFixture.handler && !f.cpu.interruptsEnabled)
    let rsp = f.state.gpr(4)
    #expect(rsp == EmulatorFixture.kernelStack - 48, "RSP0 from the guest's TSS, six slots")
    let frame = try (0..<6).map { try f.memory.read(UInt64.self, at: rsp + UInt64($0) * 8) }
    // A fault's saved RFLAGS has RF set, as the CPU pushes it.
    let flags = Flags.reserved1 | Flags.if | Flags.rf
    #expect(frame == [0, EmulatorFixture.userCode, 0x23, flags, EmulatorFixture.userStack, 0x1B])
    #expect(f.shadows.mode == .kernel)
  }

  @Test func anExternalInterruptInKernelModeStaysOnTheKernelStack() throws {
    let f = try EmulatorFixture()
    f.state.rflags = Flags.reserved1 | Flags.if
    f.state.setGPR(4, 0x5800)
    let result = f.emulator.reflect(vector: 0x20, kind: .external)
    #expect(result.action == .resume && !result.privilegeChanged)
    #expect(f.state.rip == EmulatorFixture.handler && !f.cpu.interruptsEnabled)
    #expect(f.state.gpr(4) == 0x5800 - 40, "RIP, CS, RFLAGS, RSP, SS; no error code")
    let frame = try (0..<5).map { try f.memory.read(UInt64.self, at: 0x5800 - 40 + UInt64($0) * 8) }
    #expect(frame[0] == EmulatorFixture.kernelCode && frame[1] == 0x08 && frame[2] & Flags.if != 0)
    #expect(frame[3] == 0x5800 && frame[4] == 0x10)
  }

  @Test func softwareInterruptsFromUserModeHonourTheGuestsGateDPL() throws {
    let f = try EmulatorFixture()
    try f.enterUserMode()
    f.state.rip = EmulatorFixture.userCode + 2  // after the INT instruction
    #expect(f.emulator.reflect(vector: 0x80, kind: .software(.intN)).action == .resume)
    #expect(f.state.cpl == 0 && f.state.rip == EmulatorFixture.handler)
    #expect(try f.memory.read(UInt64.self, at: f.state.gpr(4)) == EmulatorFixture.userCode + 2)
    // Through a DPL-0 gate the CPU raises #GP(vector·8+2) instead, delivered through vector 13.
    try f.enterUserMode()
    #expect(f.emulator.reflect(vector: 0x81, kind: .software(.intN)).action == .resume)
    #expect(f.state.cpl == 0)
    #expect(try f.memory.read(UInt64.self, at: f.state.gpr(4)) == 0x81 << 3 | 2)
  }

  @Test func aPageFaultIsReflectedWithTheVirtualCR2() throws {
    let f = try EmulatorFixture()
    let result = f.emulator.reflect(vector: ExceptionVector.pageFault, errorCode: 6, pageFaultAddress: 0xDEAD_B000)
    #expect(result.action == .resume && f.state.cr2 == 0xDEAD_B000)
    #expect(try f.memory.read(UInt64.self, at: f.state.gpr(4)) == 6)
  }

  @Test func instructionsThatDoNotTrapAreLeftToTheMonitor() throws {
    let f = try EmulatorFixture()
    #expect(try f.run([0x90]).action == .notEmulated("nop"))
    #expect(try f.run([0x0F, 0x0B]).action == .notEmulated("ud2"))
    #expect(try f.run([0x06]).action == .reflect(vector: ExceptionVector.invalidOpcode, errorCode: nil))
    #expect(f.emulator.statistics.instructionsEmulated == 3)
    #expect(f.emulator.statistics.notEmulated == 2 && f.emulator.statistics.faultsRaised == 1)
  }

  @Test func aFetchFromAnUnmappedPageIsTheGuestsPageFault() throws {
    let f = try EmulatorFixture()
    f.state.rip = 0x5_0000
    #expect(f.emulator.emulate().action == .reflect(vector: ExceptionVector.pageFault, errorCode: 0x10))
    #expect(f.state.cr2 == 0x5_0000)
  }
}

import Testing
import X86

/// DR0-DR3 breakpoints armed by DR7: instruction breakpoints fault before the instruction (RF lets
/// it run once the handler returns), data breakpoints trap after the access, DR6 says which fired.
@Suite struct HardwareBreakpointTests {
  static let dr6 = CPUStateLayout.debugRegisters + 6 * 8
  static let dr7 = CPUStateLayout.debugRegisters + 7 * 8

  func setBreakpoint(_ cpu: CPU, _ n: Int, address: UInt64, rw: UInt64, length: UInt64) {
    cpu.state[offset: CPUStateLayout.debugRegisters + 8 * n] = address
    let enable: UInt64 = 1 << UInt64(2 * n)
    let control = (rw | length << 2) << UInt64(16 + 4 * n)
    cpu.state[offset: Self.dr7] = cpu.state[offset: Self.dr7] | enable | control
  }

  @Test func anInstructionBreakpointFaultsBeforeTheInstructionAndRFLetsItRun() {
    // nop; inc eax; inc eax
    let (cpu, _) = makeCPU64([0x90, 0xFF, 0xC0, 0xFF, 0xC0])
    setBreakpoint(cpu, 2, address: 0x1001, rw: 0, length: 0)
    #expect(cpu.step() == nil)
    #expect(cpu.step() == .exception(vector: 1, errorCode: nil))
    #expect(cpu.state.rip == 0x1001 && cpu.state.gpr(Reg.rax) == 0)
    #expect(cpu.state[offset: Self.dr6] & 0xF == 0b0100)
    // RF is set (as the handler's IRET would restore it): the instruction runs, RF clears after it.
    #expect(cpu.state.rflags & Flags.rf != 0)
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rax) == 1 && cpu.state.rflags & Flags.rf == 0)
  }

  @Test func anInstructionBreakpointStopsTheFastLoop() {
    // again: inc eax; jmp again
    let (cpu, _) = makeCPU64([0xFF, 0xC0, 0xEB, 0xFC])
    _ = cpu.run(budget: 100)  // cached, fast forms
    cpu.state.rip = 0x1000
    setBreakpoint(cpu, 0, address: 0x1002, rw: 0, length: 0)
    #expect(cpu.run(budget: 100) == .exception(vector: 1, errorCode: nil))
    #expect(cpu.state.rip == 0x1002)
  }

  @Test func aWriteBreakpointTrapsAfterTheStoreAndIgnoresReads() {
    // mov eax, [rdi]; mov [rdi], ebx; nop
    let (cpu, ram) = makeCPU64([0x8B, 0x07, 0x89, 0x1F, 0x90])
    cpu.state.setGPR(Reg.rdi, 0x3002)
    cpu.state.setGPR(Reg.rbx, 0xCAFE)
    setBreakpoint(cpu, 1, address: 0x3000, rw: 1, length: 3)  // 4 bytes at 0x3000, writes
    #expect(cpu.run(budget: 1) == .budgetExhausted)  // the read does not hit a write breakpoint
    #expect(cpu.run(budget: 10) == .exception(vector: 1, errorCode: nil))
    #expect(cpu.state.rip == 0x1004)  // a trap: after the store
    #expect(ram.word(0x3002) == 0xCAFE)
    #expect(cpu.state[offset: Self.dr6] & 0xF == 0b0010)
  }

  @Test func aReadWriteBreakpointCatchesAWarmFastLoad() {
    // again: mov rax, [rdi]; jmp again
    let (cpu, _) = makeCPU64([0x48, 0x8B, 0x07, 0xEB, 0xFB])
    cpu.state.setGPR(Reg.rdi, 0x3008)
    _ = cpu.run(budget: 100)  // the load is cached and its page in the TLB
    cpu.state.rip = 0x1000
    setBreakpoint(cpu, 3, address: 0x300C, rw: 3, length: 1)  // 2 bytes at 0x300C, reads or writes
    #expect(cpu.run(budget: 100) == .exception(vector: 1, errorCode: nil))
    #expect(cpu.state.rip == 0x1003)
    #expect(cpu.state[offset: Self.dr6] & 0xF == 0b1000)
  }

  @Test func aDisabledBreakpointNeverFires() {
    let (cpu, _) = makeCPU64([0x90, 0x90, 0x90])
    cpu.state[offset: CPUStateLayout.debugRegisters] = 0x1001
    cpu.state[offset: Self.dr7] = 0  // L0/G0 clear
    #expect(cpu.run(budget: 3) == .budgetExhausted)
  }

  @Test func anIOBreakpointTrapsAfterThePortAccessOnlyWithCR4DE() {
    for de in [true, false] {
      // out 0x80, al; nop
      let (cpu, _) = makeCPU64([0xE6, 0x80, 0x90])
      cpu.state.rflags |= 3 << 12  // IOPL 3: ring 3 may use ports
      if de { cpu.state.cr4 |= CR4.de }
      setBreakpoint(cpu, 0, address: 0x80, rw: 2, length: 0)
      #expect(cpu.step() == .portOut(port: 0x80, size: 1, value: 0))
      // Answered: the OUT retires and, with CR4.DE, traps.
      #expect(cpu.step() == (de ? .exception(vector: 1, errorCode: nil) : nil))
      #expect(cpu.state.rip == 0x1002)
      #expect(cpu.state[offset: Self.dr6] & 0xF == (de ? 1 : 0))
    }
  }

  @Test func generalDetectFaultsTheDebugRegisterAccessOnce() {
    // mov rax, dr7
    let (cpu, _) = makeCPU64([0x0F, 0x21, 0xF8])
    cpu.state.cpl = 0
    cpu.state[offset: Self.dr7] = DebugControl.generalDetect | 0x400
    #expect(cpu.step() == .exception(vector: 1, errorCode: nil))
    #expect(cpu.state.rip == 0x1000)
    #expect(cpu.state[offset: Self.dr6] & DebugStatus.registerAccess != 0)
    #expect(cpu.state[offset: Self.dr7] & DebugControl.generalDetect == 0)  // cleared for the handler
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rax) == 0x400)
  }
}

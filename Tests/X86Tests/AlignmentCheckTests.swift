import Testing
import X86

/// #AC (vector 17, error code 0): a misaligned explicit data access at CPL 3 faults when CR0.AM and
/// RFLAGS.AC are both set; it never fires at CPL 0 or with either bit clear, and a page fault on
/// the same access wins.
@Suite struct AlignmentCheckTests {
  /// mov rax, [rdi] at 0x1000 in flat 64-bit user mode, with alignment checking as given.
  func makeLoad(address: UInt64, am: Bool, ac: Bool, cpl: Int = 3) -> CPU {
    let (cpu, _) = makeCPU64([0x48, 0x8B, 0x07, 0x48, 0x8B, 0x07])
    cpu.state.setGPR(Reg.rdi, address)
    if am { cpu.state.cr0 |= CR0.am }
    if ac { cpu.state.rflags |= Flags.ac }
    cpu.state.cpl = cpl
    return cpu
  }

  @Test func misalignedLoadAtCPL3Faults() {
    let cpu = makeLoad(address: 0x3004, am: true, ac: true)
    #expect(cpu.step() == .exception(vector: 17, errorCode: 0))
    #expect(cpu.state.rip == 0x1000)
    // Again through the run loop, now that the load is a cached fast form.
    #expect(cpu.run(budget: 10) == .exception(vector: 17, errorCode: 0))
    #expect(cpu.state.rip == 0x1000)
  }

  @Test func alignedOrUncheckedLoadsDoNotFault() {
    for (address, am, ac, cpl) in [
      (UInt64(0x3008), true, true, 3),  // aligned
      (0x3004, false, true, 3),  // CR0.AM clear
      (0x3004, true, false, 3),  // RFLAGS.AC clear
      (0x3004, true, true, 0),  // supervisor
    ] {
      let cpu = makeLoad(address: address, am: am, ac: ac, cpl: cpl)
      #expect(cpu.run(budget: 2) == .budgetExhausted, "address \(address) AM \(am) AC \(ac) CPL \(cpl)")
    }
  }

  @Test func misalignedPushFaultsBeforeWriting() {
    let (cpu, ram) = makeCPU64([0x53])  // push rbx
    cpu.state.setGPR(Reg.rsp, 0x8004)
    cpu.state.setGPR(Reg.rbx, 0xAAAA)
    cpu.state.cr0 |= CR0.am
    cpu.state.rflags |= Flags.ac
    #expect(cpu.step() == .exception(vector: 17, errorCode: 0))
    #expect(cpu.state.gpr(Reg.rsp) == 0x8004)
    #expect(ram.qword(0x7FFC) == 0)
  }

  @Test func aPageFaultOnTheSameAccessWins() {
    let cpu = makeLoad(address: 0x30_0004, am: true, ac: true)  // past the 2 MiB of test RAM
    #expect(cpu.step() == .exception(vector: 14, errorCode: 4))
  }
}

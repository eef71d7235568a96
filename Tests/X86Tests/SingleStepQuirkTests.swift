import Testing

@testable import X86

/// The chip-specific behaviours the SingleStep vectors showed, one small case each, so they stay
/// covered on machines without the vector files (docs/fidelity/singlestep.md).
@Suite struct SingleStepQuirkTests {
  /// Runs one instruction in real mode at 0000:0100 with SS:SP = 0000:1000; an exception is
  /// delivered through the (zeroed) IVT, so the registers show what the chip left behind.
  func run(_ model: CPUModel, _ code: [UInt8], setup: (CPU) -> Void) -> (CPU, TestRAM) {
    let (cpu, ram) = makeCPUReal(model, code)
    setup(cpu)
    _ = cpu.step()
    return (cpu, ram)
  }

  func al(_ cpu: CPU) -> UInt64 { cpu.state.gpr(Reg.rax) & 0xFF }

  @Test func daaWithAuxiliaryCarryComparesAgainst9FOnThe8086() {
    for (model, expected, carry) in [(CPUModel.i8086, UInt64(0xA0), false), (.i80286, 0x00, true)] {
      let (cpu, _) = run(model, [0x27]) { cpu in
        cpu.state.setGPR(Reg.rax, 0x9A)
        cpu.state.rflags = (cpu.state.rflags | Flags.af) & ~Flags.cf
      }
      #expect(al(cpu) == expected, "\(model)")
      #expect((cpu.state.rflags & Flags.cf != 0) == carry, "\(model)")
    }
  }

  @Test func dasWithAuxiliaryCarryComparesAgainst9FOnThe8086() {
    let (cpu, _) = run(.i8086, [0x2F]) { cpu in
      cpu.state.setGPR(Reg.rax, 0x9E)
      cpu.state.rflags = (cpu.state.rflags | Flags.af) & ~Flags.cf
    }
    #expect(al(cpu) == 0x98 && cpu.state.rflags & Flags.cf == 0)
  }

  @Test func aamZeroLeavesTheFlagsOfAZeroResultOnThe8086() {
    let (cpu, ram) = run(.i8086, [0xD4, 0x00]) { cpu in
      cpu.state.setGPR(Reg.rax, 0xC4C4)
      cpu.state.rflags |= Flags.sf
    }
    // #DE delivered: FLAGS, CS, IP pushed; the pushed FLAGS show SF=0, ZF=1, PF=1.
    #expect(cpu.state.gpr(Reg.rsp) == 0x0FFA)
    let pushed = UInt64(ram.word(0x0FFE))
    #expect(pushed & (Flags.sf | Flags.zf | Flags.pf) == Flags.zf | Flags.pf)
    #expect(cpu.state.gpr(Reg.rax) & 0xFFFF == 0xC4C4)
  }

  @Test func the80286CountsAFaultingRepWriteTwiceInCX() {
    // REP STOSW with ES:DI = 0:FFFF: #GP(13); DI has advanced, CX is 2 lower.
    let (cpu, _) = run(.i80286, [0xF3, 0xAB]) { cpu in
      cpu.state.setGPR(Reg.rcx, 5)
      cpu.state.setGPR(Reg.rdi, 0xFFFF)
    }
    #expect(cpu.state.gpr(Reg.rsp) == 0x0FFA)
    #expect(cpu.state.gpr(Reg.rcx) == 3 && cpu.state.gpr(Reg.rdi) == 0x0001)
  }

  @Test func the80286CountsAFaultingRepReadOnceInCX() {
    // REP LODSW with DS:SI = 0:FFFF.
    let (cpu, _) = run(.i80286, [0xF3, 0xAD]) { cpu in
      cpu.state.setGPR(Reg.rcx, 5)
      cpu.state.setGPR(Reg.rsi, 0xFFFF)
    }
    #expect(cpu.state.gpr(Reg.rcx) == 4 && cpu.state.gpr(Reg.rsi) == 0x0001)
  }

  @Test func the80286ComparesDIFirstAndAdvancesItWhenSIFaults() {
    // CMPSW with SI = FFFF: DI was read and advanced, then the read at SI faulted.
    let (a, _) = run(.i80286, [0xA7]) { cpu in
      cpu.state.setGPR(Reg.rsi, 0xFFFF)
      cpu.state.setGPR(Reg.rdi, 0x0010)
    }
    #expect(a.state.gpr(Reg.rsi) == 0x0001 && a.state.gpr(Reg.rdi) == 0x0012)
    // REPE CMPSW with DI = FFFF: the first read faults before the iteration is counted.
    let (b, _) = run(.i80286, [0xF3, 0xA7]) { cpu in
      cpu.state.setGPR(Reg.rcx, 5)
      cpu.state.setGPR(Reg.rsi, 0x0010)
      cpu.state.setGPR(Reg.rdi, 0xFFFF)
    }
    #expect(b.state.gpr(Reg.rcx) == 5 && b.state.gpr(Reg.rsi) == 0x0010 && b.state.gpr(Reg.rdi) == 0x0001)
  }

  @Test(arguments: [(CPUModel.i80286, UInt64(0x0FFC)), (.i80386, 0x0FFA)])
  func popToAFaultingDestinationKeepsSPOnlyOnThe80286(_ model: CPUModel, _ sp: UInt64) {
    // POP word [SI] with SI = FFFF: #GP(13) after the pop (SP 1000 -> 1002) on the 80286; the
    // 80386 restarts the instruction with SP unchanged. Then FLAGS, CS, IP are pushed.
    let (cpu, _) = run(model, [0x8F, 0x04]) { cpu in cpu.state.setGPR(Reg.rsi, 0xFFFF) }
    #expect(cpu.state.gpr(Reg.rsp) == sp)
  }
}

import X86

/// Privileged and system instructions: CPUID/RDTSC, MSRs, privilege changes, compatibility
/// mode, software interrupts, port I/O, flags, debug registers, faults, control registers.
extension SystemProgramGenerator {
  // MARK: Privileged and system instructions

  mutating func cpuidOrTSC() {
    switch rng.below(3) {
    case 0:
      asm.movImm32(0, rng.pick([0, 1, 4, 7, 0xB, 0xD, 0x8000_0000, 0x8000_0001, 0x8000_0008, 0x4000_0000, 0x1234]))
      asm.movImm32(1, UInt32(rng.below(3)))
      asm.raw([0x0F, 0xA2])
    case 1: asm.raw([0x0F, 0x31])
    default: asm.raw([0x0F, 0x01, 0xF9])
    }
  }

  /// RDMSR/WRMSR of harmless MSRs (TSC_AUX, KERNEL_GS_BASE, FS/GS base with an access through
  /// the segment afterwards, PAT, EFER unchanged, the TSC), SWAPGS; #GP at CPL 3.
  mutating func msr() {
    let base = SystemLayout.data + UInt64(rng.below(SystemLayout.dataPages - 1)) << 12
    switch rng.below(6) {
    case 0, 1:
      let index = rng.pick([MSRIndex.fsBase, MSRIndex.gsBase, MSRIndex.kernelGSBase, MSRIndex.tscAux])
      let value: UInt64 = rng.chance(0.1) ? 0x8000_0000_0000_0000 : base
      guarded { g in
        g.asm.movImm32(1, index)
        g.asm.movImm32(0, UInt32(truncatingIfNeeded: value))
        g.asm.movImm32(2, UInt32(truncatingIfNeeded: value >> 32))
        g.asm.raw([0x0F, 0x30])
      }
      let reg = pickFree()
      asm.movImm32(3, UInt32(rng.below(0x800)))
      put(
        size: 64, prefixes: [rng.chance(0.5) ? 0x64 : 0x65], opcode: [rng.chance(0.5) ? 0x8B : 0x89], reg: reg,
        rm: .memory(base: 3, index: nil, scale: 1, displacement: 0))
    case 2:
      guarded { g in
        g.asm.movImm32(
          1,
          g.rng.pick([
            MSRIndex.efer, MSRIndex.star, MSRIndex.lstar, MSRIndex.apicBase, MSRIndex.pat, MSRIndex.tsc, 0x1234,
          ]))
        g.asm.raw([0x0F, 0x32])
      }
    case 3:
      guarded { g in
        g.asm.movImm32(1, MSRIndex.pat)
        g.asm.movImm32(0, 0x0007_0406)
        g.asm.movImm32(2, 0x0007_0406)
        g.asm.raw([0x0F, 0x30])
      }
    case 4:
      guarded { g in
        g.asm.movImm32(1, MSRIndex.tsc)
        g.asm.movImm32(0, UInt32(g.rng.below(1 << 20)))
        g.asm.movImm32(2, 0)
        g.asm.raw([0x0F, 0x30])
        g.asm.raw([0x0F, 0x31])
      }
    default:
      guarded { g in g.asm.raw([0x0F, 0x01, 0xF8]) }  // swapgs
    }
  }

  /// SYSCALL (to CPL 0, the handler jumps back to RCX), SYSRET or IRETQ to CPL 3 (IF set),
  /// IRETQ to the same level.
  mutating func privilegeChange() {
    switch rng.below(4) {
    case 0:
      asm.raw([0x0F, 0x05])
      cpl = 0
    case 1:
      guarded { g in
        let user = g.asm.newLabel()
        g.asm.movAddress(1, user)
        var flags: UInt64 = 0x202 | UInt64(g.rng.below(0x100)) & 0xD5
        if g.rng.chance(0.1) { flags |= 0x4_0000 }  // AC
        if g.rng.chance(0.05) { flags |= 0x100 }  // TF
        g.asm.movImm32(11, UInt32(flags))
        g.asm.raw([0x48, 0x0F, 0x07])  // sysretq
        g.asm.bind(user)
      }
      cpl = 3
    default:
      let toUser = rng.chance(0.7)
      guarded { g in
        let target = g.asm.newLabel()
        g.asm.raw([0x48, 0x89, 0xE0])  // mov rax, rsp
        if toUser || g.cpl == 3 {
          g.asm.raw([0x6A, UInt8(SystemLayout.userSS)])
        } else {
          g.asm.raw([0x6A, UInt8(SystemLayout.kernelSS)])
        }
        g.asm.push(0)
        g.asm.raw([0x9C, 0x48, 0x81, 0x0C, 0x24] + littleEndian(0x200, count: 4))  // pushfq; or qword [rsp], IF
        g.asm.raw([0x6A, UInt8(toUser || g.cpl == 3 ? SystemLayout.userCS : SystemLayout.kernelCS)])
        g.asm.pushAddress(target)
        g.asm.raw([0x48, 0xCF])
        g.asm.bind(target)
      }
      if toUser { cpl = 3 }
    }
  }

  /// IRETQ to 32-bit code at CPL 3 (the user code32 selector), a few instructions there (the
  /// interpreter runs them inside dbt), and back to 64-bit code by a far return.
  mutating func compatibilityTrip() {
    let code = asm.newLabel()
    let back = asm.newLabel()
    asm.raw([0x48, 0x89, 0xE0])  // mov rax, rsp
    asm.raw([0x6A, UInt8(SystemLayout.userSS)])
    asm.push(0)
    asm.raw([0x9C, 0x48, 0x81, 0x0C, 0x24] + littleEndian(0x200, count: 4))
    asm.raw([0x6A, UInt8(SystemLayout.userCS32)])
    asm.pushAddress(code)
    asm.raw([0x48, 0xCF])
    asm.bind(code)
    let start = asm.here
    let regs = [0, 1, 2, 3, 5, 6, 7]
    for _ in 0..<(rng.below(6) + 1) {
      let d = rng.pick(regs)
      switch rng.below(4) {
      case 0: put(opcode: [UInt8(rng.below(8)) << 3 | 1], reg: rng.pick(regs), rm: .register(d))
      case 1: asm.movImm32(d, UInt32(truncatingIfNeeded: rng.next()))
      case 2:
        asm.movImm32(3, UInt32(SystemLayout.data + UInt64(rng.below(0x3000))))
        put(
          opcode: [rng.chance(0.5) ? 0x89 : 0x8B], reg: d == 3 ? 0 : d,
          rm: .memory(base: 3, index: nil, scale: 1, displacement: 0))
      default:
        asm.raw([0x50 + UInt8(d), 0x58 + UInt8(rng.pick(regs))])  // push r32; pop r32
      }
    }
    asm.raw([0x6A, UInt8(SystemLayout.userCS)])
    asm.pushAddress(back)
    asm.raw([0xCB])  // retf (32-bit)
    code32.append(start..<asm.here)
    asm.bind(back)
    cpl = 3
  }

  /// INT 0x80 (allowed at CPL 3), INT3, INT 0x81 (gate DPL 0: #GP at CPL 3), INT 0x90 (no gate: #NP).
  mutating func softwareInterrupt() {
    switch rng.below(4) {
    case 0, 1: asm.raw([0xCD, 0x80])
    case 2: asm.raw([0xCC])
    default: guarded { g in g.asm.raw([0xCD, g.rng.chance(0.5) ? 0x81 : 0x90]) }
    }
  }

  /// IN/OUT on the test port at every width (DX or imm8), and the denied port (#GP at CPL 3).
  mutating func portIO() {
    let port = rng.chance(0.85) ? SystemLayout.testPort : SystemLayout.deniedPort
    guarded { g in
      let width = g.rng.below(3)
      let opSize: [UInt8] = width == 1 ? [0x66] : []
      let wide: UInt8 = width == 0 ? 0 : 1
      if g.rng.chance(0.5) {
        g.asm.movImm32(2, UInt32(port))
        g.asm.raw(opSize + [g.rng.chance(0.5) ? 0xEE | wide : 0xEC | wide])
      } else {
        g.asm.raw(opSize + [g.rng.chance(0.5) ? 0xE6 | wide : 0xE4 | wide, UInt8(port)])
      }
    }
  }

  /// PUSHF/POPF changing arithmetic flags, DF, IF (CPL 0 only; ignored at CPL 3), AC, and TF for
  /// a few instructions (single-step traps the translator leaves to the interpreter).
  mutating func flags() {
    asm.raw([0x9C])
    let reg = pickFree()
    asm.pop(reg)
    var set: UInt64 = UInt64(rng.below(0x100)) & 0xD5
    var clear: UInt64 = 0xD5 | 0x400
    if rng.chance(0.3) { clear |= 0x200 } else { set |= 0x200 }
    if rng.chance(0.1) { set |= 0x4_0000 } else { clear |= 0x4_0000 }
    if rng.chance(0.05) { set |= 0x400 }
    let trace = rng.chance(0.2)
    if trace { set |= 0x100 }
    put(size: 64, opcode: [0x81], reg: 4, rm: .register(reg), immediate: littleEndian(~clear, count: 4))
    put(size: 64, opcode: [0x81], reg: 1, rm: .register(reg), immediate: littleEndian(set, count: 4))
    asm.push(reg)
    asm.raw([0x9D])
    if cpl == 0 { interruptsOn = set & 0x200 != 0 }
    if trace || set & 0x4_0000 != 0 {
      burst(rng.below(5) + 1)
      asm.raw([0x9C])
      put(
        size: 64, opcode: [0x81], reg: 4, rm: .memory(base: 4, index: nil, scale: 1, displacement: 0),
        immediate: littleEndian(~UInt64(0x4_0500), count: 4))
      asm.raw([0x9D])
    }
  }

  /// CLI, STI, STI; HLT (the timer wakes it), HLT with interrupts on: CPL 0 only (#GP at CPL 3).
  mutating func interruptFlag() {
    switch rng.below(4) {
    case 0:
      guarded { g in g.asm.raw([0xFA]) }
      if cpl == 0 { interruptsOn = false }
    case 1:
      guarded { g in g.asm.raw([0xFB]) }
      if cpl == 0 { interruptsOn = true }
    default:
      guard interruptsOn || cpl == 0 else { return burst(1) }
      guarded { g in g.asm.raw(g.rng.chance(0.5) ? [0xFB, 0xF4] : [0xF4]) }
      if cpl == 0 { interruptsOn = true }
    }
  }

  /// Arms DR0-DR3: an instruction breakpoint on code later in the item (or in a loop, on the next
  /// iteration), or a data breakpoint on memory the item then touches; reads DR6/DR7; disarms.
  mutating func debugRegisters() {
    let n = rng.below(4)
    switch rng.below(4) {
    case 0:
      let target = asm.newLabel()
      guarded { g in
        g.asm.movAddress(0, target)
        g.asm.writeDR(n, 0)
        g.asm.movImm32(0, 1 << UInt32(2 * n) | 0x400)
        g.asm.writeDR(7, 0)
      }
      burst(rng.below(3))
      asm.bind(target)
      burst(rng.below(3) + 1)
    case 1:
      let address = SystemLayout.data + UInt64(rng.below(SystemLayout.dataPages << 12)) & ~7
      let len = rng.pick([0, 1, 3, 2])
      let kind = rng.pick([1, 3])
      guarded { g in
        g.asm.movImm32(0, UInt32(address))
        g.asm.writeDR(n, 0)
        g.asm.movImm32(0, 1 << UInt32(2 * n) | UInt32(kind | len << 2) << UInt32(16 + 4 * n))
        g.asm.writeDR(7, 0)
      }
      let reg = pickFree()
      asm.movImm32(3, UInt32(address + UInt64(rng.below(4))))
      put(
        size: 32, opcode: [rng.chance(0.5) ? 0x89 : 0x8B], reg: reg == 3 ? 0 : reg,
        rm: .memory(base: 3, index: nil, scale: 1, displacement: 0))
      burst(rng.below(3))
    case 2:
      guarded { g in
        g.asm.readDR(g.pickFree(), 7)
        g.asm.readDR(g.pickFree(), 6)
      }
    default:
      guarded { g in
        g.asm.raw([0x31, 0xC0])
        g.asm.writeDR(7, 0)
      }
    }
  }

  /// Non-canonical addresses: a load (#GP), a jump (#GP at the jump), a push at CPL 3 (#SS).
  mutating func nonCanonical() {
    let address = rng.pick([0x8000_0000_0000_0000, 0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_F000] as [UInt64])
    switch rng.below(3) {
    case 0:
      guarded { g in
        let reg = g.pickFree()
        g.asm.movImm64(reg, address)
        g.put(size: 64, opcode: [0x8B], reg: 0, rm: .memory(base: reg, index: nil, scale: 1, displacement: 0))
      }
    case 1:
      guarded { g in
        g.asm.movImm64(0, address)
        g.asm.raw([0xFF, 0xE0])  // jmp rax
      }
    default:
      guard cpl == 3 else { return burst(1) }
      let resume = asm.newLabel()
      asm.raw([0x48, 0x89, 0xE5])  // mov rbp, rsp
      asm.movAddress(14, resume)
      asm.movImm64(4, address)
      asm.push(0)
      asm.bind(resume)
      asm.raw([0x48, 0x89, 0xEC])  // mov rsp, rbp
      asm.raw([0x45, 0x31, 0xF6])
    }
  }

  /// DIV by zero and IDIV overflow (#DE).
  mutating func divideError() {
    guarded { g in
      if g.rng.chance(0.5) {
        g.asm.raw([0x31, 0xC9, 0xF7, 0xF1])  // xor ecx, ecx; div ecx
      } else {
        g.asm.movImm32(0, 0x8000_0000)
        g.asm.raw([0x99])  // cdq
        g.asm.movImm32(1, 0xFFFF_FFFF)
        g.asm.raw([0xF7, 0xF9])  // idiv ecx
      }
    }
  }

  /// CR0.WP toggled (supervisor writes to read-only pages), CR4.PGE toggled (a full flush), CR8.
  mutating func controlRegisters() {
    guarded { g in
      switch g.rng.below(3) {
      case 0:
        g.asm.readCR(0, 0)
        g.asm.raw([0x48, 0x35] + littleEndian(0x1_0000, count: 4))
        g.asm.writeCR(0, 0)
      case 1:
        g.asm.readCR(0, 4)
        g.asm.raw([0x48, 0x35] + littleEndian(0x80, count: 4))
        g.asm.writeCR(4, 0)
      default:
        g.asm.movImm32(0, UInt32(g.rng.below(16)))
        g.asm.raw([0x44, 0x0F, 0x22, 0xC0])  // mov cr8, rax
      }
    }
    if rng.chance(0.5) { faultAccess() }
  }
}

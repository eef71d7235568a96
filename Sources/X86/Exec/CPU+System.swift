/// System instructions: the core's dispatch hands them here and the system layer (`SystemUnit`)
/// carries them out, for every CPU model. What a model lacks is #UD here (`CPUModel`: no control
/// or debug registers before the 80386, no CR4, CR8 or MSRs on it); what a model does differently
/// is a property of the model consulted by the one implementation (the 80286's SGDT/SMSW fill
/// bits). The flat-user oracle mode (`configureFlatUser64`) runs at CPL 3 without descriptor
/// tables, so every privileged instruction faults there before reaching the system layer.
extension CPU {
  /// Executes a system instruction. Returns true when it set RIP itself (a control transfer).
  func executeSystem(_ ins: DecodedInstruction, ea: UInt64, nextRIP: UInt64) throws(Fault) -> Bool {
    let size = Int(ins.operandSize)
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    switch ins.operation {
    case .int, .int3, .into, .int1:
      return try softwareInterrupt(ins, nextRIP: nextRIP)
    case .hlt:
      try requireCPL0()
      retiredEvent = .halt
    case .cli:
      try requireIOPL()
      setFlag(Flags.if, false)
    case .sti:
      try requireIOPL()
      // Interrupts stay blocked until the instruction after STI retires.
      if !flag(Flags.if) { pendingShadow = true }
      setFlag(Flags.if, true)
    case .in:
      let port = o1.kind == .immediate ? UInt16(ins.immediate & 0xFF) : UInt16(truncatingIfNeeded: state.gpr(2))
      let width = Int(o0.size)
      try requireIOPermission(port: port, size: width)
      setReg(0, width, try replayedRead(.portIn(port: port, size: width)))
    case .out:
      let port = o0.kind == .immediate ? UInt16(ins.immediate & 0xFF) : UInt16(truncatingIfNeeded: state.gpr(2))
      let width = Int(o1.size)
      try requireIOPermission(port: port, size: width)
      try replayedWrite(.portOut(port: port, size: width, value: reg(0, width)))
    case .cpuid:
      try executeCPUID()
    case .rdtsc, .rdtscp:
      try executeRDTSC(withAux: ins.operation == .rdtscp)
    case .smsw:
      try UMIP.check(state: state)
      let v = state.cr0 & (o0.kind == .memory ? 0xFFFF : ALU.mask(size))
      try writeOperand(ins, o0, ea, model == .i80286 ? v | 0xFFF0 : v)
    case .lmsw:
      try requireCPL0()
      let v = try readOperand(ins, o0, ea)
      try system.lmsw(UInt16(truncatingIfNeeded: v))
    case .clts:
      try requireCPL0()
      state.cr0 &= ~8
    case .sgdt, .sidt:
      _ = try DescriptorTableInstructions.store(ins.operation == .sgdt ? .gdt : .idt, state: state)
      let t = ins.operation == .sgdt ? state.gdtr : state.idtr
      let baseSize = state.codeMode == .bits64 ? 8 : 4
      var base = t.base
      if state.codeMode != .bits64 && size == 2 { base &= 0xFF_FFFF }
      if model == .i80286 { base |= 0xFF00_0000 }
      try write(seg: Int(ins.segment), offset: ea, size: 2, value: UInt64(t.limit))
      try write(seg: Int(ins.segment), offset: (ea &+ 2) & ALU.mask(Int(ins.addressSize)), size: baseSize, value: base)
    case .lgdt, .lidt:
      try requireCPL0()
      let limit = UInt16(truncatingIfNeeded: try read(seg: Int(ins.segment), offset: ea, size: 2))
      let baseSize = state.codeMode == .bits64 ? 8 : 4
      let base = try read(seg: Int(ins.segment), offset: (ea &+ 2) & ALU.mask(Int(ins.addressSize)), size: baseSize)
      let table: DescriptorTableInstructions.Table = ins.operation == .lgdt ? .gdt : .idt
      try system.loadDescriptorTable(table, limit: limit, base: base, operandSize: size)
    case .movCR:
      try requireControlRegisters()
      try requireCPL0()
      setReg(Int(o0.reg), Int(o0.size), try readControlRegister(Int(o1.reg)))
    case .movToCR:
      try requireControlRegisters()
      try requireCPL0()
      try writeControlRegister(Int(o0.reg), reg(Int(o1.reg), Int(o1.size)))
    case .movDR:
      try requireControlRegisters()
      try requireCPL0()
      try checkGeneralDetect()
      setReg(Int(o0.reg), Int(o0.size), try ControlRegisters.readDebug(Int(o1.reg), state: state))
    case .movToDR:
      try requireControlRegisters()
      try requireCPL0()
      try checkGeneralDetect()
      try ControlRegisters.writeDebug(Int(o0.reg), value: reg(Int(o1.reg), Int(o1.size)), state: state)
      refreshBreakpoints()
    case .invd, .wbinvd:
      try requireCPL0()
    case .invlpg:
      try requireCPL0()
      let seg = Int(ins.segment)
      let linear =
        state.codeMode == .bits64
        ? (seg >= 4 ? state.segmentBase(seg) : 0) &+ ea : (state.segmentBase(seg) &+ ea) & 0xFFFF_FFFF
      if traps.contains(.invlpg) { try replayedWrite(.invlpg(address: linear)) }
      try system.invlpg(linear)
    case .rdmsr:
      try requireCPL0()
      let index = UInt32(truncatingIfNeeded: state.gpr(1))
      let v: UInt64
      if model != .host64 { throw Fault.invalidOpcode }  // MSRs came with the Pentium
      if trappedMSRReads.contains(index) {
        v = try replayedRead(.msrRead(index: index))
      } else {
        v = try system.rdmsr(index)
      }
      state.setGPR(0, v & 0xFFFF_FFFF)
      state.setGPR(2, v >> 32)
    case .wrmsr:
      try requireCPL0()
      let index = UInt32(truncatingIfNeeded: state.gpr(1))
      let v = (state.gpr(2) << 32) | (state.gpr(0) & 0xFFFF_FFFF)
      if model != .host64 { throw Fault.invalidOpcode }
      if trappedMSRWrites.contains(index) {
        try replayedWrite(.msrWrite(index: index, value: v))
      } else {
        try system.wrmsr(index, v)
      }
    default:
      return try executeProtectedOnly(ins, ea: ea, nextRIP: nextRIP)
    }
    return false
  }

  /// System instructions of the modern CPU only (#UD on the legacy models and, where the SDM says
  /// so, in real mode).
  func executeProtectedOnly(_ ins: DecodedInstruction, ea: UInt64, nextRIP: UInt64) throws(Fault) -> Bool {
    guard model == .host64 else { throw Fault.invalidOpcode }
    let size = Int(ins.operandSize)
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    switch ins.operation {
    case .sldt, .str:
      let v =
        ins.operation == .sldt
        ? try DescriptorTableInstructions.storeLDTR(state: state)
        : try DescriptorTableInstructions.storeTR(state: state)
      try writeOperand(ins, o0, ea, UInt64(v))
    case .lldt, .ltr:
      if isRealMode || flag(Flags.vm) { throw Fault.invalidOpcode }
      try requireCPL0()
      let v = UInt16(truncatingIfNeeded: try readOperand(ins, o0, ea))
      if ins.operation == .lldt { try system.lldt(v) } else { try system.ltr(v) }
    case .lar, .lsl:
      if isRealMode || flag(Flags.vm) { throw Fault.invalidOpcode }
      let selector = UInt16(truncatingIfNeeded: try readOperand(ins, o1, ea))
      let answer =
        ins.operation == .lar
        ? try DescriptorQueries.lar(selector, operandSize: size, state: state, memory: system.memory)
        : try DescriptorQueries.lsl(selector, state: state, memory: system.memory)
      setFlag(Flags.zf, answer.valid)
      if answer.valid { setReg(Int(o0.reg), size, answer.value) }
    case .verr, .verw:
      if isRealMode || flag(Flags.vm) { throw Fault.invalidOpcode }
      let selector = UInt16(truncatingIfNeeded: try readOperand(ins, o0, ea))
      setFlag(
        Flags.zf,
        try DescriptorQueries.verify(selector, write: ins.operation == .verw, state: state, memory: system.memory))
    case .syscall:
      try system.syscall(returnRIP: nextRIP)
      return true
    case .sysret:
      try system.sysret(operandSize: size)
      return true
    case .sysenter:
      try system.sysenter()
      return true
    case .sysexit:
      try system.sysexit(operandSize: size)
      return true
    case .swapgs:
      try system.swapgs()
    case .rdfsbase, .rdgsbase, .wrfsbase, .wrgsbase:
      guard state.codeMode == .bits64, state.cr4 & CR4.fsgsbase != 0 else { throw Fault.invalidOpcode }
      let segment: SegmentRegister = ins.operation == .rdfsbase || ins.operation == .wrfsbase ? .fs : .gs
      var cache = state.segment(segment)
      if ins.operation == .rdfsbase || ins.operation == .rdgsbase {
        setReg(Int(o0.reg), size, cache.base)
      } else {
        let v = reg(Int(o0.reg), size)
        guard Canonical.isCanonical(v, la57: state.cr4 & CR4.la57 != 0) else { throw Fault.generalProtection() }
        cache.base = v
        state.setSegment(segment, cache)
      }
    case .clac, .stac:
      guard system.features.contains(.smap), state.cpl == 0 else { throw Fault.invalidOpcode }
      setFlag(Flags.ac, ins.operation == .stac)
    case .vmcall:
      // The instruction retires, then the embedder sees `.hypercall`, at any privilege level (in
      // VMX non-root operation VMCALL always exits; the VMM refuses callers it does not serve).
      // #UD only in the flat-user oracle mode (as on a host CPU outside VMX operation).
      guard !flatUser else { throw Fault.invalidOpcode }
      retiredEvent = .hypercall
    default:
      throw Fault.invalidOpcode
    }
    return false
  }

  // MARK: Pieces

  /// IN/OUT/INS/OUTS: CPL <= IOPL, else the TSS I/O permission bitmap (the 80286 has none: its
  /// 16-bit TSS fails the bitmap check, so CPL > IOPL is #GP as on the chip). The flat-user oracle
  /// mode has no TSS: IOPL alone decides, as the host's bitmap denies every port to a process.
  func requireIOPermission(port: UInt16, size: Int) throws(Fault) {
    if flatUser { try requireIOPL() } else { try system.checkIO(port: port, size: size) }
    if ioBreakpoints != 0 { noteIOAccess(port: port, size: size) }
  }

  /// INT n / INT3 / INTO / INT1. Outside real mode the event goes through the IDT.
  func softwareInterrupt(_ ins: DecodedInstruction, nextRIP: UInt64) throws(Fault) -> Bool {
    var vector: UInt8 = 3
    var kind = EventKind.SoftwareInterrupt.int3
    switch ins.operation {
    case .int:
      vector = UInt8(truncatingIfNeeded: ins.immediate)
      kind = .intN
    case .int1:
      vector = 1
      kind = .int1
    case .into:
      if !flag(Flags.of) { return false }
      vector = 4
      kind = .into
    default: break
    }
    let trapped = (vector == 3 || vector == 4) && exceptionTrapBitmap & (1 << UInt32(vector)) != 0
    if reportExceptions || trapped {
      throw Fault.exception(vector: vector, errorCode: nil)
    }
    if state.rflags & Flags.tf != 0 { softwareInterruptDelivered = true }
    if isRealMode {
      try deliverReal(vector: vector, returnIP: nextRIP)
      return true
    }
    let outcome = system.deliver(vector: vector, kind: .software(kind), returnRIP: nextRIP, instructionRIP: state.rip)
    if let event = event(for: outcome) { throw Fault.event(event) }
    return true
  }

  /// CPUID from the system layer's table, or an event when the embedder traps it.
  func executeCPUID() throws(Fault) {
    if model != .host64 { throw Fault.invalidOpcode }
    let leaf = UInt32(truncatingIfNeeded: state.gpr(0))
    let subleaf = UInt32(truncatingIfNeeded: state.gpr(1))
    if traps.contains(.cpuid) {
      let ab = try replayedRead(.cpuid(leaf: leaf, subleaf: subleaf))
      let cd = try replayedRead(.cpuid(leaf: leaf, subleaf: subleaf))
      state.setGPR(0, ab & 0xFFFF_FFFF)
      state.setGPR(3, ab >> 32)
      state.setGPR(1, cd & 0xFFFF_FFFF)
      state.setGPR(2, cd >> 32)
      return
    }
    var r = system.cpuid.query(leaf: leaf, subleaf: subleaf)
    if leaf == 1 && state.cr4 & CR4.osxsave != 0 { r.ecx |= 1 << 27 }
    state.setGPR(0, UInt64(r.eax))
    state.setGPR(3, UInt64(r.ebx))
    state.setGPR(1, UInt64(r.ecx))
    state.setGPR(2, UInt64(r.edx))
  }

  /// RDTSC/RDTSCP: the guest TSC (host time source plus IA32_TSC offset), or an event when trapped.
  func executeRDTSC(withAux: Bool) throws(Fault) {
    if model != .host64 { throw Fault.invalidOpcode }
    if withAux && !system.features.contains(.rdtscp) { throw Fault.invalidOpcode }
    let tsc: UInt64
    if traps.contains(.rdtsc) {
      if state.cr4 & CR4.tsd != 0 && state.cpl > 0 && !isRealMode { throw Fault.generalProtection() }
      tsc = try replayedRead(.rdtsc)
    } else {
      tsc = try SystemInstructions.rdtsc(state: state, hostTSC: hostTimeStampCounter())
    }
    state.setGPR(0, tsc & 0xFFFF_FFFF)
    state.setGPR(2, tsc >> 32)
    if withAux { state.setGPR(1, state[offset: CPUStateLayout.tscAux] & 0xFFFF_FFFF) }
  }

  /// The counter RDTSC is offset from: `readTSC` when set, else instructions retired.
  func hostTimeStampCounter() -> UInt64 { readTSC?() ?? instructionsRetired }

  func readControlRegister(_ n: Int) throws(Fault) -> UInt64 {
    if model == .i80386 && n > 3 { throw Fault.invalidOpcode }  // no CR4 or CR8 on the 80386
    return try system.movFromCR(n)
  }

  func writeControlRegister(_ n: Int, _ v: UInt64) throws(Fault) {
    if model == .i80386 && n > 3 { throw Fault.invalidOpcode }
    try system.movToCR(n, v)
    if n == 8 && v < taskPriorityThreshold { retiredEvent = .taskPriorityLowered }
  }

  /// MOV to or from control and debug registers exist from the 80386 on.
  func requireControlRegisters() throws(Fault) {
    if model == .i8086 || model == .i80286 { throw Fault.invalidOpcode }
  }

  /// Far JMP/CALL/RET outside real and virtual-8086 mode, and IRET outside real mode, use the
  /// system layer (descriptor checks, gates, privilege changes). The flat-user oracle mode has no
  /// descriptor tables and keeps the core's selector-only far transfer.
  func usesSystemLayerForFarTransfer(_ operation: Operation) -> Bool {
    guard !flatUser, !isRealMode else { return false }
    return operation == .iret || !flag(Flags.vm)
  }

  func farControlProtected(_ ins: DecodedInstruction, ea: UInt64, nextRIP: UInt64) throws(Fault) {
    let size = Int(ins.operandSize)
    switch ins.operation {
    case .jmpFar, .callFar:
      let (offset, selector) = try farPointerOperand(ins, ea: ea)
      let sel = UInt16(truncatingIfNeeded: selector)
      if ins.operation == .jmpFar {
        try system.farJump(selector: sel, offset: offset, operandSize: size, returnRIP: nextRIP)
      } else {
        try system.farCall(selector: sel, offset: offset, operandSize: size, returnRIP: nextRIP)
      }
    case .retf:
      let release = ins.operandCount > 0 ? UInt16(truncatingIfNeeded: ins.immediate) : 0
      try system.farReturn(operandSize: size, release: release)
    default:
      try system.iret(operandSize: size, returnRIP: nextRIP)
      nmiBlocked = false
    }
  }
}

extension CPUFeatures {
  /// What the interpreter's `.host64` model advertises: the system layer's baseline plus the
  /// general-purpose extensions the core executes (CX8, CMOV, CX16, MOVBE, POPCNT, BMI1/2,
  /// LZCNT, FSGSBASE), the x87 FPU, FXSAVE/FXRSTOR, MMX, SSE to SSE4.2 (the x86-64-v2 level) and
  /// XSAVE for the x87 and SSE components (docs/simd.md), with the hypervisor bit (leaf
  /// 40000000H) so guests can find VMCALL.
  public static let interpreterModel = CPUFeatures.systemBaseline.union(
    CPUFeatures([
      .cx8, .cmov, .cx16, .movbe, .popcnt, .bmi1, .bmi2, .abm, .fsgsbase, .hypervisor, .fpu, .fxsr, .mmx, .sse, .sse2,
      .sse3, .ssse3, .sse41, .sse42, .xsave,
    ]))
}

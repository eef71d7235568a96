import VMM
import X86

/// Emulates what a deprivileged guest kernel traps on, on its virtual CPU (`GuestCPU`): the
/// faulting instruction is fetched at the virtual RIP through the guest's own page tables,
/// decoded by the X86 decoder and carried out by the X86 model's system layer at the virtual CPL,
/// so every privilege check, reserved-bit check and fault is the model's. What the monitor must do
/// next comes back as an `EmulationResult`; paging changes go to the shadow page tables directly.
///
/// Emulated: MOV to/from CR0, CR2, CR3, CR4 and CR8; MOV to/from DR0-DR7; CLTS, LMSW, SMSW;
/// LGDT, LIDT, LLDT, LTR, and SGDT, SIDT, SLDT, STR (which fault at ring 3 under the host's UMIP);
/// CLI, STI, PUSHF, POPF on the virtual IF and IOPL; HLT; IN and OUT (not the string forms);
/// INVLPG; INVD, WBINVD; RDMSR, WRMSR; IRET/IRETQ, SYSCALL, SYSRET and SWAPGS. Events reach the
/// guest through `reflect`. Not modelled: RFLAGS.TF single-stepping over an emulated instruction,
/// segment limit checks outside 64-bit mode.
public final class PrivilegedInstructionEmulator {
  /// The guest's virtual CPU.
  public let cpu: GuestCPU
  /// The shadow page tables told about CR3 loads, INVLPG, paging-control changes, privilege
  /// changes and the emulation's writes to guest page-table pages.
  public let shadows: ShadowPageTables
  /// What the emulator did.
  public private(set) var statistics = TrapEmulationStatistics()
  /// An IN waiting for its value: port size and the instruction's end.
  private var pendingIn: (size: Int, next: UInt64)?
  /// Set by an STI that enabled interrupts, for the result's interrupt shadow.
  private var stiShadow = false
  /// Set by an IRET that retired, for the result's `returnedFromInterrupt`.
  private var iretRetired = false

  /// An emulator for `cpu` whose paging is shadowed by `shadows`.
  public init(cpu: GuestCPU, shadows: ShadowPageTables) {
    self.cpu = cpu
    self.shadows = shadows
  }

  private var state: CPUState { cpu.state }

  /// Makes the shadow of the virtual CPU's paging state and privilege the active one (at start and
  /// whenever the monitor changed the virtual state itself). Returns the real CR3.
  @discardableResult
  public func activateShadow() throws(ShadowPagingError) -> UInt64 {
    try shadows.activate(control: cpu.pagingControl, mode: cpu.shadowMode)
  }

  // MARK: Emulation

  /// Emulates the instruction at the virtual RIP, which trapped.
  public func emulate() -> EmulationResult {
    let before = Snapshot(state)
    cpu.core.invalidateTLB()
    _ = cpu.memory.takeWrittenRanges()
    var action: TrapAction
    do throws(Fault) {
      action = try execute()
    } catch {
      action = Self.action(for: error)
    }
    statistics.instructionsEmulated += 1
    if case .reflect = action { statistics.faultsRaised += 1 }
    if case .notEmulated = action { statistics.notEmulated += 1 }
    return finish(action, before: before)
  }

  /// Executes the instruction at the virtual RIP on the X86 model, whatever it is: how the monitor
  /// carries out a guest store to a write-protected page table (`.pageTableWrite`: MOV, XCHG,
  /// CMPXCHG, a locked OR ... through the guest's tables), whose write reaches the shadows as a
  /// resync of the entries it changed. Port I/O and MMIO are left to `emulate` and the monitor.
  public func executeOnModel() -> EmulationResult {
    let before = Snapshot(state)
    cpu.core.invalidateTLB()
    cpu.core.invalidateDecodedCode()
    _ = cpu.memory.takeWrittenRanges()
    let action: TrapAction
    switch cpu.core.step() {
    case nil: action = .resume
    case .exception(let vector, let code): action = .reflect(vector: vector, errorCode: code)
    case .halt: action = .halt
    case .tripleFault: action = .tripleFault
    case .internalError(let what): action = .unsupported(what)
    case let event?: action = .notEmulated("\(event)")
    }
    statistics.modelExecutions += 1
    return finish(action, before: before)
  }

  /// Retires a pending IN with the port's `value` (AL, AX or EAX as the instruction named; EAX
  /// zero-extends into RAX) and moves past it.
  public func completePortIn(_ value: UInt32) {
    guard let (size, next) = pendingIn else { preconditionFailure("no IN is waiting") }
    pendingIn = nil
    setRegister(0, size: size, UInt64(value))
    state.rip = next
  }

  /// Reflects an event to the guest through its IDT, as the CPU would deliver it at the virtual
  /// CPL: an exception (`.exception`; for a #PF, `pageFaultAddress` becomes the virtual CR2), an
  /// external interrupt (`.external`, the virtual IF permitting: the monitor checks) or a software
  /// interrupt. The frame goes on the guest's stack (its TSS's RSP0 when it comes from user mode),
  /// the virtual CPL becomes the handler's and an interrupt gate clears the virtual IF. The return
  /// RIP is the virtual RIP: the faulting instruction for faults, the next one for traps and
  /// interrupts.
  public func reflect(
    vector: UInt8, errorCode: UInt32? = nil, kind: EventKind = .exception, pageFaultAddress: UInt64? = nil
  ) -> EmulationResult {
    let before = Snapshot(state)
    cpu.core.invalidateTLB()
    _ = cpu.memory.takeWrittenRanges()
    if vector == ExceptionVector.pageFault, let pageFaultAddress { state.cr2 = pageFaultAddress }
    let outcome = cpu.system.deliver(vector: vector, errorCode: errorCode, kind: kind, returnRIP: state.rip)
    statistics.eventsReflected += 1
    let action: TrapAction
    switch outcome {
    case .delivered: action = .resume
    case .tripleFault: action = .tripleFault
    case .taskSwitched: action = .unsupported("a task gate in the guest's IDT")
    case .unimplemented(let feature): action = .unsupported(feature.description)
    case .event: action = .unsupported("the guest's IDT, GDT or stack in MMIO")
    }
    return finish(action, before: before)
  }

  /// The state that decides what changed for the monitor.
  private struct Snapshot {
    let cpl: Int
    let interrupts: Bool
    let taskPriority: UInt64

    init(_ state: CPUState) {
      cpl = state.cpl
      interrupts = state.rflags & Flags.if != 0
      taskPriority = state[offset: CPUStateLayout.cr8]
    }
  }

  /// Tells the shadows what the emulation changed and fills in the result.
  private func finish(_ action: TrapAction, before: Snapshot) -> EmulationResult {
    var result = EmulationResult(action: action)
    shadows.noteGuestWrites(cpu.memory.takeWrittenRanges())
    let oldRoot = shadows.activeRoot
    do throws(ShadowPagingError) {
      try activateShadow()
    } catch {
      result.action = .unsupported(error.description)
    }
    result.shadowRootChanged = shadows.activeRoot != oldRoot || shadows.takeRealTLBFlush()
    result.privilegeChanged = state.cpl != before.cpl
    result.interruptShadow = stiShadow
    stiShadow = false
    result.returnedFromInterrupt = iretRetired
    iretRetired = false
    result.interruptWindowOpened =
      (!before.interrupts && cpu.interruptsEnabled) || cpu.taskPriority < before.taskPriority
    return result
  }

  /// The action for a fault the instruction raised: reflected, unless it is the model's report
  /// of something it does not implement.
  private static func action(for fault: Fault) -> TrapAction {
    if let feature = fault.unimplementedFeature { return .unsupported(feature.description) }
    switch fault {
    case .exception(let vector, let code): return .reflect(vector: vector, errorCode: code)
    case .event: return .unsupported("a system access to MMIO")
    }
  }

  /// Fetches, decodes and carries out the instruction at the virtual RIP.
  private func execute() throws(Fault) -> TrapAction {
    let ins = try decode()
    let next = state.rip &+ UInt64(ins.length)
    let size = Int(ins.operandSize)
    let o0 = ins.operands.0
    let o1 = ins.operands.1
    let system = cpu.system
    switch ins.operation {
    case .movCR:
      try requireCPL0()
      setRegister(Int(o0.reg), size: Int(o0.size), try system.movFromCR(Int(o1.reg)))
    case .movToCR:
      try requireCPL0()
      try system.movToCR(Int(o0.reg), register(Int(o1.reg), size: Int(o1.size)))
    case .movDR:
      setRegister(Int(o0.reg), size: Int(o0.size), try ControlRegisters.readDebug(Int(o1.reg), state: state))
    case .movToDR:
      try ControlRegisters.writeDebug(Int(o0.reg), value: register(Int(o1.reg), size: Int(o1.size)), state: state)
    case .clts:
      try ControlRegisters.clts(state: state)
    case .lmsw:
      try requireCPL0()
      try system.lmsw(UInt16(truncatingIfNeeded: try readOperand(ins, o0, next: next)))
    case .smsw:
      try UMIP.check(state: state)
      let value = state.cr0 & (o0.kind == .memory ? 0xFFFF : Self.mask(Int(o0.size)))
      try writeOperand(ins, o0, next: next, value)
    case .lgdt, .lidt:
      try requireCPL0()
      let address = try linearAddress(ins, next: next)
      let limit = try readLinear(address, size: 2)
      let base = try readLinear(address &+ 2, size: state.codeMode == .bits64 ? 8 : 4)
      try system.loadDescriptorTable(
        ins.operation == .lgdt ? .gdt : .idt, limit: UInt16(truncatingIfNeeded: limit), base: base,
        operandSize: size)
    case .sgdt, .sidt:
      let table = try DescriptorTableInstructions.store(ins.operation == .sgdt ? .gdt : .idt, state: state)
      let address = try linearAddress(ins, next: next)
      try writeLinear(address, size: 2, UInt64(table.limit))
      try writeLinear(address &+ 2, size: state.codeMode == .bits64 ? 8 : 4, table.base)
    case .lldt, .ltr:
      try requireCPL0()
      let selector = UInt16(truncatingIfNeeded: try readOperand(ins, o0, next: next))
      if ins.operation == .lldt { try system.lldt(selector) } else { try system.ltr(selector) }
    case .sldt, .str:
      let selector =
        ins.operation == .sldt
        ? try DescriptorTableInstructions.storeLDTR(state: state)
        : try DescriptorTableInstructions.storeTR(state: state)
      try writeOperand(ins, o0, next: next, UInt64(selector))
    case .cli, .sti:
      try requireIOPL()
      if ins.operation == .sti {
        stiShadow = state.rflags & Flags.if == 0
        state.rflags |= Flags.if
      } else {
        state.rflags &= ~Flags.if
      }
    case .pushf:
      try pushFlags(size: size)
    case .popf:
      try popFlags(size: size)
    case .hlt:
      try requireCPL0()
      state.rip = next
      return .halt
    case .in:
      let port = o1.kind == .immediate ? UInt16(ins.immediate & 0xFF) : UInt16(truncatingIfNeeded: state.gpr(2))
      let width = Int(o0.size)
      try system.checkIO(port: port, size: width)
      pendingIn = (width, next)
      return .portIn(port: port, size: width)
    case .out:
      let port = o0.kind == .immediate ? UInt16(ins.immediate & 0xFF) : UInt16(truncatingIfNeeded: state.gpr(2))
      let width = Int(o1.size)
      try system.checkIO(port: port, size: width)
      state.rip = next
      return .portOut(port: port, size: width, value: UInt32(truncatingIfNeeded: register(0, size: width)))
    case .invlpg:
      try requireCPL0()
      let address = try linearAddress(ins, next: next)
      try system.invlpg(address)
      shadows.invalidatePage(address)
    case .invd, .wbinvd:
      try requireCPL0()
    case .rdmsr:
      let value = try system.rdmsr(UInt32(truncatingIfNeeded: state.gpr(1)))
      state.setGPR(0, value & 0xFFFF_FFFF)
      state.setGPR(2, value >> 32)
    case .wrmsr:
      let value = state.gpr(2) << 32 | state.gpr(0) & 0xFFFF_FFFF
      try system.wrmsr(UInt32(truncatingIfNeeded: state.gpr(1)), value)
    case .iret:
      try system.iret(operandSize: size, returnRIP: next)
      iretRetired = true
      return .resume
    case .syscall:
      try system.syscall(returnRIP: next)
      return .resume
    case .sysret:
      try system.sysret(operandSize: size)
      return .resume
    case .swapgs:
      try system.swapgs()
    default:
      return .notEmulated("\(ins.operation)")
    }
    state.rip = next
    state.rflags &= ~Flags.rf
    return .resume
  }

  /// The instruction at the virtual RIP: fetched through the guest's tables at the virtual CPL
  /// (a fetch fault is the guest's #PF), decoded in the current code mode.
  private func decode() throws(Fault) -> DecodedInstruction {
    let start =
      state.codeMode == .bits64 ? state.rip : (state.segment(.cs).base &+ state.rip) & 0xFFFF_FFFF
    var bytes = try fetch(start, count: min(15, 0x1000 - Int(start & 0xFFF)))
    while true {
      switch Decoder.decode(bytes, mode: state.codeMode) {
      case .success(let ins): return ins
      case .undefined: throw .ud
      case .tooLong: throw .gp(0)
      case .truncated:
        guard bytes.count < 15 else { throw .gp(0) }
        bytes += try fetch(start &+ UInt64(bytes.count), count: 15 - bytes.count)
      }
    }
  }

  /// `count` code bytes at linear `address` within one page.
  private func fetch(_ address: UInt64, count: Int) throws(Fault) -> [UInt8] {
    let (_, host) = try cpu.system.mmu.translate(address, kind: .execute, user: state.cpl == 3, state: state)
    guard let host else { throw .gp(0) }
    return (0..<count).map { host.load(fromByteOffset: $0, as: UInt8.self) }
  }

  // MARK: Privilege checks

  private func requireCPL0() throws(Fault) {
    guard state.cpl == 0 else { throw .gp(0) }
  }

  /// CLI and STI (without VME/PVI): CPL must not exceed IOPL.
  private func requireIOPL() throws(Fault) {
    guard state.cpl <= Int((state.rflags >> 12) & 3) else { throw .gp(0) }
  }

  // MARK: Flags

  /// PUSHF: the virtual RFLAGS (VM and RF read as 0) on the guest's stack.
  private func pushFlags(size: Int) throws(Fault) {
    let image = state.rflags & ~(Flags.vm | Flags.rf) & Self.mask(size)
    let rsp = state.gpr(4) &- UInt64(size)
    try writeLinear(try stackAddress(rsp), size: size, image)
    state.setGPR(4, rsp)
  }

  /// POPF: IOPL changes only at CPL 0, IF only at CPL ≤ IOPL; VM, VIF, VIP and RF are never loaded.
  private func popFlags(size: Int) throws(Fault) {
    let rsp = state.gpr(4)
    let value = try readLinear(try stackAddress(rsp), size: size)
    var writable = Flags.arithmetic | Flags.tf | Flags.df | Flags.if | Flags.iopl | Flags.nt | Flags.ac | Flags.id
    let iopl = Int((state.rflags >> 12) & 3)
    if state.cpl > 0 { writable &= ~Flags.iopl }
    if state.cpl > iopl { writable &= ~Flags.if }
    if size == 2 { writable &= 0xFFFF }
    state.rflags = state.rflags & ~writable | value & writable | Flags.reserved1
    state.setGPR(4, rsp &+ UInt64(size))
  }

  /// The linear address of stack offset `offset` (64-bit mode: canonical or #SS(0)).
  private func stackAddress(_ offset: UInt64) throws(Fault) -> UInt64 {
    if state.codeMode == .bits64 {
      guard Canonical.isCanonical(offset, la57: state.cr4 & CR4.la57 != 0) else { throw .ss(0) }
      return offset
    }
    return (state.segment(.ss).base &+ offset) & 0xFFFF_FFFF
  }

  // MARK: Operands

  private static func mask(_ size: Int) -> UInt64 { size >= 8 ? .max : (1 << UInt64(8 * size)) - 1 }

  /// General register `index`'s low `size` bytes.
  private func register(_ index: Int, size: Int) -> UInt64 { state.gpr(index) & Self.mask(size) }

  /// Writes the low `size` bytes of register `index`: a 4-byte write zero-extends, 1 and 2 merge.
  private func setRegister(_ index: Int, size: Int, _ value: UInt64) {
    switch size {
    case 8: state.setGPR(index, value)
    case 4: state.setGPR(index, value & 0xFFFF_FFFF)
    default: state.setGPR(index, state.gpr(index) & ~Self.mask(size) | value & Self.mask(size))
    }
  }

  /// The linear address of the memory operand: base, index and displacement in the address size,
  /// plus the segment base (FS and GS only in 64-bit mode, where it must be canonical).
  private func linearAddress(_ ins: DecodedInstruction, next: UInt64) throws(Fault) -> UInt64 {
    var offset: UInt64 = 0
    if ins.base == DecodedInstruction.ripBase {
      offset = next
    } else if ins.base != DecodedInstruction.noRegister {
      offset = state.gpr(Int(ins.base))
    }
    if ins.index != DecodedInstruction.noRegister { offset &+= state.gpr(Int(ins.index)) &* UInt64(ins.scale) }
    offset = (offset &+ UInt64(bitPattern: ins.displacement)) & Self.mask(Int(ins.addressSize))
    let segment = Int(ins.segment)
    if state.codeMode == .bits64 {
      let linear = (segment >= 4 ? state.segmentBase(segment) : 0) &+ offset
      guard Canonical.isCanonical(linear, la57: state.cr4 & CR4.la57 != 0) else {
        throw segment == SegmentRegister.ss.rawValue ? .ss(0) : .gp(0)
      }
      return linear
    }
    return (state.segmentBase(segment) &+ offset) & 0xFFFF_FFFF
  }

  /// A data read at the virtual CPL.
  private func readLinear(_ address: UInt64, size: Int) throws(Fault) -> UInt64 {
    try cpu.system.memory.readLinear(address, size: size, supervisor: state.cpl < 3)
  }

  /// A data write at the virtual CPL.
  private func writeLinear(_ address: UInt64, size: Int, _ value: UInt64) throws(Fault) {
    try cpu.system.memory.writeLinear(address, size: size, value: value, supervisor: state.cpl < 3)
  }

  /// A register or memory operand's value.
  private func readOperand(_ ins: DecodedInstruction, _ operand: Operand, next: UInt64) throws(Fault) -> UInt64 {
    switch operand.kind {
    case .gpr: return register(Int(operand.reg), size: Int(operand.size))
    case .memory: return try readLinear(try linearAddress(ins, next: next), size: Int(operand.size))
    default: return ins.immediate
    }
  }

  /// Stores to a register or memory operand (a 16-bit store for the memory forms of SLDT, STR and
  /// SMSW; their register forms take the operand size, zero-extended).
  private func writeOperand(_ ins: DecodedInstruction, _ operand: Operand, next: UInt64, _ value: UInt64) throws(Fault)
  {
    switch operand.kind {
    case .memory: try writeLinear(try linearAddress(ins, next: next), size: Int(operand.size), value)
    default: setRegister(Int(operand.reg), size: Int(operand.size), value)
    }
  }
}

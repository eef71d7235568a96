/// One object the core can hold for the whole system layer: the MMU and its TLB, the MSRs, the
/// feature set and CPUID, with every instruction's TLB effects applied automatically. Each method
/// returns true when the operating or code mode may have changed (the core then refreshes its
/// decode mode from `state.codeMode`); everything throws the core's `Fault`.
public final class SystemUnit {
  /// The architectural state the layer works on (the core's).
  public let state: CPUState
  /// Paging: the walker behind the software TLB.
  public let mmu: MMU
  /// The MSRs.
  public var msrs: MSRFile
  /// The CPUID table.
  public var cpuid: CPUIDTable {
    didSet { vendor = cpuid.cpuVendor }
  }
  /// The vendor `cpuid` names, kept for the instructions whose behaviour follows it.
  public private(set) var vendor: CPUVendor = .intel
  /// The host time-stamp counter the guest TSC is offset from.
  public var hostTSC: () -> UInt64

  /// The advertised features (kept consistent across MSRs, CPUID and CR4 checks).
  public var features: CPUFeatures {
    didSet {
      msrs.features = features
      cpuid.features = features
      mmu.supports1GPages = features.contains(.page1GB)
    }
  }

  /// A system layer over `state` and `memory` with `features`.
  public init(
    state: CPUState, memory: any PhysicalMemory, features: CPUFeatures = .systemBaseline,
    physicalAddressBits: Int = 40, hostTSC: @escaping () -> UInt64 = { 0 }
  ) {
    self.state = state
    self.features = features
    // The TLB lives after the state page, where generated code finds it from the state register.
    self.mmu = MMU(
      memory: memory, physicalAddressBits: physicalAddressBits, supports1GPages: features.contains(.page1GB),
      tlbState: state)
    self.msrs = MSRFile(features: features, physicalAddressBits: physicalAddressBits)
    self.cpuid = CPUIDTable(features: features, physicalAddressBits: physicalAddressBits)
    self.vendor = cpuid.cpuVendor
    self.hostTSC = hostTSC
  }

  /// The memory interface the system layer uses (translated, privilege-checked).
  public var memory: MMUSystemMemory { MMUSystemMemory(mmu: mmu, state: state) }

  @discardableResult
  func apply(_ effects: SystemEffects) -> Bool {
    mmu.tlb.apply(effects)
    if effects.contains(.taskSwitched) { checkTaskDebugTrap() }
    return effects.contains(.modeChanged)
  }

  /// Called when a task switch lands in a 32-bit TSS whose T bit (offset 0x64, bit 0) is set: the
  /// core raises #DB (DR6.BT) before the new task's first instruction.
  public var taskDebugTrapRequested: (() -> Void)?

  func checkTaskDebugTrap() {
    let tr = state.segment(.tr)
    guard tr.attributes & 0x8 != 0, tr.limit >= 0x65,
      let word = try? memory.readLinear(tr.base &+ 0x64, size: 2, supervisor: true), word & 1 != 0
    else { return }
    taskDebugTrapRequested?()
  }

  // MARK: Control and debug registers

  /// MOV CRn, value; true when the mode may have changed.
  @discardableResult
  public func movToCR(_ register: Int, _ value: UInt64) throws(Fault) -> Bool {
    apply(
      try ControlRegisters.write(
        register, value: value, state: state, features: features, physicalAddressBits: mmu.physicalAddressBits))
  }
  /// MOV reg, CRn.
  public func movFromCR(_ register: Int) throws(Fault) -> UInt64 { try ControlRegisters.read(register, state: state) }
  /// LMSW; true when PE changed.
  @discardableResult
  public func lmsw(_ value: UInt16) throws(Fault) -> Bool { apply(try ControlRegisters.lmsw(value, state: state)) }
  /// INVLPG of the page holding `address`.
  public func invlpg(_ address: UInt64) throws(Fault) {
    try SystemInstructions.invlpg(address, state: state, tlb: mmu.tlb)
  }

  // MARK: MSRs and counters

  /// RDMSR.
  public func rdmsr(_ index: UInt32) throws(Fault) -> UInt64 {
    try msrs.read(index, state: state, hostTSC: hostTSC())
  }
  /// WRMSR (TLB effects applied).
  public func wrmsr(_ index: UInt32, _ value: UInt64) throws(Fault) {
    apply(try msrs.write(index, value: value, state: state, hostTSC: hostTSC()))
  }
  /// RDTSC: the guest TSC.
  public func rdtsc() throws(Fault) -> UInt64 { try SystemInstructions.rdtsc(state: state, hostTSC: hostTSC()) }

  // MARK: Descriptor tables and segments

  /// LGDT/LIDT.
  public func loadDescriptorTable(
    _ table: DescriptorTableInstructions.Table, limit: UInt16, base: UInt64, operandSize: Int
  ) throws(Fault) {
    try DescriptorTableInstructions.load(table, limit: limit, base: base, operandSize: operandSize, state: state)
  }
  /// LLDT.
  public func lldt(_ selector: UInt16) throws(Fault) {
    try DescriptorTableInstructions.loadLDTR(selector, state: state, memory: memory)
  }
  /// LTR.
  public func ltr(_ selector: UInt16) throws(Fault) {
    try DescriptorTableInstructions.loadTR(selector, state: state, memory: memory)
  }
  /// MOV/POP to a data or stack segment register, with all protected-mode checks.
  public func loadSegment(_ register: SegmentRegister, _ selector: UInt16) throws(Fault) {
    try SegmentLoader.loadData(register, selector: selector, state: state, memory: memory)
  }

  // MARK: Control transfers

  /// JMP FAR through a selector (code segment, call gate, TSS or task gate); true when the mode may have changed.
  @discardableResult
  public func farJump(selector: UInt16, offset: UInt64, operandSize: Int, returnRIP: UInt64) throws(Fault) -> Bool {
    _ = apply(
      try FarTransfers.jump(
        selector: selector, offset: offset, operandSize: operandSize, returnRIP: returnRIP, state: state,
        memory: memory))
    return true
  }
  /// CALL FAR (with gates and privilege changes); true when the mode may have changed.
  @discardableResult
  public func farCall(selector: UInt16, offset: UInt64, operandSize: Int, returnRIP: UInt64) throws(Fault) -> Bool {
    _ = apply(
      try FarTransfers.call(
        selector: selector, offset: offset, operandSize: operandSize, returnRIP: returnRIP, state: state,
        memory: memory))
    return true
  }
  /// RETF, releasing `release` bytes of parameters; true when the mode may have changed.
  @discardableResult
  public func farReturn(operandSize: Int, release: UInt16) throws(Fault) -> Bool {
    try ReturnInstructions.farReturn(operandSize: operandSize, release: release, state: state, memory: memory)
    return true
  }
  /// IRET; true when the mode may have changed.
  @discardableResult
  public func iret(operandSize: Int, returnRIP: UInt64) throws(Fault) -> Bool {
    _ = apply(try ReturnInstructions.iret(operandSize: operandSize, returnRIP: returnRIP, state: state, memory: memory))
    return true
  }

  /// Delivers an event (exception, external interrupt, INT n); a task switch flushes the TLB.
  public func deliver(
    vector: UInt8, errorCode: UInt32? = nil, kind: EventKind, returnRIP: UInt64, instructionRIP: UInt64? = nil
  ) -> DeliveryOutcome {
    let outcome = InterruptDelivery.deliver(
      vector: vector, errorCode: errorCode, kind: kind, returnRIP: returnRIP, instructionRIP: instructionRIP,
      state: state, memory: memory)
    if outcome == .taskSwitched {
      mmu.tlb.flushNonGlobal()
      checkTaskDebugTrap()
    }
    return outcome
  }

  /// Delivers a fault an instruction threw.
  public func deliver(_ fault: Fault, returnRIP: UInt64) -> DeliveryOutcome {
    let outcome = InterruptDelivery.deliver(fault, returnRIP: returnRIP, state: state, memory: memory)
    if outcome == .taskSwitched {
      mmu.tlb.flushNonGlobal()
      checkTaskDebugTrap()
    }
    return outcome
  }

  // MARK: Fast system calls and I/O

  /// SYSCALL (vendor rules of `cpuid`).
  public func syscall(returnRIP: UInt64) throws(Fault) {
    try FastSystemCalls.syscall(returnRIP: returnRIP, state: state, vendor: vendor)
  }
  /// SYSRET.
  public func sysret(operandSize: Int) throws(Fault) {
    try FastSystemCalls.sysret(operandSize: operandSize, state: state)
  }
  /// SYSENTER (vendor rules of `cpuid`).
  public func sysenter() throws(Fault) { try FastSystemCalls.sysenter(state: state, vendor: vendor) }
  /// SYSEXIT.
  public func sysexit(operandSize: Int) throws(Fault) {
    try FastSystemCalls.sysexit(operandSize: operandSize, state: state, vendor: vendor)
  }
  /// SWAPGS.
  public func swapgs() throws(Fault) { try FastSystemCalls.swapgs(state: state) }
  /// The I/O permission check of IN/OUT/INS/OUTS (IOPL, then the TSS bitmap).
  public func checkIO(port: UInt16, size: Int) throws(Fault) {
    try IOPermission.check(port: port, size: size, state: state, memory: memory)
  }
}

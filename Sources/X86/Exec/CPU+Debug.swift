/// Debug exceptions (#DB, vector 1) raised by the core: the single-step trap (RFLAGS.TF) and the
/// debug-register breakpoints (DR0-DR3 armed by DR7), with DR6 saying which condition fired.
///
/// - Instruction breakpoints (R/W = 00) fault before the instruction at their linear address,
///   unless RFLAGS.RF is set; the pushed RFLAGS image has RF set so the handler's IRET resumes the
///   instruction without hitting the breakpoint again. RF clears when an instruction retires.
/// - Data breakpoints (R/W = 01 writes, 11 reads or writes; LEN 1, 2, 4 or 8 bytes) trap after the
///   instruction whose explicit data access overlaps them (a REP string instruction after the
///   iteration); I/O breakpoints (R/W = 10, with CR4.DE) after the IN, OUT, INS or OUTS whose port
///   range overlaps them.
/// - General detect (DR7.GD): MOV to or from a debug register faults first (DR6.BD), and GD clears
///   so the handler can use the debug registers.
/// - Single-step traps after each instruction that started with TF set.
/// - A task switch into a 32-bit TSS with its T bit set raises #DB (DR6.BT) before the new task's
///   first instruction.
///
/// MOV SS and POP SS hold traps back to the boundary after the next instruction. While data
/// breakpoints are armed the core keeps no host pointers in its host-page cache, so every access takes the
/// checked slow path; while any breakpoint, TF or RF is live, the fast loop steps aside.
extension CPU {
  static let dr6Offset = CPUStateLayout.debugRegisters + 6 * 8
  static let dr7Offset = CPUStateLayout.debugRegisters + 7 * 8

  /// Decodes DR7 into the armed breakpoints. Called at every `run`/`step` entry (the embedder may
  /// have written DR7 in the state) and after MOV to DR7.
  func refreshBreakpoints() {
    let dr7 = state[offset: CPU.dr7Offset]
    var execute: UInt8 = 0
    var data: UInt8 = 0
    var io: UInt8 = 0
    if dr7 & 0xFF != 0 {
      for n in 0..<4 where (dr7 >> UInt64(2 * n)) & 3 != 0 {
        switch (dr7 >> UInt64(16 + 4 * n)) & 3 {
        case 0: execute |= 1 << n
        case 2: io |= 1 << n  // counts only while CR4.DE is set (checked at the access)
        default: data |= 1 << n
        }
      }
    }
    if (data != 0) != (dataBreakpoints != 0) { forgetHostPages() }
    executeBreakpoints = execute
    dataBreakpoints = data
    ioBreakpoints = io
    debugChecksNeeded = execute | data | io != 0 || taskDebugTrapPending
  }

  /// The system layer saw a task switch into a TSS with the T bit set.
  func requestTaskDebugTrap() {
    taskDebugTrapPending = true
    debugChecksNeeded = true
  }

  /// The #DB raised before the current instruction, if any: the task-switch trap, else an
  /// instruction breakpoint armed for its linear address while RF is clear (nil: none).
  @inline(never)
  func debugFaultBeforeInstruction(flags: UInt64) -> CPUEvent?? {
    if taskDebugTrapPending {
      taskDebugTrapPending = false
      refreshBreakpoints()
      state[offset: CPU.dr6Offset] = state[offset: CPU.dr6Offset] | DebugStatus.taskSwitch
      return .some(raise(vector: ExceptionVector.debug, errorCode: nil, nextRIP: state.rip))
    }
    guard executeBreakpoints != 0, flags & Flags.rf == 0 else { return nil }
    let rip = state.rip
    let linear = state.codeMode == .bits64 ? rip : (state.segmentBase(1) &+ rip) & 0xFFFF_FFFF
    var hits: UInt64 = 0
    for n in 0..<4 where executeBreakpoints & (1 << n) != 0 {
      if state[offset: CPUStateLayout.debugRegisters + 8 * n] == linear { hits |= 1 << UInt64(n) }
    }
    guard hits != 0 else { return nil }
    state[offset: CPU.dr6Offset] = (state[offset: CPU.dr6Offset] & ~DebugStatus.breakpoints) | hits
    state.rflags |= Flags.rf
    return .some(raise(vector: ExceptionVector.debug, errorCode: nil, nextRIP: rip))
  }

  /// Records the data breakpoints an explicit access of `size` bytes at `linear` hits.
  @inline(never)
  func noteDataAccess(_ linear: UInt64, size: Int, write: Bool) {
    let dr7 = state[offset: CPU.dr7Offset]
    for n in 0..<4 where dataBreakpoints & (1 << n) != 0 {
      if (dr7 >> UInt64(16 + 4 * n)) & 3 == 1 && !write { continue }
      if breakpoint(n, dr7: dr7, covers: linear, size: size) { dataBreakpointHits |= 1 << n }
    }
  }

  /// Records the I/O breakpoints a port access hits (they count only while CR4.DE is set).
  @inline(never)
  func noteIOAccess(port: UInt16, size: Int) {
    guard state.cr4 & CR4.de != 0 else { return }
    let dr7 = state[offset: CPU.dr7Offset]
    for n in 0..<4 where ioBreakpoints & (1 << n) != 0 {
      if breakpoint(n, dr7: dr7, covers: UInt64(port), size: size) { dataBreakpointHits |= 1 << n }
    }
  }

  /// Whether breakpoint `n`'s range (DRn aligned down to its DR7 length) overlaps `size` bytes at
  /// `address`.
  func breakpoint(_ n: Int, dr7: UInt64, covers address: UInt64, size: Int) -> Bool {
    let length: UInt64 = [1, 2, 8, 4][Int((dr7 >> UInt64(18 + 4 * n)) & 3)]
    let start = state[offset: CPUStateLayout.debugRegisters + 8 * n] & ~(length - 1)
    return address < start &+ length && start < address &+ UInt64(size)
  }

  /// General detect: with DR7.GD set, a MOV to or from a debug register raises #DB before it
  /// executes, with DR6.BD set and GD cleared for the handler.
  func checkGeneralDetect() throws(Fault) {
    let dr7 = state[offset: CPU.dr7Offset]
    guard dr7 & DebugControl.generalDetect != 0 else { return }
    state[offset: CPU.dr6Offset] = state[offset: CPU.dr6Offset] | DebugStatus.registerAccess
    state[offset: CPU.dr7Offset] = dr7 & ~DebugControl.generalDetect
    throw Fault.exception(vector: ExceptionVector.debug, errorCode: nil)
  }

  /// After an instruction that retired with debug attention: clears RF that was set when it
  /// started, then raises the #DB trap for single-step and data breakpoints (DR6.BS, DR6.Bn), RIP
  /// already at the next instruction. Returns the event `stepInline` reports.
  ///
  /// INT n, INT3, INTO and INT1 that deliver their interrupt clear TF on the way and take no
  /// single-step trap; a HLT is not entered when a trap is taken (the handler runs and returns
  /// after it); a VMCALL's event is still reported after the trap is delivered.
  @inline(never)
  func debugTrapAfterRetirement(startFlags: UInt64) -> CPUEvent? {
    if startFlags & Flags.rf != 0 { state.rflags &= ~Flags.rf }
    let retired = retiredEvent.take()
    // MOV SS and POP SS hold traps back to the boundary after the next instruction.
    guard !debugShadow else { return retired }
    var status = UInt64(dataBreakpointHits)
    dataBreakpointHits = 0
    if startFlags & Flags.tf != 0 && !softwareInterruptDelivered { status |= DebugStatus.singleStep }
    softwareInterruptDelivered = false
    guard status != 0 else { return retired }
    let dr6 = state[offset: CPU.dr6Offset]
    state[offset: CPU.dr6Offset] = (dr6 & ~DebugStatus.breakpoints) | status
    if let event = raise(vector: ExceptionVector.debug, errorCode: nil, nextRIP: state.rip) { return event }
    return retired == .halt ? nil : retired
  }
}

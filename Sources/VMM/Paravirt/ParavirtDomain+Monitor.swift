/// The hypercalls of a deprivileged guest kernel: `set_trap_table`, `stack_switch`, `set_segment_base`, `fpu_taskswitch` and `iret`; the check every hypercall
/// passes (a caller above ring 0 must be a deprivileged guest kernel: -EPERM otherwise), and the
/// monitor's traps (exceptions and SYSCALL reflected to the guest kernel).
extension ParavirtDomain {
  /// Xen's `VGCF_in_syscall`: `iret` returns as SYSRET would (RCX and R11 not restored).
  static let iretInSyscall: UInt64 = 1 << 8
  /// RFLAGS bits a guest frame may set: CF PF AF ZF SF TF DF OF AC ID.
  static let iretGuestFlags: UInt64 = 0x24_0DD5
  /// RFLAGS.RF, which a fault's frame may show and SYSCALL's R11 never does.
  static let resumeFlag: UInt64 = 1 << 16
  /// The page-fault error code's instruction-fetch bit.
  static let instructionFetch: UInt64 = 1 << 4

  /// Registers this part's hypercalls and the check every call passes (`screen`).
  func registerMonitorHypercalls(on dispatcher: HypercallDispatcher) {
    dispatcher.screen = { [unowned self] _, caller throws(EngineError) in try self.screen(caller) }
    dispatcher.register(Xen.Hypercall.setTrapTable.rawValue) { [unowned self] call, caller in
      .from { () throws(HypercallFailure) in try self.setTrapTable(call.arguments[0], caller) }
    }
    dispatcher.register(Xen.Hypercall.stackSwitch.rawValue) { [unowned self] call, caller in
      .from { () throws(HypercallFailure) in
        self.vcpus[caller.index].kernelStackSegment = UInt16(truncatingIfNeeded: call.arguments[0])
        self.vcpus[caller.index].kernelStackPointer = call.arguments[1]
        return 0
      }
    }
    dispatcher.register(Xen.Hypercall.fpuTaskswitch.rawValue) { [unowned self] call, caller in
      .from { () throws(HypercallFailure) in try self.fpuTaskswitch(set: call.arguments[0] != 0, caller) }
    }
    dispatcher.register(Xen.Hypercall.setSegmentBase.rawValue) { [unowned self] call, caller in
      .from { () throws(HypercallFailure) in try self.setSegmentBase(call.arguments[0], call.arguments[1], caller) }
    }
    dispatcher.register(Xen.Hypercall.iret.rawValue) { [unowned self] _, caller in
      do throws(HypercallFailure) {
        try self.iret(caller)
        return .registersSet
      } catch {
        return .value(error.returnValue)
      }
    }
  }

  /// Starts the deprivileged mode for a guest the PV boot (`ParavirtBoot.load`) put in memory
  /// with `boot`: fills the image's hypercall page (`BootState.hypercallPage`) with this engine's
  /// stubs, writes the monitor's pages, reserves them, places the shared info page, marks every
  /// vCPU in kernel mode on the boot's root table with events masked. `syscall` says how guest
  /// SYSCALL reaches the monitor; nil asks the engine (`EngineVM.syscallFromRing3EntersRing0`).
  public func startDeprivileged(boot: BootState, syscall: ParavirtSyscallEntry? = nil) throws(LoaderError) {
    guard let layout = ParavirtMonitor.Layout(memory: memory, cpus: vcpus.count) else {
      throw LoaderError("not enough RAM for the monitor of \(vcpus.count) vCPUs (or too many vCPUs)")
    }
    if let page = boot.hypercallPage, !installHypercallPage(at: page) {
      throw LoaderError("the hypercall page 0x\(String(page, radix: 16)) is not a page of RAM")
    }
    let monitor = ParavirtMonitor(layout: layout)
    let entry = syscall ?? (machine.engineVM.syscallFromRing3EntersRing0 ? .native : .emulated)
    monitor.emulatesSyscall = entry == .emulated
    do { try monitor.writePages(into: memory, trap: trapInstruction) } catch {
      throw LoaderError("cannot write the monitor's pages: \(error)")
    }
    self.monitor = monitor
    reservedRange = layout.reservedRange
    do throws(HypercallFailure) {
      try prepareRootTable(frame: boot.specialRegisters.cr3 >> 12)
    } catch {
      throw LoaderError("the boot's root page table is not in RAM")
    }
    for i in vcpus.indices {
      vcpus[i].inKernelMode = true
      // The builder's root becomes a validated page table that every vCPU holds (as Xen's
      // builder does): from now on the guest changes it only through validated updates.
      do throws(HypercallFailure) {
        try adoptKernelRoot(boot.specialRegisters.cr3 >> 12, vcpu: i)
      } catch {
        throw LoaderError("the boot's page tables do not validate (error \(error.error.rawValue))")
      }
    }
    let sharedInfo = ParavirtBoot.sharedInfoAddress(layout)
    do throws(HypercallFailure) {
      try placeSharedInfo(frame: sharedInfo >> 12)
    } catch {
      throw LoaderError("cannot place the shared info page (error \(error.error.rawValue))")
    }
    monitor.sharedInfoFrame = sharedInfo >> 12
    for i in vcpus.indices { setUpcallMask(i, true) }
    if monitor.emulatesSyscall {
      do {
        let vcpu = machine.runners[0].vcpu
        try vcpu.setSpecialRegisters(monitor.adjusted(try vcpu.specialRegisters()))
      } catch {
        throw LoaderError("cannot clear EFER.SCE on vCPU 0: \(error)")
      }
    }
    // vCPU 0 runs the boot's context; the others wait, down, for `vcpu_op(initialise, up)`.
    vcpus[0].initialised = true
    vcpus[0].isUp = true
  }

  // MARK: The check every hypercall passes

  /// Monitor traps (the caller at ring 0 just past a stub's trap) are served here; a caller
  /// above ring 0 that is not a deprivileged guest kernel gets -EPERM; nil lets the call run.
  private func screen(_ caller: HypercallCaller) throws(EngineError) -> HypercallResult? {
    let s = try caller.vcpu.specialRegisters()
    if s.cs.selector & 3 == 0 {
      guard monitor != nil else { return nil }
      let r = try caller.vcpu.registers()
      guard let stub = ParavirtMonitor.stubIndex(returnAddress: r.rip, trapLength: trapInstruction.count) else {
        return nil
      }
      return try monitorTrap(stub, caller, r, s)
    }
    if monitor != nil && vcpus[caller.index].inKernelMode { return nil }
    return .value(Xen.Error.permissionDenied.returnValue)
  }

  // MARK: Traps

  /// Serves the trap of stub `stub` (a vector, or the SYSCALL stub): puts the vCPU back in the
  /// guest context it left and reflects the event to the guest kernel.
  private func monitorTrap(_ stub: UInt64, _ caller: HypercallCaller, _ r: Registers, _ s: SpecialRegisters)
    throws(EngineError) -> HypercallResult
  {
    var r = r
    var s = s
    guard let monitor else { return .shutdown(.crash) }
    var vector: UInt64
    var errorCode: UInt64?
    if stub == ParavirtMonitor.Layout.syscallStub {
      // SYSCALL left the user RIP in RCX and RFLAGS in R11; RSP is the user's.
      vector = 256
      r.rip = r.rcx
      r.rflags = r.r11 & Self.iretGuestFlags | 0x2
    } else {
      guard let frame = try? read(56, at: r.rsp, for: caller) else { return .shutdown(.crash) }
      let w = (0..<7).map { i in (0..<8).reduce(UInt64(0)) { $0 | UInt64(frame[i * 8 + $1]) << (8 * $1) } }
      guard w[3] & 3 == 3 else { return .shutdown(.crash) }  // the monitor itself faulted
      vector = w[0]
      guard vector < 256 else { return .shutdown(.crash) }
      if ParavirtMonitor.errorCodeVectors.contains(vector) { errorCode = w[1] }
      r.rip = w[2]
      r.rflags = w[4]
      r.rsp = w[5]
      if monitor.emulatesSyscall, let entered = syscallArrival(vector: vector, frame: w, r, s) {
        // A host whose SYSCALL from ring 3 does not reach ring 0: served as the SYSCALL stub
        // serves one.
        vector = 256
        errorCode = nil
        r = entered
        monitor.emulatedSyscalls += 1
      }
    }
    r.rflags = r.rflags & ~(1 << 9) | 0x2
    s.cs = ParavirtMonitor.guestCodeSegment
    s.ss = ParavirtMonitor.guestDataSegment
    let index = caller.index
    if vector == 13 && errorCode == 0 && vcpus[index].inKernelMode { monitor.privilegedInstructionFaults += 1 }
    if vector == 14 {
      monitor.vcpus[index].cr2 = s.cr2
      if let info = vcpuInfo(index) { storeWord(s.cr2, at: info + Xen.SharedInfoLayout.cr2) }
    }
    if vector == 7 && monitor.vcpus[index].taskSwitched {
      monitor.vcpus[index].taskSwitched = false
      s.cr0 &= ~UInt64(8)
    }
    // INT n through a gate the IDT keeps at DPL 0 (#GP with the IDT bit): Xen delivers it to the
    // guest's vector n when that trap's DPL allows the guest's mode (kernel 1, user 3).
    if vector == 13, let code = errorCode, code & 3 == 2, code >> 3 < 256,
      let entry = monitor.vcpus[index].traps[UInt8(truncatingIfNeeded: code >> 3)],
      entry.address != 0, Int(entry.flags & 3) >= (vcpus[index].inKernelMode ? 1 : 3)
    {
      vector = code >> 3
      errorCode = nil
      r.rip &+= 2
    }
    try caller.vcpu.setRegisters(r)
    try caller.vcpu.setSpecialRegisters(s)
    let handler: UInt64
    var mask = false
    if vector == 256 {
      handler = vcpus[index].syscallCallback
      vector = 6  // no callback: #UD, as for SYSCALL with EFER.SCE clear
    } else {
      handler = 0
    }
    do {
      if handler != 0 {
        try bounce(caller, to: handler, maskEvents: false)
      } else {
        guard let entry = monitor.vcpus[index].traps[UInt8(truncatingIfNeeded: vector)], entry.address != 0 else {
          return .shutdown(.crash)
        }
        mask = entry.flags & 4 != 0
        try bounce(caller, to: entry.address, errorCode: errorCode, maskEvents: mask)
      }
    } catch {
      return .shutdown(.crash)
    }
    return .registersSet
  }

  /// Before the VMM enters a guest handler on its own (an event upcall), whether it may now:
  /// not while the vCPU runs the monitor's ring-0 code (an exit between an exception's delivery
  /// and its stub's trap; the trap follows, and the upcall after it), nor while it is caught
  /// between a quirky SYSCALL's jump to the SYSCALL stub and the fetch fault there (at ring 3,
  /// RIP at the stub: `syscallArrival`; the host may hold that fault for delivery, which would
  /// then land on the upcall's handler). Entering the guest again lets the trap happen first.
  func readyForUpcall(_ caller: HypercallCaller) throws(HypercallFailure) -> Bool {
    guard let monitor else { return true }
    do {
      let s = try caller.vcpu.specialRegisters()
      if s.cs.selector & 3 == 0 { return false }
      guard monitor.emulatesSyscall else { return true }
      let r = try caller.vcpu.registers()
      return r.rip != ParavirtMonitor.Layout.stubAddress(ParavirtMonitor.Layout.syscallStub)
    } catch {
      throw HypercallFailure(.fault)
    }
  }

  /// A SYSCALL of guest code that reached the monitor as an exception (the `emulated` entry of
  /// `ParavirtSyscallEntry`): the registers as the SYSCALL stub sees them (RIP and RFLAGS the guest's, RCX
  /// and R11 what SYSCALL leaves), or nil for an ordinary exception. Two arrivals:
  /// - #UD at the two bytes 0F 05 (EFER.SCE clear, as the architecture says): RIP past them;
  /// - #PF on the instruction fetch at the SYSCALL stub itself from ring 3 (a host that runs
  ///   SYSCALL with its own EFER and jumps to LSTAR without leaving ring 3, this nested host's
  ///   KVM): SYSCALL already set RCX and R11. A ring-3 jump there with chosen RCX and R11 is no
  ///   more than a SYSCALL with them: RFLAGS is taken from R11 with the guest-settable bits only.
  private func syscallArrival(vector: UInt64, frame w: [UInt64], _ r: Registers, _ s: SpecialRegisters) -> Registers? {
    var r = r
    switch vector {
    case 6 where isSyscall(at: r.rip, s):
      r.rip &+= 2
      r.rcx = r.rip
      r.rflags &= ~Self.resumeFlag
      r.r11 = r.rflags
    case 14
    where w[1] & Self.instructionFetch != 0
      && r.rip == ParavirtMonitor.Layout.stubAddress(ParavirtMonitor.Layout.syscallStub):
      r.rip = r.rcx
      r.rflags = r.r11 & Self.iretGuestFlags | 0x2
    default:
      return nil
    }
    return r
  }

  /// Whether the bytes at guest-virtual `rip` are SYSCALL (0F 05), read through the vCPU's
  /// page tables with guest ring 3's rights (where the #UD came from).
  private func isSyscall(at rip: UInt64, _ s: SpecialRegisters) -> Bool {
    var view = s
    view.cs = ParavirtMonitor.guestCodeSegment
    let walk = GuestVirtualAccess(memory: memory, specialRegisters: view)
    for (offset, byte) in [(UInt64(0), UInt8(0x0F)), (1, 0x05)] {
      guard let physical = try? walk.physical(rip &+ offset, write: false),
        let b = try? memory.read(UInt8.self, at: physical), b == byte
      else { return false }
    }
    return true
  }

  // MARK: Hypercalls

  /// `set_trap_table(traps)`: `trap_info` entries {u8 vector, u8 flags, u16 cs, u64 address}
  /// (16 bytes) up to one with address 0, at most 256; a null pointer clears the table.
  private func setTrapTable(_ pointer: UInt64, _ caller: HypercallCaller) throws(HypercallFailure) -> UInt64 {
    let index = caller.index
    guard let monitor else { throw HypercallFailure(.notImplemented) }
    if pointer == 0 {
      monitor.vcpus[index].traps = [:]
      return 0
    }
    var entries: [UInt8: ParavirtMonitor.TrapEntry] = [:]
    for n in 0..<257 {
      guard n < 256 else { throw HypercallFailure(.invalid) }
      let e = try read(16, at: pointer &+ UInt64(n * 16), for: caller)
      guard let (vector, entry) = try Self.trapEntry(e[...]) else { break }
      entries[vector] = entry
    }
    monitor.vcpus[index].traps.merge(entries) { $1 }
    return 0
  }

  /// One 16-byte `trap_info` {u8 vector, u8 flags, u16 cs, u64 address}: nil for address 0 (no
  /// handler), -EINVAL for a non-canonical address.
  static func trapEntry(_ e: ArraySlice<UInt8>) throws(HypercallFailure) -> (UInt8, ParavirtMonitor.TrapEntry)? {
    let at = e.startIndex
    let address = (8..<16).reduce(UInt64(0)) { $0 | UInt64(e[at + $1]) << (8 * ($1 - 8)) }
    if address == 0 { return nil }
    guard Int64(bitPattern: address << 16) >> 16 == Int64(bitPattern: address) else {
      throw HypercallFailure(.invalid)
    }
    return (e[at], .init(address: address, flags: e[at + 1], cs: UInt16(e[at + 2]) | UInt16(e[at + 3]) << 8))
  }

  /// `fpu_taskswitch(set)`: sets or clears CR0.TS; the next #NM after a set is reflected and
  /// clears it (Xen's lazy FPU switch).
  private func fpuTaskswitch(set: Bool, _ caller: HypercallCaller) throws(HypercallFailure) -> UInt64 {
    do {
      var s = try caller.vcpu.specialRegisters()
      s.cr0 = set ? s.cr0 | 8 : s.cr0 & ~UInt64(8)
      try caller.vcpu.setSpecialRegisters(s)
    } catch {
      throw HypercallFailure(.fault)
    }
    monitor?.vcpus[caller.index].taskSwitched = set
    return 0
  }

  /// `set_segment_base(which, base)`: FS base, the user or kernel GS base (the deprivileged
  /// kernel's pair swaps on mode switches), or a user GS selector (null or 0xE02B; its base 0).
  private func setSegmentBase(_ which: UInt64, _ base: UInt64, _ caller: HypercallCaller) throws(HypercallFailure)
    -> UInt64
  {
    let canonical = Int64(bitPattern: base << 16) >> 16 == Int64(bitPattern: base)
    do {
      var s = try caller.vcpu.specialRegisters()
      switch Xen.SegmentBase(rawValue: which) {
      case .fs:
        guard canonical else { throw HypercallFailure(.invalid) }
        s.fs.base = base
      case .gsKernel:
        guard canonical else { throw HypercallFailure(.invalid) }
        s.gs.base = base
      case .gsUser:
        guard canonical else { throw HypercallFailure(.invalid) }
        if let monitor {
          monitor.vcpus[caller.index].inactiveGSBase = base
        } else {
          try caller.vcpu.setMSRs([0xC000_0102: base])  // KERNEL_GS_BASE: the user's after SWAPGS
        }
      case .gsUserSelector:
        let selector = UInt16(truncatingIfNeeded: base)
        guard selector & ~3 == 0 || selector == ParavirtMonitor.Selector.guestData else {
          throw HypercallFailure(.invalid)
        }
        s.gs.selector = selector
        if let monitor { monitor.vcpus[caller.index].inactiveGSBase = 0 }
      case nil:
        throw HypercallFailure(.invalid)
      }
      try caller.vcpu.setSpecialRegisters(s)
    } catch let error as HypercallFailure {
      throw error
    } catch {
      throw HypercallFailure(.fault)
    }
    return 0
  }

  /// `iret`: pops Xen's `iret_context` {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss} from the
  /// guest stack and returns there. Deprivileged: a CS with RPL 3 returns to guest user mode
  /// (root table `userBasePointer`, GS bases swapped); the upcall mask follows the saved IF.
  private func iret(_ caller: HypercallCaller) throws(HypercallFailure) {
    var r: Registers
    var s: SpecialRegisters
    do {
      r = try caller.vcpu.registers()
      s = try caller.vcpu.specialRegisters()
    } catch {
      throw HypercallFailure(.fault)
    }
    let bytes = try read(72, at: r.rsp, for: caller)
    let w = (0..<9).map { i in (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[i * 8 + $1]) << (8 * $1) } }
    let (rip, cs, rflags, rsp, ss) = (
      w[4], UInt16(truncatingIfNeeded: w[5]), w[6], w[7], UInt16(truncatingIfNeeded: w[8])
    )
    guard Int64(bitPattern: rip << 16) >> 16 == Int64(bitPattern: rip) else { throw HypercallFailure(.invalid) }
    r.rax = w[0]
    if w[3] & Self.iretInSyscall != 0 {
      r.rcx = rip
      r.r11 = rflags
    } else {
      r.r11 = w[1]
      r.rcx = w[2]
    }
    r.rip = rip
    r.rsp = rsp
    if let monitor {
      if cs & 3 == 3 && vcpus[caller.index].inKernelMode {
        if vcpus[caller.index].userBasePointer != 0 { s.cr3 = vcpus[caller.index].userBasePointer }
        swap(&s.gs.base, &monitor.vcpus[caller.index].inactiveGSBase)
        vcpus[caller.index].inKernelMode = false
      }
      s.cs = ParavirtMonitor.guestCodeSegment
      s.ss = ParavirtMonitor.guestDataSegment
      r.rflags = rflags & Self.iretGuestFlags | 0x2
    } else {
      // A guest kernel at ring 0: its own selectors (descriptors from its GDT when they change).
      if cs != s.cs.selector { s.cs = try descriptor(cs, s, caller) }
      if ss != s.ss.selector { s.ss = try descriptor(ss, s, caller) }
      r.rflags = rflags & (Self.iretGuestFlags | 1 << 9 | 3 << 12) | 0x2
    }
    do {
      try caller.vcpu.setRegisters(r)
      try caller.vcpu.setSpecialRegisters(s)
      try dropEngineShadowsIfTablesChanged(caller.vcpu)
    } catch {
      throw HypercallFailure(.fault)
    }
    setUpcallMask(caller.index, rflags & (1 << 9) == 0)
  }

  /// The segment cache for `selector` from the guest's GDT (a ring-0 guest kernel's `iret` to
  /// other selectors). Null selectors give an unusable segment.
  private func descriptor(_ selector: UInt16, _ s: SpecialRegisters, _ caller: HypercallCaller) throws(HypercallFailure)
    -> Segment
  {
    if selector & ~3 == 0 {
      var null = Segment(selector: selector, base: 0, limit: 0, type: 0, present: false)
      null.unusable = true
      return null
    }
    guard selector & 4 == 0, UInt64(selector | 7) <= UInt64(s.gdt.limit) else { throw HypercallFailure(.invalid) }
    let d = try read(UInt64.self, at: s.gdt.base &+ UInt64(selector & ~7), for: caller)
    guard d & (1 << 47) != 0 else { throw HypercallFailure(.invalid) }
    let limit = UInt32(d & 0xFFFF) | UInt32((d >> 48) & 0xF) << 16
    let g = d & (1 << 55) != 0
    return Segment(
      selector: selector, base: (d >> 16) & 0xFF_FFFF | ((d >> 56) & 0xFF) << 24,
      limit: g ? limit << 12 | 0xFFF : limit, type: UInt8((d >> 40) & 0xF), s: d & (1 << 44) != 0,
      dpl: UInt8((d >> 45) & 3), l: d & (1 << 53) != 0, db: d & (1 << 54) != 0, g: g)
  }
}

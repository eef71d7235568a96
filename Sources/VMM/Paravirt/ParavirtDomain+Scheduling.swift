/// `sched_op`, `set_timer_op`, `vcpu_op` and `set_callbacks`: blocking, yielding, shutting down,
/// timers, vCPUs and where event upcalls enter the guest.
extension ParavirtDomain {
  /// The shortest period `vcpu_op(set_periodic_timer)` takes (Xen's: 1 ms).
  static let minimumTimerPeriod: UInt64 = 1_000_000
  /// The most ports one `sched_op(poll)` watches (Xen's limit: 128).
  static let pollPortLimit: UInt32 = 128

  /// Registers `sched_op`, `set_timer_op`, `vcpu_op` and `set_callbacks`.
  func registerSchedulingHypercalls(on dispatcher: HypercallDispatcher) {
    dispatcher.register(Xen.Hypercall.schedOp.rawValue) { [unowned self] call, caller in
      do throws(HypercallFailure) {
        return try self.schedOp(call.arguments[0], call.arguments[1], caller)
      } catch {
        return .value(error.returnValue)
      }
    }
    dispatcher.register(Xen.Hypercall.setTimerOp.rawValue) { [unowned self] call, caller in
      // 32-bit callers pass the 64-bit deadline in EBX (low) and ECX (high).
      let deadline = call.longMode ? call.arguments[0] : call.arguments[0] | call.arguments[1] << 32
      self.setSingleshotTimer(caller.index, deadline == 0 ? nil : deadline)
      return .value(0)
    }
    dispatcher.register(Xen.Hypercall.vcpuOp.rawValue) { [unowned self] call, caller in
      .from { () throws(HypercallFailure) in
        try self.vcpuOp(call.arguments[0], call.arguments[1], call.arguments[2], caller)
      }
    }
    dispatcher.register(Xen.Hypercall.setCallbacks.rawValue) { [unowned self] call, caller in
      let a = call.arguments
      if call.longMode {
        // x86-64: set_callbacks(event, failsafe, syscall) addresses.
        (vcpus[caller.index].eventCallback, vcpus[caller.index].failsafeCallback) = (a[0], a[1])
        vcpus[caller.index].syscallCallback = a[2]
      } else {
        // x86-32: (event selector, event address, failsafe selector, failsafe address).
        (vcpus[caller.index].eventCallback, vcpus[caller.index].failsafeCallback) = (a[1], a[3])
      }
      return .value(0)
    }
  }

  // MARK: sched_op

  /// `sched_op(cmd, arg)`: block and poll end in `.block` (the runner sleeps), shutdown in
  /// `.shutdown`.
  private func schedOp(_ command: UInt64, _ arg: UInt64, _ caller: HypercallCaller) throws(HypercallFailure)
    -> HypercallResult
  {
    let v = caller.index
    switch Xen.SchedOp(rawValue: command) {
    case .yield:
      return .value(0)
    case .block:
      // Xen's do_block: events enabled, then sleep unless one is already waiting.
      setUpcallMask(v, false)
      setRunState(v, .blocked, caller)
      return .block(0)
    case .shutdown:
      // sched_shutdown { u32 reason }
      let raw = try read(UInt32.self, at: arg, for: caller)
      if shutdownWithExitStatus(raw) { return .value(0) }
      guard let reason = Xen.ShutdownReason(rawValue: raw) else { throw HypercallFailure(.invalid) }
      return .shutdown(reason)
    case .poll:
      // sched_poll { guest handle ports @0; u32 nr_ports @8; u64 timeout @16 }
      let list = try read(UInt64.self, at: arg, for: caller)
      let count = try read(UInt32.self, at: arg &+ 8, for: caller)
      let timeout = try read(UInt64.self, at: arg &+ 16, for: caller)
      guard count <= Self.pollPortLimit else { throw HypercallFailure(.invalid) }
      let bytes = try read(Int(count) * 4, at: list, for: caller)
      var ports: [UInt32] = []
      for i in 0..<Int(count) {
        let p = (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[i * 4 + $1]) << (8 * $1) }
        guard events.isValid(p) else { throw HypercallFailure(.invalid) }
        ports.append(p)
      }
      if ports.contains(where: { testBit(Layout.pendingBitmap, $0) }) { return .value(0) }
      if timeout != 0 && timeout <= systemTime { return .value(0) }
      events.vcpus[v].pollPorts = ports
      events.vcpus[v].pollTimeout = timeout
      setRunState(v, .blocked, caller)
      return .block(0)
    case nil:
      throw HypercallFailure(.notImplemented)
    }
  }

  /// Whether vCPU `v`, blocked or polling, may run again (the runner's sleep ends): an upcall to
  /// take (block), a polled port pending or the poll's timeout passed (poll).
  func blockEnds(_ v: Int) -> Bool {
    let e = events.vcpus[v]
    if let ports = e.pollPorts {
      return ports.contains { testBit(Layout.pendingBitmap, $0) } || (e.pollTimeout != 0 && e.pollTimeout <= systemTime)
    }
    return upcallDeliverable(v)
  }

  /// The deadline the blocked vCPU `v` sleeps until at most (a poll's timeout), besides timers.
  func blockDeadline(_ v: Int) -> UInt64? {
    let e = events.vcpus[v]
    return e.pollPorts != nil && e.pollTimeout != 0 ? e.pollTimeout : nil
  }

  /// The vCPU runs again after a block or poll.
  func endBlock(_ caller: HypercallCaller) {
    events.vcpus[caller.index].pollPorts = nil
    setRunState(caller.index, .running, caller)
    updateTime(vcpu: caller.index)
  }

  // MARK: Timers

  /// `set_timer_op` and `set_singleshot_timer`: VIRQ_TIMER at `deadline` (system-time ns; nil
  /// cancels). A deadline already passed fires at the vCPU's next entry.
  func setSingleshotTimer(_ v: Int, _ deadline: UInt64?) {
    events.vcpus[v].singleshotDeadline = deadline
  }

  /// Raises VIRQ_TIMER on vCPU `v` for each of its timers that fell due; returns the next deadline.
  func serviceTimers(_ v: Int) -> UInt64? {
    let now = systemTime
    var e = events.vcpus[v]
    var fire = false
    if let d = e.singleshotDeadline, d <= now {
      e.singleshotDeadline = nil
      fire = true
    }
    if let period = e.periodicPeriod, e.periodicNext <= now {
      fire = true
      let missed = (now - e.periodicNext) / period + 1
      e.periodicNext &+= missed &* period
    }
    events.vcpus[v] = e
    if fire {
      updateTime(vcpu: v)
      raiseVIRQ(.timer, vcpu: v)
    }
    var next = e.singleshotDeadline
    if e.periodicPeriod != nil { next = min(next ?? .max, e.periodicNext) }
    return next
  }

  // MARK: Runstate

  /// Moves vCPU `v` to `state`, accounting the time spent in the old one, and updates its
  /// runstate area when it registered one (through `caller`'s page tables when `caller` is `v`).
  func setRunState(_ v: Int, _ state: Xen.RunState, _ caller: HypercallCaller?) {
    let now = systemTime
    var e = events.vcpus[v]
    e.runStateTimes[e.runState.rawValue] &+= now &- e.runStateEntry
    e.runState = state
    e.runStateEntry = now
    events.vcpus[v] = e
    if let caller, caller.index == v { writeRunstate(v, caller) }
  }

  /// `vcpu_runstate_info` { int state @0; u64 state_entry_time @8; u64 time[4] @16 } of `v`.
  func runstateBytes(_ v: Int) -> [UInt8] {
    let e = events.vcpus[v]
    var words: [UInt64] = [UInt64(e.runState.rawValue), e.runStateEntry]
    var times = e.runStateTimes
    times[e.runState.rawValue] &+= systemTime &- e.runStateEntry
    words += times
    return words.flatMap { w in (0..<8).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
  }

  /// Writes `v`'s runstate to its registered area (best effort: an unmapped area is skipped).
  func writeRunstate(_ v: Int, _ caller: HypercallCaller) {
    guard let area = events.vcpus[v].runstateArea else { return }
    try? write(runstateBytes(v), at: area, for: caller)
  }

  // MARK: vcpu_op

  /// `vcpu_op(cmd, vcpuid, arg)`.
  private func vcpuOp(_ command: UInt64, _ target: UInt64, _ arg: UInt64, _ caller: HypercallCaller)
    throws(HypercallFailure) -> UInt64
  {
    guard target < UInt64(vcpus.count) else { throw HypercallFailure(.noEntry) }
    let v = Int(target)
    switch Xen.VCPUOp(rawValue: command) {
    case .isUp:
      return isUp(v) ? 1 : 0
    case .up:
      // Deprivileged: the context `initialise` gave (ParavirtDomain+VCPUContext). A kernel at
      // ring 0 starts its application processors by INIT-SIPI, so only a running one is "up".
      if monitor != nil { return try bringUp(v) }
      guard isUp(v) else { throw HypercallFailure(.invalid) }
      return 0
    case .initialise:
      guard monitor != nil else { throw HypercallFailure(.notImplemented) }
      return try initialiseVCPU(v, context: arg, caller: caller)
    case .down:
      guard monitor != nil else { throw HypercallFailure(.notImplemented) }
      return try takeDown(v)
    case .setPeriodicTimer:
      // vcpu_set_periodic_timer { u64 period_ns }
      let period = try read(UInt64.self, at: arg, for: caller)
      guard period >= Self.minimumTimerPeriod, period < 1 << 62 else { throw HypercallFailure(.invalid) }
      events.vcpus[v].periodicPeriod = period
      events.vcpus[v].periodicNext = systemTime &+ period
      if v != caller.index { wake(v) }  // its runner re-arms its deadline
      return 0
    case .stopPeriodicTimer:
      events.vcpus[v].periodicPeriod = nil
      return 0
    case .setSingleshotTimer:
      // vcpu_set_singleshot_timer { u64 timeout_abs_ns @0; u32 flags @8 }
      guard v == caller.index else { throw HypercallFailure(.invalid) }
      let deadline = try read(UInt64.self, at: arg, for: caller)
      let flags = try read(UInt32.self, at: arg &+ 8, for: caller)
      if flags & Xen.singleshotFutureFlag != 0 && deadline < systemTime { return Xen.timeErrorValue }
      setSingleshotTimer(v, deadline)
      return 0
    case .stopSingleshotTimer:
      guard v == caller.index else { throw HypercallFailure(.invalid) }
      setSingleshotTimer(v, nil)
      return 0
    case .registerVCPUInfo:
      // vcpu_register_vcpu_info { u64 mfn @0; u32 offset @8; u32 rsvd @12 }
      let frame = try read(UInt64.self, at: arg, for: caller)
      let offset = try read(UInt32.self, at: arg &+ 8, for: caller)
      guard events.vcpus[v].vcpuInfoAddress == nil, UInt64(offset) + Layout.vcpuInfoSize <= 4096, ownsFrame(frame),
        memoryState.frames[frame].tableReferences == 0
      else { throw HypercallFailure(.invalid) }
      let address = frame << 12 + UInt64(offset)
      var bytes = [UInt8](repeating: 0, count: Int(Layout.vcpuInfoSize))
      bytes[Int(Layout.upcallMask)] = 1
      if let old = vcpuInfo(v), let current = try? memory.read(old, count: bytes.count) { bytes = current }
      guard (try? memory.write(address, bytes: bytes)) != nil else { throw HypercallFailure(.invalid) }
      events.vcpus[v].vcpuInfoAddress = address
      // As Xen does: every word looked at again, an upcall raised to resynchronise.
      storeWord(~0, at: address + Layout.pendingSelector)
      markUpcallPending(v)
      events.vcpus[v].timeStale = true
      return 0
    case .registerRunstateMemoryArea:
      // vcpu_register_runstate_memory_area { guest handle addr }: a guest-virtual address
      events.vcpus[v].runstateArea = try read(UInt64.self, at: arg, for: caller)
      if v == caller.index { writeRunstate(v, caller) }
      return 0
    case .getRunstateInfo:
      try write(runstateBytes(v), at: arg, for: caller)
      return 0
    case nil:
      throw HypercallFailure(.notImplemented)
    }
  }

  /// Whether vCPU `v` runs: deprivileged, between `up` and `down`; otherwise not waiting for its
  /// start-up IPI.
  func isUp(_ v: Int) -> Bool {
    if monitor != nil { return vcpus.indices.contains(v) && vcpus[v].isUp }
    guard machine.runners.indices.contains(v) else { return false }
    return !machine.runners[v].isWaitingForStartup
  }
}

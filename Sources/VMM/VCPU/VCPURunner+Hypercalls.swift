/// A hypercall exit: decoded once, served by the machine's dispatcher under the machine lock,
/// and its result carried out here.
extension VCPURunner {
  /// Serves the hypercall the vCPU stopped at; returns a reason when the guest must stop.
  func hypercall() throws(EngineError) -> StopReason? {
    let call = HypercallDispatcher.decode(registers: try vcpu.registers(), special: try vcpu.specialRegisters())
    let caller = HypercallCaller(index: index, vcpu: vcpu)
    let result = try machine.deviceLock.locked { () throws(EngineError) -> HypercallResult in
      try machine.hypercalls.dispatch(call, caller: caller)
    }
    awaitRemoteFlushes()
    switch result {
    case .value(let v):
      try vcpu.complete(.value(v))
    case .registersSet:
      try vcpu.complete(.none)
    case .block(let v):
      try vcpu.complete(.value(v))
      return try paravirtualBlock()
    case .shutdown(let reason):
      try vcpu.complete(.value(0))
      return paravirtualShutdown(reason)
    }
    return nil
  }

  /// `sched_op(block)` and `poll`: sleeps until an event is pending for this vCPU, a timer it set
  /// falls due, a polled port is pending or the machine stops (`VCPURunner+Events`).
  func paravirtualBlock() throws(EngineError) -> StopReason? {
    sleepInParavirtualBlock()
  }

  /// `sched_op(shutdown)`: power-off stops the machine as ACPI power-off does, reboot resets it
  /// (or stops with `--no-reboot`), anything else stops it as a guest-reported crash.
  func paravirtualShutdown(_ reason: Xen.ShutdownReason) -> StopReason? {
    switch reason {
    case .powerOff:
      return .powerOff
    case .reboot:
      machine.control.requestReset(.hypercall)
      return nil
    case .suspend, .crash, .watchdog:
      return .internalError(stateReport("the guest shut down with reason \(reason) (sched_op shutdown)"))
    }
  }
}

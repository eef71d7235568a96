/// The runner's side of event channels: timers that fall due, upcalls delivered before the guest
/// is entered, and `sched_op(block)`/`poll` sleeping until an event.
extension VCPURunner {
  /// Between exits, under the machine lock: raises the timers of this vCPU that fell due and
  /// enters its event callback when it has an upcall to take. Returns the next timer deadline.
  /// A stack that cannot take the upcall's frame stops the machine (the guest crashed).
  func serviceParavirtualEvents() -> (deadline: UInt64?, stop: StopReason?) {
    let domain = machine.paravirt
    guard domain.events.sharedInfo != nil else { return (nil, nil) }
    domain.refreshTimeIfStale(index)
    let deadline = domain.serviceTimers(index)
    do {
      _ = try domain.deliverUpcall(HypercallCaller(index: index, vcpu: vcpu))
    } catch {
      return (deadline, .internalError(stateReport("the event upcall's frame could not be written on the guest stack")))
    }
    return (deadline, nil)
  }

  /// For the HLT idle loop, under the machine lock: raises timers that fell due; whether an
  /// upcall waits to be delivered (which ends the idle) and the next timer deadline.
  func paravirtualIdle() -> (upcall: Bool, deadline: UInt64?) {
    let domain = machine.paravirt
    guard domain.events.sharedInfo != nil else { return (false, nil) }
    let deadline = domain.serviceTimers(index)
    return (domain.vcpus[index].eventCallback != 0 && domain.upcallDeliverable(index), deadline)
  }

  /// Sleeps after `sched_op(block)` or `poll` until the domain says the block ends (an event, a
  /// polled port, a poll's timeout; timers raised meanwhile count), a control request, a host
  /// stop or the timeout. Devices keep their time meanwhile; in virtual time guest time jumps to
  /// the next deadline.
  func sleepInParavirtualBlock() -> StopReason? {
    unowned(unsafe) let machine = self.machine
    let domain = machine.paravirt
    let caller = HypercallCaller(index: index, vcpu: vcpu)
    deadlineTimer?.arm(nil)
    while true {
      machine.deviceLock.lock()
      var deadline = machine.advanceDevices()
      machine.drainInput()
      deadline = earliest(deadline, domain.serviceTimers(index))
      deadline = earliest(deadline, domain.blockDeadline(index))
      let ends = domain.blockEnds(index)
      if ends { domain.endBlock(caller) }
      machine.deviceLock.unlock()
      if ends || machine.control.hasChanged(since: controlSeen) { return nil }
      if let stop = machine.hostStop().reason { return stop }
      let hostNow = machine.hostClock.nanoseconds
      if let t = machine.timeoutDeadline, hostNow >= t { return nil }
      if let virtualTime = machine.virtualTime, let deadline, machine.runners.count == 1 {
        virtualTime.advance(to: deadline)
        continue
      }
      var wait = machine.timeoutDeadline.map { $0 > hostNow ? $0 - hostNow : 0 }
      if machine.virtualTime == nil, let deadline {
        let now = machine.clock.nanoseconds
        wait = min(wait ?? .max, deadline > now ? deadline - now : 0)
      }
      releasePCPU(blocking: true)  // blocked: no pCPU until an event (the loop takes one again)
      wakeup.wait(timeout: wait)
    }
  }
}

/// Handling one exit in the VMM, and the idle loop of a halted vCPU.
extension VCPURunner {
  /// Handles one exit; returns a reason when the guest must stop.
  func handle(_ exit: VMExit) -> StopReason? {
    unowned(unsafe) let machine = self.machine
    do {
      switch exit {
      case .io(let a):
        try deviceAccess(
          isWrite: a.isWrite, read: { UInt64(machine.portBus.read(port: a.port, size: a.size)) },
          write: { machine.portBus.write(port: a.port, size: a.size, value: a.value) })
      case .mmio(let a) where machine.pic != nil && a.address &- LocalAPIC.base < 0x1000 && lapic.respondsToMMIO:
        // Every vCPU sees its own local APIC in this page (in xAPIC mode).
        if a.isWrite {
          lapic.write(offset: a.address - LocalAPIC.base, size: a.size, value: a.value)
          giveTaskPriority()  // the TPR is CR8
        } else {
          try vcpu.complete(.value(lapic.read(offset: a.address - LocalAPIC.base, size: a.size)))
        }
      case .mmio(let a):
        try deviceAccess(
          isWrite: a.isWrite, read: { machine.mmioBus.read(address: a.address, size: a.size) },
          write: { machine.mmioBus.write(address: a.address, size: a.size, value: a.value) })
      case .halt:
        return try idle()
      case .floatingPointError:
        // FERR# (CR0.NE clear): run on under IGNNE#, or IRQ 13 and wait like HLT.
        let ignore = machine.deviceLock.locked { machine.devices.coprocessorError.signalError() }
        try vcpu.complete(.value(ignore ? 1 : 0))
        if !ignore { return try idle() }
      case .interruptWindow, .budgetExhausted:
        break
      case .kicked:
        machine.deviceLock.locked { machine.drainInput() }
      case .shutdown(.haltWithInterruptsDisabled):
        return haltedWithInterruptsDisabled()
      case .shutdown(.tripleFault)
      where machine.configuration.rebootOnTripleFault && machine.configuration.reboot != nil:
        machine.configuration.log?(stateReport("triple fault").description)
        machine.control.requestReset(.tripleFault)
      case .shutdown(let why):
        return .shutdown(why, stateReport(why == .tripleFault ? "triple fault" : "shutdown"))
      case .internalError(let report):
        return .internalError(report)
      case .cpuid:
        try vcpu.complete(.cpuid(eax: 0, ebx: 0, ecx: 0, edx: 0))
      case .msrRead(let index):
        try vcpu.complete(readMSR(index))
      case .msrWrite(let index, let value):
        try vcpu.complete(writeMSR(index, value: value))
      case .rdtsc:
        try vcpu.complete(.value(machine.clock.nanoseconds))  // a 1 GHz TSC in guest time
      case .invlpg:
        try vcpu.complete(.none)
      case .hypercall:
        return try hypercall()
      case .exception(let vector, let code):
        return .internalError(
          stateReport("unexpected guest exception \(vector)" + (code.map { " (error code \($0))" } ?? "")))
      }
    } catch {
      return engineFailure(error)
    }
    return nil
  }

  /// HLT with IF=0. Only an NMI, INIT or a control request can end it. With one vCPU and no NMI
  /// waiting nothing can ever wake it: the run stops. With several, another vCPU may still send
  /// INIT or an NMI (a parked application processor, as firmware leaves them): the runner sleeps
  /// until one arrives or a control request, without running the vCPU.
  private func haltedWithInterruptsDisabled() -> StopReason? {
    guard machine.runners.count > 1 || lapic.hasPendingNMI else {
      return .haltedForever(stateReport("HLT with interrupts disabled"))
    }
    deadlineTimer?.arm(nil)
    releasePCPU(blocking: true)
    while !machine.control.hasChanged(since: controlSeen) && !hasStartupEvent && !lapic.hasPendingNMI {
      if let stop = machine.hostStop().reason { return stop }
      let now = machine.hostClock.nanoseconds
      wakeup.wait(timeout: machine.timeoutDeadline.map { $0 > now ? $0 - now : 0 })
    }
    return nil
  }

  /// A port or MMIO access under the machine lock; a read's value goes back to the vCPU after the
  /// lock is released. A write may have made the 8259's output reach another vCPU (a device's
  /// line, a PIC mask or EOI, an I/O APIC entry): those vCPUs are woken.
  private func deviceAccess(isWrite: Bool, read: () -> UInt64, write: () -> Void) throws(EngineError) {
    if isWrite {
      machine.deviceLock.locked {
        write()
        machine.wakeVCPUsThePICReaches(besides: self)
      }
      return
    }
    let value = machine.deviceLock.locked(read)
    try vcpu.complete(.value(value))
  }

  /// The guest executed HLT: sleep until an interrupt can wake it (a timer deadline or host input)
  /// or a control request. HLT with IF=0 can never end.
  private func idle() throws(EngineError) -> StopReason? {
    unowned(unsafe) let machine = self.machine
    guard let pic = machine.pic else { return nil }  // in-kernel irqchip: KVM handles HLT itself
    deadlineTimer?.arm(nil)  // this thread sleeps until the deadline itself: no kick needed
    if try vcpu.registers().rflags & 0x200 == 0 {
      return haltedWithInterruptsDisabled()
    }
    while true {
      machine.deviceLock.lock()
      var deadline = machine.advanceDevices()
      machine.drainInput()
      let events = paravirtualIdle()
      deadline = earliest(deadline, events.deadline)
      let pending =
        events.upcall || lapic.hasDeliverableInterrupt || lapic.hasPendingNMI
        || (pic.hasPendingInterrupt && machine.picOutputReaches(self))
      machine.deviceLock.unlock()
      if pending || machine.control.hasChanged(since: controlSeen) { return nil }
      let hostNow = machine.hostClock.nanoseconds
      if let t = machine.timeoutDeadline, hostNow >= t { return nil }
      if let t = machine.outputStop?.deadline {
        if machine.clock.nanoseconds >= t { return nil }
        deadline = earliest(deadline, t)
      }
      if let virtualTime = machine.virtualTime, let deadline {
        // Nothing runs while the guest idles: jump guest time to the next timer event.
        virtualTime.advance(to: deadline)
        continue
      }
      // Host time (or virtual time with no timer armed): sleep until the deadline, host input,
      // a control request or the timeout.
      let until = earliest(machine.virtualTime == nil ? deadline : nil, machine.timeoutDeadline)
      releasePCPU(blocking: true)
      wakeup.wait(timeout: until.map { $0 > hostNow ? $0 - hostNow : 0 })
    }
  }
}

/// The interrupt router's IPI half: delivers what one local APIC's ICR (or an I/O APIC entry)
/// sends to the vCPUs it addresses. Targets are found by the destination shorthand, or by the
/// destination field (`LocalAPIC.isAddressed`): physical (an APIC ID; 0xFF, or 0xFFFFFFFF in
/// x2APIC format, for all), logical flat in xAPIC mode (a bit per APIC in the LDR) or logical
/// cluster in x2APIC mode. Fixed interrupts go to every target APIC, lowest-priority ones to the
/// target whose processor priority class is lowest (`lowestPriorityTarget`), NMIs to their NMI latch, INIT and start-up IPIs to the targets'
/// runners (`receiveINIT`, `receiveStartup`). SMIs are accepted and dropped (there is no SMM).
/// ExtINT messages are not routed: the 8259's output reaches a CPU through LINT0 or through the
/// I/O APIC's pin 0 (`picOutputReaches`). An IPI with a destination no APIC matches sets the
/// sender's send accept error.
extension Machine {
  /// Sends `ipi` to its targets. Called on the sender's runner thread, with no lock held.
  func route(_ ipi: InterProcessorInterrupt) {
    let targets: [VCPURunner]
    switch ipi.shorthand {
    case 1: targets = runners.filter { $0.lapic.id == ipi.source }
    case 2: targets = runners
    case 3: targets = runners.filter { $0.lapic.id != ipi.source }
    default: targets = runners.filter { $0.lapic.isAddressed(by: ipi) }
    }
    if targets.isEmpty && ipi.shorthand == 0 && ipi.source != 0xFF {
      runners.first { $0.lapic.id == ipi.source }?.lapic.noteUndeliveredIPI()
    }
    switch InterProcessorInterrupt.DeliveryMode(rawValue: ipi.deliveryMode) {
    case .fixed: for t in targets { t.lapic.accept(vector: ipi.vector, level: ipi.levelTriggered) }
    case .lowestPriority: lowestPriorityTarget(targets)?.lapic.accept(vector: ipi.vector)
    case .nmi: for t in targets { t.lapic.acceptNMI() }
    case .initialize where !ipi.isINITDeassert: for t in targets { t.receiveINIT() }
    case .startup: for t in targets { t.receiveStartup(vector: ipi.vector) }
    case .smi, .extINT, .initialize, nil: break
    }
  }

  /// Lowest-priority arbitration: of the targets, one whose processor priority class (TPR, or the
  /// class of the interrupt in service if higher) is lowest; equals take turns (a rotation shared
  /// by the machine), so equally idle CPUs share the interrupts.
  func lowestPriorityTarget(_ targets: [VCPURunner]) -> VCPURunner? {
    guard targets.count > 1 else { return targets.first }
    let priorities = targets.map { $0.lapic.arbitrationPriority }
    guard let lowest = priorities.min() else { return nil }
    let candidates = targets.indices.filter { priorities[$0] == lowest }
    let turn = Int(lowestPriorityTurn.wrappingAdd(1, ordering: .relaxed).oldValue % UInt64(candidates.count))
    return targets[candidates[turn]]
  }

  /// Whether the 8259's INTR reaches `runner`'s vCPU: on the bootstrap processor through its
  /// local APIC (disabled, software-disabled, or LINT0 in ExtINT mode), and on any vCPU an
  /// unmasked ExtINT entry of I/O APIC pin 0 (where the 8259's output is wired) addresses.
  func picOutputReaches(_ runner: VCPURunner) -> Bool {
    if runner.index == 0 && runner.lapic.passesExternalInterrupts { return true }
    guard let message = ioapic?.picOutputMessage else { return false }
    return runner.lapic.isAddressed(by: message)
  }

  /// Wakes the vCPUs (but `caller`, which looks itself) that the 8259's pending interrupt
  /// reaches, so one sleeping in HLT acknowledges it: the 8259 has no line of its own to kick
  /// them. Only machines with several vCPUs need it; called with the machine lock held.
  func wakeVCPUsThePICReaches(besides caller: VCPURunner) {
    guard runners.count > 1, let pic, pic.hasPendingInterrupt else { return }
    for r in runners where r !== caller && picOutputReaches(r) { RunnerKick(r).wake() }
  }

  /// Raises the legacy NMI wire (a chipset NMI source: the front-panel button, a watchdog): an
  /// edge on every local APIC's LINT1, which the platform tables describe as NMI. With the
  /// engine's in-kernel interrupt controller the bootstrap processor gets the NMI directly.
  /// Any thread.
  public func raiseNMI() {
    guard pic != nil else {
      runners[0].requestNMI()
      return
    }
    for r in runners { r.lapic.signalLINT1() }
  }
}

/// The interrupt router's IPI half: delivers what one local APIC's ICR sends to the vCPUs it
/// addresses. Targets are found by the destination shorthand, or by the destination field in
/// physical mode (an APIC ID, 0xFF for all) or logical flat mode (a bit per APIC in the LDR).
/// Fixed and lowest-priority interrupts (the latter to the first target) go to the target APICs;
/// INIT and start-up IPIs to the targets' runners (`receiveINIT`, `receiveStartup`). NMI and SMI
/// are not modelled yet and are dropped.
extension Machine {
  /// Sends `ipi` to its targets. Called on the sender's runner thread, with no lock held.
  func route(_ ipi: InterProcessorInterrupt) {
    let targets: [VCPURunner]
    switch ipi.shorthand {
    case 1: targets = runners.filter { $0.lapic.id == ipi.source }
    case 2: targets = runners
    case 3: targets = runners.filter { $0.lapic.id != ipi.source }
    default:
      if ipi.logical {
        targets = runners.filter { $0.lapic.logicalID & ipi.destination != 0 }
      } else {
        targets = runners.filter { ipi.destination == 0xFF || $0.lapic.id == ipi.destination }
      }
    }
    switch ipi.deliveryMode {
    case 0: for t in targets { t.lapic.accept(vector: ipi.vector, level: ipi.icrLow & 0x8000 != 0) }
    case 1: targets.first?.lapic.accept(vector: ipi.vector)
    case 5 where !ipi.isINITDeassert: for t in targets { t.receiveINIT() }
    case 6: for t in targets { t.receiveStartup(vector: ipi.vector) }
    default: break
    }
  }
}

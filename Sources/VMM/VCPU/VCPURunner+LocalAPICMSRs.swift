/// The MSR exits a runner answers for its vCPU's local APIC (with the VMM's interrupt
/// controllers): IA32_APIC_BASE, the x2APIC registers 800H-8FFH and IA32_TSC_DEADLINE. Any other
/// trapped MSR, and every MSR when the engine's interrupt controller is in use, raises #GP.
extension VCPURunner {
  /// The MSRs whose RDMSR and WRMSR must reach the runner (`ExitControls.msrReadExits` and
  /// `msrWriteExits` of every vCPU of a machine with the VMM's local APICs).
  public static let localAPICMSRs: Set<UInt32> = Set(LocalAPIC.x2APICMSRs).union([
    APICBaseRegister.index, LocalAPIC.tscDeadlineMSR,
  ])

  static let generalProtection = ExitResponse.fault(vector: 13, errorCode: 0)

  /// The answer to RDMSR `index`.
  func readMSR(_ index: UInt32) -> ExitResponse {
    guard machine.pic != nil else { return Self.generalProtection }
    if index == LocalAPIC.tscDeadlineMSR { return .value(lapic.armedTSCDeadline) }
    return lapic.readMSR(index).map { .value($0) } ?? Self.generalProtection
  }

  /// The answer to WRMSR `index` = `value`.
  func writeMSR(_ index: UInt32, value: UInt64) throws(EngineError) -> ExitResponse {
    if index == Xen.hypercallPageMSR {
      let installed = machine.deviceLock.locked { machine.paravirt.installHypercallPage(at: value) }
      return installed ? .none : Self.generalProtection
    }
    guard machine.pic != nil else { return Self.generalProtection }
    if index == LocalAPIC.tscDeadlineMSR {
      lapic.armTSCDeadline(value, due: try guestTime(atTSC: value))
      return .none
    }
    let written = lapic.writeMSR(index, value: value)
    giveTaskPriority()  // the TPR (MSR 808H) is CR8; disabling the APIC clears it
    return written ? .none : Self.generalProtection
  }

  /// The guest time (`Machine.clock`) at which this vCPU's TSC reaches `tsc`: now plus the ticks
  /// still to go at the TSC's rate, rounded up (now when it has passed; saturating far ahead).
  /// Reading the vCPU's own TSC keeps the deadline right whatever the TSC's offset (IA32_TSC
  /// writes) or rate (KVM runs at the host's); it is read before the guest clock, so the time
  /// between the two reads can only make the timer late, never early.
  func guestTime(atTSC tsc: UInt64) throws(EngineError) -> UInt64 {
    let counter = try vcpu.timeStampCounter()
    let now = machine.clock.nanoseconds
    guard tsc > counter else { return now }
    let frequency = vcpu.timeStampCounterFrequency
    let ticks = tsc - counter
    var delay = ticks
    if frequency != 1_000_000_000 {
      let (high, low) = ticks.multipliedFullWidth(by: 1_000_000_000)
      guard high < frequency else { return .max }
      let (quotient, remainder) = frequency.dividingFullWidth((high, low))
      delay = remainder == 0 || quotient == .max ? quotient : quotient + 1
    }
    let (due, overflow) = now.addingReportingOverflow(delay)
    return overflow ? .max : due
  }
}

/// A machine reset (port 0xCF9, the i8042 reset line, port 0x92 bit 0, or a triple fault when so
/// configured): as on a PC, the devices return to their power-on state, RAM keeps its contents,
/// the firmware or the image is loaded again (`MachineConfiguration.reboot`), and every vCPU
/// restarts from its RESET state with the new boot state on the bootstrap processor.
extension Machine {
  /// Carries out a reset requested by `source`; returns a reason when the run must stop instead
  /// (no `reboot` configured: `.reset`, status 14; or the reload failed). Called by the bootstrap
  /// processor's runner between exits; it waits until every other runner has parked.
  func reset(_ source: MachineControl.ResetSource) -> StopReason? {
    guard let reboot = configuration.reboot else {
      control.completeReset()
      return .reset
    }
    if runners.count > 1 && !control.waitUntilParked(runners.count - 1) { return nil }  // a stop came first
    configuration.log?("reset requested by the \(source.rawValue): rebooting")
    devices.reset()
    paravirt.resetMemory()
    for r in runners { r.lapic.reset() }
    ioapic?.reset()
    paravirt.resetEvents()
    let boot: BootState
    do { boot = try reboot(memory) } catch {
      control.completeReset()
      return .internalError(InternalErrorReport(reason: "cannot reboot after a reset: \(error)"))
    }
    do throws(EngineError) {
      try installPlatformTables(intoFirmwareConfiguration: false)  // fw_cfg keeps its files
      for runner in runners { try runner.resetVCPU(boot: runner.index == 0 ? boot : nil) }
    } catch {
      control.completeReset()
      return runners[0].engineFailure(error)
    }
    control.completeReset()
    return nil
  }
}

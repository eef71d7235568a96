#if canImport(Glibc)
  import Glibc
#endif

/// Lightweight exits: port accesses answered on the vCPU's thread while the engine runs on.
extension VCPURunner: LightweightExitHandler {
  /// Answers a port access whose device says it needs nothing from the run loop afterwards
  /// (`PortIODevice.isLightweight`), under the device lock like any other access (with one vCPU
  /// no other thread reaches a device, `PortIOBus`'s locking model: no lock then).
  public func respond(to exit: VMExit) -> ExitResponse? {
    guard case .io(let access) = exit else { return nil }
    if let mutex = deviceMutex { pthread_mutex_lock(mutex) }
    let value = portBus._withUnsafeGuaranteedRef { $0.lightweightAccess(access) }
    if let mutex = deviceMutex { pthread_mutex_unlock(mutex) }
    guard let value else { return nil }
    statistics.recordLightweight(access.isWrite ? .ioOut : .ioIn)
    return access.isWrite ? ExitResponse.none : .value(UInt64(value))
  }
}

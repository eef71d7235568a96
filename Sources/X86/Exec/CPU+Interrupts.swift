/// Event delivery outside real mode and the embedder's interrupt/exit interface: external
/// interrupts, the interrupt shadow, faults the embedder answers with, and MSR writes.
extension CPU {
  /// True when an external interrupt can be taken now: RFLAGS.IF set, no STI/MOV SS interrupt
  /// shadow, and no instruction half-way through an embedder exchange (I/O, MMIO, CPUID ...).
  public var canAcceptExternalInterrupt: Bool {
    state.rflags & Flags.if != 0 && !interruptShadow && ioLog.isEmpty && injectedFault == nil
  }

  /// Delivers external interrupt `vector` (through the IVT in real mode, the IDT otherwise).
  /// Call only when `canAcceptExternalInterrupt`. Returns an event when delivery ends the run
  /// (`.tripleFault`, `.internalError`), else nil.
  @discardableResult
  public func deliverExternalInterrupt(vector: UInt8) -> CPUEvent? {
    if isRealMode {
      do throws(Fault) {
        try deliverReal(vector: vector, returnIP: state.rip)
        return nil
      } catch {
        guard case .exception(let v, let code) = error else { return .internalError("MMIO access in the IVT") }
        return raise(vector: v, errorCode: code, nextRIP: state.rip)
      }
    }
    return deliverProtected(vector: vector, errorCode: nil, kind: .external, returnRIP: state.rip)
  }

  /// True when an NMI can be taken now: NMIs are not blocked (from an NMI's delivery until the
  /// next IRET), no STI/MOV SS shadow, and no instruction half-way through an embedder exchange.
  /// RFLAGS.IF does not matter.
  public var canAcceptNMI: Bool {
    !nmiBlocked && !interruptShadow && ioLog.isEmpty && injectedFault == nil
  }

  /// Delivers an NMI: vector 2 as an external event (through the IVT in real mode, the IDT
  /// otherwise), then blocks NMIs until the next IRET. Call only when `canAcceptNMI`. Returns
  /// an event when delivery ends the run, else nil.
  @discardableResult
  public func deliverNMI() -> CPUEvent? {
    nmiBlocked = true
    return deliverExternalInterrupt(vector: 2)
  }

  /// Answers a trapped CPUID (`.cpuid` event); the instruction then retires with these values.
  public func completeCPUID(eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32) {
    ioLog.append(UInt64(eax) | UInt64(ebx) << 32)
    ioLog.append(UInt64(ecx) | UInt64(edx) << 32)
  }

  /// Answers the pending event with a fault: the instruction does not complete and the exception
  /// is raised at it (e.g. #GP(0) for an MSR the embedder rejects).
  public func completeWithFault(vector: UInt8, errorCode: UInt32?) {
    ioLog.removeAll(keepingCapacity: true)
    injectedFault = .exception(vector: vector, errorCode: errorCode)
  }

  /// Raises the fault given to `completeWithFault` at the current instruction (nil once delivered).
  func entryEvent() -> CPUEvent? {
    guard let fault = injectedFault else { return nil }
    injectedFault = nil
    guard case .exception(let vector, let code) = fault else { return nil }
    return raise(vector: vector, errorCode: code, nextRIP: state.rip)
  }

  /// Tells the CPU that guest-physical memory changed behind its back (device DMA, a loader):
  /// decoded instructions from those pages are dropped. Cheaper than `invalidateTLB()`.
  public func noteGuestMemoryWritten(physical: UInt64, length: UInt64) {
    guard length > 0 else { return }
    let last = (physical &+ (length - 1)) >> 12
    var page = physical >> 12
    while page <= last {
      decodeCache.noteWrite(page: page)
      if page == last { break }
      page += 1
    }
  }

  /// WRMSR from the embedder (e.g. the VMM's initial MSRs): false when the model rejects it.
  /// The guest's privilege level does not matter (a ring-3 start state gets its MSRs too).
  public func writeMSR(_ index: UInt32, _ value: UInt64) -> Bool {
    let cpl = state.cpl
    state.cpl = 0
    defer { state.cpl = cpl }
    do throws(Fault) {
      try system.wrmsr(index, value)
      return true
    } catch {
      return false
    }
  }

  /// Up to 15 instruction bytes at CS:RIP (fewer when a page is unmapped or not RAM), for reports.
  public func bytesAtRIP() -> [UInt8] {
    var bytes: [UInt8] = []
    let mode = state.codeMode
    for k in 0..<15 {
      let offset = state.rip &+ UInt64(k)
      let linear = mode == .bits64 ? offset : (state.segmentBase(1) &+ offset) & 0xFFFF_FFFF
      guard let physical = try? translateFetch(linear),
        let p = memory.hostPointer(physical: physical, length: 1, write: false)
      else { break }
      bytes.append(p.load(as: UInt8.self))
    }
    return bytes
  }

  /// Delivers an event through the IDT (protected and long mode); maps the outcome to the event
  /// that ends the run, if any.
  func deliverProtected(vector: UInt8, errorCode: UInt32?, kind: EventKind, returnRIP: UInt64) -> CPUEvent? {
    event(for: system.deliver(vector: vector, errorCode: errorCode, kind: kind, returnRIP: returnRIP))
  }

  func event(for outcome: DeliveryOutcome) -> CPUEvent? {
    switch outcome {
    case .delivered, .taskSwitched: return nil
    case .tripleFault: return .tripleFault
    case .unimplemented(let feature): return .internalError("not implemented: \(feature)")
    case .event(let e): return .internalError("device access during event delivery: \(e)")
    }
  }

  /// The text of an internal-error event for a `Fault.notImplemented` error code.
  func unimplementedDescription(_ code: UInt32?) -> String {
    guard let code, let feature = UnimplementedFeature(rawValue: code) else { return "not implemented" }
    return "not implemented: \(feature)"
  }
}

import Synchronization

/// Atomic read-modify-write for CPUs that share guest memory with other CPUs running on other host
/// threads (`CPU.atomicUpdates`): LOCK-prefixed instructions and XCHG with a memory operand.
///
/// The instruction runs as usual, except that its destination is read with an atomic load through
/// the host pointer and written back with a compare-and-exchange against the value read. If another
/// CPU changed the destination in between, the exchange fails, the registers and flags the
/// instruction had already set are put back, and the instruction runs again: every locked update
/// is linearizable against every other store, as on hardware (and CMPXCHG's failing write-back
/// cannot undo another CPU's store). The fallback for what has no single host pointer (MMIO, an
/// access crossing a page, armed data breakpoints) and for CMPXCHG8B/16B is the bus lock: one
/// process-wide spin lock held for the whole instruction, which serializes it against the other
/// CPUs' fallback instructions (not against their plain stores; documented in
/// docs/interpreter-execution.md).
extension CPU {
  /// Whether `ins` must be executed as a locked read-modify-write.
  @inline(__always)
  func needsLockedExecution(_ ins: DecodedInstruction) -> Bool {
    atomicUpdates && !lockedInstructionActive && ins.hasMemoryOperand
      && (ins.prefixes.contains(.lock) || ins.operation == .xchg)
  }

  /// Runs `ins` atomically (see above); retries until its compare-and-exchange succeeds.
  func executeLocked(_ ins: inout DecodedInstruction, nextRIP: UInt64) throws(Fault) {
    var saved = [UInt64](repeating: 0, count: 17)
    for i in 0..<16 { saved[i] = state.gpr(i) }
    saved[16] = state.rflags
    let wholeInstructionLock = ins.operation == .cmpxchg8b || ins.operation == .cmpxchg16b
    while true {
      lockedInstructionActive = true
      lockedUpdateFailed = false
      lockedUpdate = nil
      if wholeInstructionLock { acquireBusLock() }
      do {
        try execute(&ins, nextRIP: nextRIP)
      } catch {
        finishLockedInstruction()
        throw error
      }
      let failed = lockedUpdateFailed
      finishLockedInstruction()
      if !failed { return }
      for i in 0..<16 { state.setGPR(i, saved[i]) }
      state.rflags = saved[16]
    }
  }

  private func finishLockedInstruction() {
    lockedInstructionActive = false
    lockedUpdate = nil
    if holdsBusLock {
      holdsBusLock = false
      CPU.busLock.store(false, ordering: .releasing)
    }
  }

  /// The destination of a locked instruction, read atomically (its host pointer and value kept
  /// for `lockedWrite`), or through the bus-lock fallback.
  func lockedRead(seg: Int, offset: UInt64, size: Int) throws(Fault) -> UInt64 {
    try probeWrite(seg: seg, offset: offset, size: size)
    let linear = try linearAddress(seg: seg, offset: offset, size: size, write: true)
    if !holdsBusLock && dataBreakpoints == 0 && (linear & 0xFFF) &+ UInt64(size) <= 0x1000 {
      let physical = try translate(linear, write: true)
      if let p = hostPage(physical, write: true) {
        let v = memory.atomicLoad(at: p, size: size)
        lockedUpdate = LockedUpdate(pointer: p, old: v, size: size)
        return v
      }
    }
    acquireBusLock()
    return try read(seg: seg, offset: offset, size: size)
  }

  /// Writes a locked instruction's destination with a compare-and-exchange against the value
  /// `lockedRead` saw; false when the destination was read through the fallback (write it as usual).
  func lockedWrite(_ value: UInt64) -> Bool {
    guard let u = lockedUpdate else { return false }
    lockedUpdate = nil
    if !memory.compareExchange(at: u.pointer, size: u.size, expected: u.old, desired: value & ALU.mask(u.size)) {
      lockedUpdateFailed = true
    }
    return true
  }

  private func acquireBusLock() {
    guard !holdsBusLock else { return }
    while !CPU.busLock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {}
    holdsBusLock = true
  }

  /// The process-wide bus lock of the fallback path.
  static let busLock = Atomic<Bool>(false)
}

/// The destination of a locked instruction in flight: where it is and what it held.
struct LockedUpdate {
  var pointer: UnsafeMutableRawPointer
  var old: UInt64
  var size: Int
}

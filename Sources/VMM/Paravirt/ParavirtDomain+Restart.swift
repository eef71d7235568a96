/// Hypercall preemption: a validation that must not go on until other vCPUs have flushed their
/// TLBs stops the call, which the guest then makes again, as Xen's hypercall continuations do.
///
/// The case it exists for: frame F loses its last writable mapping (an `mmu_update` or
/// `update_va_mapping` that clears or write-protects the entry) without a TLB flush, and F then
/// becomes a page table (pinned, referenced by a new table entry, loaded as a root). A vCPU
/// that cached the writable translation could still write F after it was validated, so the
/// validation must come after every vCPU forgot that translation. On one vCPU a flush at the end
/// of the hypercall is enough: nothing runs guest code during it. With several, the others may
/// be running guest code at that moment, and waiting for them inside the hypercall would hold
/// the machine lock that their own exits need. So the call is preempted instead:
///
/// 1. `acquireTable` finds F in `unflushedWritable` (`preemptForFlushIfStale`), asks for a
///    flush of every vCPU and throws `HypercallFailure.preemption` before changing anything;
/// 2. the batch it was part of turns it into a continuation (the requests not done yet, and for
///    `mmu_update`/`mmuext_op` `MMU_UPDATE_PREEMPTED` in the count, `done` keeping what was
///    done); a `multicall` writes the continued arguments into the entry and continues itself
///    from that entry;
/// 3. the outermost call moves the vCPU's RIP back to the start of its stub in the hypercall
///    page (`mov $nr, %eax`, the trap) and writes the continuation into the argument registers
///    (`restartFromStub`);
/// 4. the flushes are carried out: other vCPUs are kicked and flush before they next enter the
///    guest, and the caller's runner waits, with the machine lock released, until every one
///    that was running guest code has left that run (`TranslationFlushBarrier`);
/// 5. the guest runs the stub again, and F, no longer in `unflushedWritable`, validates.
///
/// A call is restartable only when it was made from a stub of the form the hypercall page holds
/// (looked at when a validation preempts it, on machines with more than one vCPU): the kvm
/// engine's trap is an OUT, which KVM skips on the next entry when RIP is left at it, so the
/// restart goes back to the stub's `mov` instead. A call trapped by a bare instruction cannot be
/// made again this way: it returns -EAGAIN (a batch with `done` saying how far it got; a
/// multicall entry gets -EAGAIN as its result and the others run), after the flush, so the guest
/// retries on flushed TLBs. The window stays closed whatever instruction the guest traps with.
extension ParavirtDomain {
  /// The length of `mov $imm32, %eax` at the start of every stub.
  static let stubNumberLoadLength = 5

  /// Called before `frame` takes a page-table type: when a vCPU may still hold a writable
  /// translation of it, asks for every vCPU's flush, and preempts the hypercall on a machine of
  /// several vCPUs (on one, the flush at the end of the hypercall, after the validation, is
  /// enough).
  func preemptForFlushIfStale(_ frame: UInt64) throws(HypercallFailure) {
    guard memoryState.unflushedWritable.contains(frame) else { return }
    memoryState.flushAllRequested = true
    if memoryState.restartCandidate != nil { throw HypercallFailure.preemption }
  }

  /// Whether the outermost hypercall being served can be made again from its stub.
  var candidateRestartsFromStub: Bool {
    guard let (call, caller) = memoryState.restartCandidate else { return false }
    return callRestartsFromStub(call, caller)
  }

  /// Whether `call` can be preempted and made again: a machine with more than one vCPU (on one,
  /// nothing runs during a hypercall), a 64-bit caller, and the bytes before RIP are a stub for
  /// `call.number` with this engine's trap.
  func callRestartsFromStub(_ call: HypercallDispatcher.Call, _ caller: HypercallCaller) -> Bool {
    guard flushBarrier.tracking, call.longMode else { return false }
    let expected = Self.stub(number: UInt32(truncatingIfNeeded: call.number), trap: trapInstruction).prefix(
      Self.stubNumberLoadLength + trapInstruction.count)
    guard let r = try? caller.vcpu.registers(), let s = try? caller.vcpu.specialRegisters() else { return false }
    let start = r.rip &- UInt64(expected.count)
    let walk = GuestVirtualAccess(memory: memory, specialRegisters: s)
    var bytes: [UInt8] = []
    for offset in 0..<UInt64(expected.count) {
      guard let physical = try? walk.physical(start &+ offset, write: false),
        let byte = try? memory.read(physical, count: 1).first
      else { return false }
      bytes.append(byte)
    }
    return bytes == Array(expected)
  }

  /// Makes the caller run its stub again with `arguments` in the argument registers (RDI, RSI,
  /// RDX, R10, R8, R9): RIP goes back to the stub's `mov $nr, %eax`.
  func restartFromStub(_ caller: HypercallCaller, arguments: [UInt64]) throws(EngineError) {
    var r = try caller.vcpu.registers()
    let a = arguments + Array(repeating: 0, count: max(0, 6 - arguments.count))
    (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) = (a[0], a[1], a[2], a[3], a[4], a[5])
    r.rip &-= UInt64(Self.stubNumberLoadLength + trapInstruction.count)
    try caller.vcpu.setRegisters(r)
    memoryState.restarts &+= 1
  }

  /// Runs `body` as the outermost call `call` (a candidate for a restart: whether it can be made
  /// again is looked at only when a validation needs it), turning a preemption into a restart of
  /// the stub; `body`'s own result otherwise (-EAGAIN for a preempted call made outside a stub). Nested calls (a multicall's entries) leave their
  /// continuation to the multicall, which restarts.
  func runRestartable(
    _ call: HypercallDispatcher.Call, _ caller: HypercallCaller,
    _ body: () throws(EngineError) -> (HypercallResult, continuation: [UInt64]?)
  ) throws(EngineError) -> HypercallResult {
    guard !memoryState.inMulticall else {
      let (result, continuation) = try body()
      if let continuation { memoryState.preemptedEntry = continuation }
      return result
    }
    memoryState.restartCandidate = flushBarrier.tracking ? (call, caller) : nil
    defer { memoryState.restartCandidate = nil }
    let (result, continuation) = try body()
    guard let continuation, callRestartsFromStub(call, caller) else { return result }
    try restartFromStub(caller, arguments: continuation)
    return .registersSet
  }
}

/// `multicall`: a batch of hypercalls in one trap.
///
/// `multicall(list, count)`: `list` points to `count` entries of Xen's `multicall_entry`
/// (x86-64: `op`, `result`, `args[6]`, 8 bytes each). Each entry runs through the same dispatcher
/// as a trapped call, in order, and its result is written into the entry's `result`; a failing
/// entry does not stop the others (as Xen). An entry that may not run in a batch gets -EINVAL:
/// `multicall` itself (no nesting, as Xen) and `iret`, which never returns to its caller, are
/// refused before they run; an entry whose handler answers with anything but a value (a block,
/// a shutdown, registers set) has run, but what it asked for is dropped and its result is -EINVAL.
/// The call returns 0, or -EFAULT when an entry cannot be read or its result cannot be written
/// (the entries before it have run), -EINVAL for more than `Xen.Memory.maximumMulticallEntries`
/// entries, -ENOSYS for a 32-bit caller (its entries have another layout). An entry preempted
/// for remote TLB flushes (ParavirtDomain+Restart.swift) gets its continued arguments written
/// into its `args`, and the multicall is made again from that entry on (made outside a stub,
/// that entry gets -EAGAIN and the others run).
extension ParavirtDomain {
  /// Serves `multicall` on `dispatcher`, whose handlers run the entries.
  func registerMulticall(on dispatcher: HypercallDispatcher) {
    // The dispatcher owns this handler: it is held unowned, as `self` is.
    dispatcher.register(Xen.Hypercall.multicall.rawValue) {
      [unowned self, unowned dispatcher] call, caller throws(EngineError) in
      guard !self.memoryState.inMulticall else { return .value(Xen.Error.invalid.returnValue) }
      return try self.runRestartable(call, caller) { () throws(EngineError) in
        try self.multicall(call, caller, through: dispatcher)
      }
    }
  }

  /// Runs the batch `call` describes through `dispatcher` (see the extension's description); the
  /// continuation is the multicall's arguments from a preempted entry on.
  func multicall(_ call: HypercallDispatcher.Call, _ caller: HypercallCaller, through dispatcher: HypercallDispatcher)
    throws(EngineError) -> (HypercallResult, continuation: [UInt64]?)
  {
    let refused = Xen.Error.invalid.returnValue
    guard call.longMode else { return (.value(Xen.Error.notImplemented.returnValue), nil) }
    let (list, count) = (call.arguments[0], call.arguments[1] & 0xFFFF_FFFF)
    guard count <= Xen.Memory.maximumMulticallEntries else { return (.value(refused), nil) }
    memoryState.inMulticall = true
    defer { memoryState.inMulticall = false }
    for i in 0..<count {
      let entry = list &+ i &* Xen.Memory.multicallEntrySize
      let words: [UInt64]
      do {
        let bytes = try read(Int(Xen.Memory.multicallEntrySize), at: entry, for: caller)
        words = bytes.withUnsafeBytes { raw in
          (0..<8).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
        }
      } catch {
        return (.value(error.returnValue), nil)
      }
      let op = words[0]
      var result = refused
      if op != Xen.Hypercall.multicall.rawValue && op != Xen.Hypercall.iret.rawValue {
        let inner = HypercallDispatcher.Call(number: op, arguments: Array(words[2..<8]), longMode: true)
        memoryState.preemptedEntry = nil
        let answer = try dispatcher.dispatch(inner, caller: caller)
        if let continued = memoryState.preemptedEntry, candidateRestartsFromStub {
          memoryState.preemptedEntry = nil
          do {
            try write(continued.flatMap { Self.littleEndian($0, 8) }, at: entry &+ 16, for: caller)
          } catch {
            return (.value(error.returnValue), nil)
          }
          return (.value(0), [entry, count - i] + call.arguments[2...])
        }
        memoryState.preemptedEntry = nil
        if case .value(let v) = answer { result = v }
      }
      do {
        try write(result, at: entry &+ 8, for: caller)
      } catch {
        return (.value(error.returnValue), nil)
      }
    }
    return (.value(0), nil)
  }
}

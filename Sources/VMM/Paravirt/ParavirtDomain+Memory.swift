/// `memory_op`, `mmu_update`, `mmuext_op` and `update_va_mapping`: the guest's memory and its
/// page tables, validated (`PageFrameTypes.swift` holds the validation; docs/paravirtualization.md
/// the rules). Only the 64-bit layouts are served: a 32-bit caller gets -ENOSYS from the page-table
/// hypercalls (its tables would be 3-level PAE ones).
extension ParavirtDomain {
  /// Serves `memory_op`, `mmu_update`, `mmuext_op` and `update_va_mapping` on `dispatcher`.
  func registerMemoryHypercalls(on dispatcher: HypercallDispatcher) {
    registerFlushing(.memoryOp, on: dispatcher) { d, call, caller throws(HypercallFailure) in
      try d.memoryOp(call, caller)
    }
    registerFlushing(.mmuUpdate, on: dispatcher) { d, call, caller throws(HypercallFailure) in
      try d.mmuUpdate(call, caller)
    }
    registerFlushing(.mmuextOp, on: dispatcher) { d, call, caller throws(HypercallFailure) in
      try d.mmuextOp(call, caller)
    }
    registerFlushing(.updateVAMapping, on: dispatcher) { d, call, caller throws(HypercallFailure) in
      try d.updateVAMapping(call, caller)
    }
  }

  /// Serves `number` with `body`, then carries out the TLB flushes it asked for. A preempted
  /// call is made again from its stub (ParavirtDomain+Restart.swift).
  private func registerFlushing(
    _ number: Xen.Hypercall, on dispatcher: HypercallDispatcher,
    _ body: @escaping (ParavirtDomain, HypercallDispatcher.Call, HypercallCaller) throws(HypercallFailure) -> UInt64
  ) {
    dispatcher.register(number.rawValue) { [unowned self] call, caller throws(EngineError) in
      try self.runRestartable(call, caller) { () throws(EngineError) in
        var continuation: [UInt64]?
        let result = HypercallResult.from { () throws(HypercallFailure) in
          do throws(HypercallFailure) {
            return try body(self, call, caller)
          } catch {
            if error.isPreemption { continuation = error.continuation ?? call.arguments }
            throw error
          }
        }
        try self.performRequestedFlushes(for: caller)
        return (result, continuation)
      }
    }
  }

  // MARK: memory_op

  /// `memory_op(cmd, arg)`: the memory map, the reservation (RAM the guest owns; it never
  /// changes), the highest RAM frame, and placing the shared info page. Other commands -ENOSYS.
  func memoryOp(_ call: HypercallDispatcher.Call, _ caller: HypercallCaller) throws(HypercallFailure) -> UInt64 {
    let argument = call.arguments[1]
    switch call.arguments[0] & Xen.Memory.commandMask {
    case Xen.MemoryOp.maximumRAMPage.rawValue:
      // As Xen's `max_page`: one more than the highest RAM frame.
      return memory.regions.filter { $0.kind == .ram }.map { ($0.end + 0xFFF) >> 12 }.max() ?? 0
    case Xen.MemoryOp.currentReservation.rawValue, Xen.MemoryOp.maximumReservation.rawValue:
      try checkSelf(try read(UInt16.self, at: argument, for: caller))
      return ownedFrameCount
    case Xen.MemoryOp.memoryMap.rawValue:
      // struct xen_memory_map { uint nr_entries; handle buffer } (the handle 8 bytes in, or 4 for
      // 32-bit callers); entries of 20 bytes: address, length, type.
      let capacity = UInt64(try read(UInt32.self, at: argument, for: caller))
      let buffer =
        call.longMode
        ? try read(UInt64.self, at: argument &+ 8, for: caller)
        : UInt64(try read(UInt32.self, at: argument &+ 4, for: caller))
      let entries = memoryMap.prefix(Int(min(capacity, 1024)))
      var bytes: [UInt8] = []
      for e in entries {
        bytes += Self.littleEndian(e.address, 8) + Self.littleEndian(e.length, 8)
        bytes += Self.littleEndian(UInt64(e.kind.rawValue), 4)
      }
      try write(bytes, at: buffer, for: caller)
      try write(UInt32(entries.count), at: argument, for: caller)
      return 0
    case Xen.Memory.addToPhysmap:
      // struct xen_add_to_physmap { domid; size; uint space; ulong idx; pfn gpfn } (idx and gpfn
      // 4 bytes each for 32-bit callers).
      try checkSelf(try read(UInt16.self, at: argument, for: caller))
      let space = try read(UInt32.self, at: argument &+ 4, for: caller)
      let (index, frame) =
        call.longMode
        ? (
          try read(UInt64.self, at: argument &+ 8, for: caller), try read(UInt64.self, at: argument &+ 16, for: caller)
        )
        : (
          UInt64(try read(UInt32.self, at: argument &+ 8, for: caller)),
          UInt64(try read(UInt32.self, at: argument &+ 12, for: caller))
        )
      guard space == Xen.Memory.spaceSharedInfo else { throw HypercallFailure(.notImplemented) }
      guard index == 0 else { throw HypercallFailure(.invalid) }
      guard ownsFrame(frame) else { throw HypercallFailure(.permissionDenied) }
      try placeSharedInfo(frame: frame)
      return 0
    default:
      throw HypercallFailure(.notImplemented)
    }
  }

  /// The E820-style map of the guest's RAM as the machine's loaders report it (the platform
  /// tables' area reserved when the machine places them), with the VMM's reserved range — and in
  /// the deprivileged mode the shared info page below it — reserved.
  var memoryMap: [E820Entry] {
    var reserved: [Range<UInt64>] = []
    let area = PlatformTables.tableArea
    if machine.configuration.placesPlatformTablesInMemory,
      memory.region(containing: area.lowerBound, length: area.upperBound - area.lowerBound)?.kind == .ram
    {
      reserved.append(area)
    }
    if let monitor {
      reserved.append(ParavirtBoot.sharedInfoAddress(monitor.layout)..<monitor.layout.reservedRange.upperBound)
    } else if let reservedRange {
      reserved.append(reservedRange)
    }
    return E820Map.entries(for: memory, reserving: reserved)
  }

  /// The frames the guest owns: its RAM less the VMM's reserved range.
  var ownedFrameCount: UInt64 {
    var bytes = memory.regions.filter { $0.kind == .ram }.reduce(UInt64(0)) { $0 + $1.size }
    if let r = reservedRange {
      for region in memory.regions where region.kind == .ram {
        let low = max(r.lowerBound, region.guestAddress)
        let high = min(r.upperBound, region.end)
        if high > low { bytes -= high - low }
      }
    }
    return bytes >> 12
  }

  /// -ESRCH unless `domain` names the caller's own domain (`DOMID_SELF`): there is no other.
  func checkSelf(_ domain: UInt16) throws(HypercallFailure) {
    guard domain == Xen.Memory.domainSelf else { throw HypercallFailure(.noSuchProcess) }
  }

  /// The low `count` bytes of `value`, little-endian.
  static func littleEndian(_ value: UInt64, _ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
  }

  // MARK: mmu_update

  /// `mmu_update(requests, count, done, domain)`: each request {ptr, val} in order;
  /// MMU_NORMAL_PT_UPDATE (ptr's low 2 bits 0) writes entry `val` at machine address `ptr`
  /// (`updateEntry`), MMU_PT_UPDATE_PRESERVE_AD (2) does the same with the entry's current
  /// accessed and dirty bits ORed into `val`, MMU_MACHPHYS_UPDATE (1) accepts only the identity
  /// (`val` == ptr's frame; -EINVAL otherwise), type 3 -ENOSYS. The first failure stops the batch; `done` (when
  /// not null) receives how many requests succeeded (`batch`).
  func mmuUpdate(_ call: HypercallDispatcher.Call, _ caller: HypercallCaller) throws(HypercallFailure) -> UInt64 {
    guard call.longMode else { throw HypercallFailure(.notImplemented) }
    return try batch(call.arguments, size: Xen.Memory.mmuUpdateSize, caller: caller) {
      (address) throws(HypercallFailure) in
      let pointer = try read(UInt64.self, at: address, for: caller)
      let value = try read(UInt64.self, at: address &+ 8, for: caller)
      switch Xen.MMUUpdateCommand(rawValue: pointer & 3) {
      case .normalPageTableUpdate:
        try updateEntry(at: pointer & ~3, to: value)
      case .machphysUpdate:
        guard ownsFrame(pointer >> 12) else { throw HypercallFailure(.permissionDenied) }
        guard value == pointer >> 12 else { throw HypercallFailure(.invalid) }
      case nil where pointer & 3 == Xen.Memory.preserveAccessedDirty:
        // The accessed and dirty bits the entry holds now are ORed into the new value.
        let target = pointer & ~3
        guard target & 7 == 0 else { throw HypercallFailure(.invalid) }
        guard ownsFrame(target >> 12), let current = try? memory.read(UInt64.self, at: target) else {
          throw HypercallFailure(.permissionDenied)
        }
        try updateEntry(at: target, to: value | current & PageTableEntry.accessedDirty)
      case nil:
        throw HypercallFailure(.notImplemented)
      }
    }
  }

  /// The batch of `mmu_update` and `mmuext_op`, whose arguments `a` are (requests, count, done,
  /// domain): runs `request` on the address of each request of `size` bytes, stopping at the
  /// first failure, then writes how many succeeded to `done` (a `uint32_t *`, unless null) and
  /// fails with the request's error. A preempted request (ParavirtDomain+Restart.swift) ends the
  /// pass with a continuation: the requests from it on, the count marked
  /// `MMU_UPDATE_PREEMPTED`, and a pass so marked adds to what `done` holds, as Xen's do.
  /// -EINVAL for more than `Xen.Memory.maximumBatch` requests, -ESRCH for another domain.
  private func batch(
    _ a: [UInt64], size: UInt64, caller: HypercallCaller, _ request: (UInt64) throws(HypercallFailure) -> Void
  ) throws(HypercallFailure) -> UInt64 {
    let (list, done, domain) = (a[0], a[2], a[3])
    let continues = a[1] & Xen.Memory.updatePreempted != 0
    let count = a[1] & (Xen.Memory.updatePreempted - 1)
    guard count <= Xen.Memory.maximumBatch else { throw HypercallFailure(.invalid) }
    try checkSelf(UInt16(truncatingIfNeeded: domain))
    var succeeded: UInt32 = continues && done != 0 ? try read(UInt32.self, at: done, for: caller) : 0
    var failure: HypercallFailure?
    for i in 0..<count {
      do {
        try request(list &+ i &* size)
        succeeded &+= 1
      } catch {
        failure =
          error.isPreemption
          ? error.continued(with: [
            list &+ i &* size, (count - i) | Xen.Memory.updatePreempted, done, domain, a[4], a[5],
          ])
          : error
        break
      }
    }
    if done != 0 {
      do {
        try write(succeeded, at: done, for: caller)
      } catch {
        if failure == nil { failure = error }
      }
    }
    if let failure { throw failure }
    return 0
  }

  // MARK: mmuext_op

  /// `mmuext_op(ops, count, done, domain)`: each {cmd, arg1, arg2} in order, stopping at the
  /// first failure: pin L1-L4, unpin, new_baseptr, new_user_baseptr, the TLB flushes (an INVLPG
  /// flushes the whole TLB, which is allowed), flush_cache (nothing: guest memory is coherent).
  /// set_ldt and the rest: -ENOSYS.
  func mmuextOp(_ call: HypercallDispatcher.Call, _ caller: HypercallCaller) throws(HypercallFailure) -> UInt64 {
    guard call.longMode else { throw HypercallFailure(.notImplemented) }
    return try batch(call.arguments, size: Xen.Memory.mmuextOpSize, caller: caller) {
      (address) throws(HypercallFailure) in
      let command = try read(UInt32.self, at: address, for: caller)
      let argument1 = try read(UInt64.self, at: address &+ 8, for: caller)
      let argument2 = try read(UInt64.self, at: address &+ 16, for: caller)
      switch Xen.MMUExtOp(rawValue: command) {
      case .pinL1Table, .pinL2Table, .pinL3Table, .pinL4Table:
        try pin(argument1, level: Int(command) + 1)
      case .unpinTable:
        try unpin(argument1)
      case .newBasePointer:
        try setKernelBase(argument1, for: caller)
      case .newUserBasePointer:
        try setUserBase(argument1, vcpu: caller.index)
      case .tlbFlushLocal, .invalidatePageLocal:
        requestFlush(.local, caller: caller)
      case .tlbFlushMulti, .invalidatePageMulti:
        requestFlush(.vcpus(try vcpuMask(at: argument2, for: caller)), caller: caller)
      case .tlbFlushAll, .invalidatePageAll:
        requestFlush(.all, caller: caller)
      case .flushCacheAll:
        break
      case .setLDT, nil:
        throw HypercallFailure(.notImplemented)
      }
    }
  }

  /// The vCPUs of the bitmap at guest-virtual `address` (64-bit words, bit n of word n/64 for
  /// vCPU n; only the words the machine's vCPUs need are read). -EFAULT when it is not mapped.
  func vcpuMask(at address: UInt64, for caller: HypercallCaller) throws(HypercallFailure) -> Set<Int> {
    let count = machine.vcpus.count
    var set: Set<Int> = []
    for word in 0..<(count + 63) / 64 {
      let bits = try read(UInt64.self, at: address &+ UInt64(word * 8), for: caller)
      for bit in 0..<64 where bits >> UInt64(bit) & 1 != 0 && word * 64 + bit < count { set.insert(word * 64 + bit) }
    }
    return set
  }

  // MARK: update_va_mapping

  /// `update_va_mapping(va, pte, flags)`: writes `pte` into the L1 entry mapping `va` in the
  /// caller's current page tables (validated as in `mmu_update`; an L1 that is not yet a page
  /// table is validated for the update and released after it, as Xen does), then flushes as
  /// `flags` say: none, the TLB or the one page (the whole TLB here), on the caller (UVMF_LOCAL),
  /// every vCPU (UVMF_ALL) or the vCPUs of a bitmap whose address is the rest of `flags`. Flush
  /// type 3 is -EINVAL.
  func updateVAMapping(_ call: HypercallDispatcher.Call, _ caller: HypercallCaller) throws(HypercallFailure)
    -> UInt64
  {
    guard call.longMode else { throw HypercallFailure(.notImplemented) }
    let (linear, value, flags) = (call.arguments[0], call.arguments[1], call.arguments[2])
    let flushType = flags & Xen.Memory.flushTypeMask
    guard Xen.UpdateVAMappingFlush(rawValue: flushType) != nil else { throw HypercallFailure(.invalid) }
    let root: UInt64
    do {
      root = try caller.vcpu.specialRegisters().cr3
    } catch {
      throw HypercallFailure(.fault)
    }
    let entry = try leafEntryAddress(of: linear, root: root)
    let table = entry >> 12
    guard ownsFrame(table) else { throw HypercallFailure(.permissionDenied) }
    let record = memoryState.frames[table]
    if record.tableReferences > 0 {
      guard record.level == 1 else { throw HypercallFailure(.invalid) }
      try updateEntry(at: entry, to: value)
    } else {
      try acquireTable(table, level: 1)
      defer { releaseTable(table) }
      try updateEntry(at: entry, to: value)
    }
    guard flushType != Xen.UpdateVAMappingFlush.none.rawValue else { return 0 }
    switch flags & ~Xen.Memory.flushTypeMask {
    case 0:
      requestFlush(.local, caller: caller)
    case Xen.Memory.flushAll:
      requestFlush(.all, caller: caller)
    case let mask:
      requestFlush(.vcpus(try vcpuMask(at: mask, for: caller)), caller: caller)
    }
    return 0
  }
}

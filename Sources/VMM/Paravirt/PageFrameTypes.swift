/// Page-table validation, after Xen's page types (simplified; docs/paravirtualization.md, "Memory
/// and page tables"): the security boundary between a paravirtual guest and the frames it may
/// reach. A frame in use as a page table of level 1-4 has that type while something references
/// it (a pin, a base pointer, or a present entry of a validated table one level up); the entries
/// of a table are validated when it takes its type, and every later update through `mmu_update`
/// or `update_va_mapping` is validated again. A frame in use as a page table is never mapped
/// writable, and a frame mapped writable by a validated L1 table never becomes a page table.
extension Xen {
  /// Numbers and limits of the memory hypercalls that `XenABI.swift` does not name.
  enum Memory {
    /// The domain id meaning "the caller's domain" (`DOMID_SELF`).
    static let domainSelf: UInt16 = 0x7FF0
    /// `memory_op` commands are the low 6 bits of `cmd` (the rest is a continuation's start).
    static let commandMask: UInt64 = 0x3F
    /// `XENMEM_add_to_physmap`.
    static let addToPhysmap: UInt64 = 7
    /// `XENMAPSPACE_shared_info`, the only space of `add_to_physmap` served.
    static let spaceSharedInfo: UInt32 = 0
    /// The most requests one `mmu_update` or `mmuext_op` takes (Xen preempts long batches
    /// instead; here a longer batch is -EINVAL).
    static let maximumBatch: UInt64 = 4096
    /// The most entries one `multicall` takes (longer: -EINVAL).
    static let maximumMulticallEntries: UInt64 = 1024
    /// `struct mmu_update`: `ptr`, `val`.
    static let mmuUpdateSize: UInt64 = 16
    /// `struct mmuext_op` (x86-64): `cmd` (4 bytes and padding), `arg1`, `arg2`.
    static let mmuextOpSize: UInt64 = 24
    /// `struct multicall_entry` (x86-64): `op`, `result`, `args[6]`, 8 bytes each.
    static let multicallEntrySize: UInt64 = 64
    /// `update_va_mapping` flags: bits 1-0 the flush type (`Xen.UpdateVAMappingFlush`); the rest
    /// 0 (`UVMF_LOCAL`), 4 (`UVMF_ALL`) or a pointer to a vCPU bitmap (`UVMF_MULTI`).
    static let flushTypeMask: UInt64 = 3
    /// `UVMF_ALL`.
    static let flushAll: UInt64 = 4
    /// `MMU_PT_UPDATE_PRESERVE_AD`, the `mmu_update` type that keeps the entry's A and D bits.
    static let preserveAccessedDirty: UInt64 = 2
    /// `MMU_UPDATE_PREEMPTED`: set in the count of an `mmu_update` or `mmuext_op` that continues
    /// a preempted batch; its `done` then holds what the earlier passes did.
    static let updatePreempted: UInt64 = 0x8000_0000
  }
}

/// The bits of a 4-level page-table entry the validation looks at.
enum PageTableEntry {
  /// P.
  static let present: UInt64 = 1
  /// R/W.
  static let writable: UInt64 = 1 << 1
  /// PS in L2/L3 entries (superpages are not served), reserved in L4 entries.
  static let largePage: UInt64 = 1 << 7
  /// A and D, which the processor sets.
  static let accessedDirty: UInt64 = 0x60
  /// The frame address, bits 51-12.
  static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000
  /// Bits 62-52: free for software on the processor, kept by the hypervisor here (as Xen does).
  static let hypervisorBits: UInt64 = 0x7FF0_0000_0000_0000

  /// The bits an entry of a level-`level` table may not set: bits 62-52 everywhere, PS above L1.
  static func refusedBits(level: Int) -> UInt64 {
    level == 1 ? hypervisorBits : hypervisorBits | largePage
  }

  /// The frame number entry `e` points at.
  static func frame(_ e: UInt64) -> UInt64 { (e & addressMask) >> 12 }
}

/// What the ABI knows of the guest's frames, keyed by frame number (frames it knows nothing of
/// are ordinary memory and have no record).
struct PageFrameTable {
  /// The bookkeeping of one frame.
  struct Frame: Equatable {
    /// The page-table level (1-4) while `tableReferences` > 0; 0 otherwise.
    var level = 0
    /// References to the frame as a page table: a pin, base pointers, present entries of
    /// validated tables one level up.
    var tableReferences = 0
    /// Pinned with `mmuext_op(pin_lN_table)` (the pin holds one of `tableReferences`).
    var pinned = false
    /// Writable mappings of the frame in validated L1 tables.
    var writableMappings = 0
    /// The entries as validated (monitor slots of an L4 as 0): what releasing the table
    /// releases, whatever the guest may have stored behind the ABI's back.
    var entries: [UInt64] = []

    /// True when the frame is ordinary memory again (its record can go).
    var isOrdinary: Bool { level == 0 && tableReferences == 0 && !pinned && writableMappings == 0 }
  }

  /// Every frame with a record.
  private(set) var records: [UInt64: Frame] = [:]

  /// The record of `frame` (an empty one for ordinary memory); setting an ordinary record drops it.
  subscript(frame: UInt64) -> Frame {
    get { records[frame] ?? Frame() }
    set { records[frame] = newValue.isOrdinary ? nil : newValue }
  }
}

/// The memory part's state in `ParavirtDomain`: page types, the roots each vCPU holds, and TLB
/// flushes asked for.
struct ParavirtMemoryState {
  /// Page types, pins and mapping counts.
  var frames = PageFrameTable()
  /// The L4 each vCPU's `new_baseptr` holds a reference on, by vCPU index.
  var kernelRoots: [Int: UInt64] = [:]
  /// The L4 each vCPU's `new_user_baseptr` holds a reference on, by vCPU index.
  var userRoots: [Int: UInt64] = [:]
  /// vCPUs that must drop their cached translations before they next enter the guest.
  var pendingFlushes: Set<Int> = []
  /// The calling vCPU must flush when the current hypercall ends.
  var flushCallerRequested = false
  /// Every vCPU must flush when the current hypercall ends.
  var flushAllRequested = false
  /// Other vCPUs asked for by the current hypercall (`*_multi`).
  var flushOthersRequested: Set<Int> = []
  /// Frames whose last writable mapping went away since every vCPU last flushed: a vCPU may
  /// still hold a writable translation, so making one a page table flushes every vCPU first
  /// (`ParavirtDomain.preemptForFlush`).
  var unflushedWritable: Set<UInt64> = []
  /// The outermost hypercall being served and its caller, on a machine of several vCPUs: a
  /// validation that needs other vCPUs flushed first preempts it when it can be made again from
  /// its stub (ParavirtDomain+Restart.swift).
  var restartCandidate: (call: HypercallDispatcher.Call, caller: HypercallCaller)?
  /// A multicall entry's continuation, left by its preempted call for the multicall.
  var preemptedEntry: [UInt64]?
  /// Hypercalls preempted and made again from their stubs, for tests and reports.
  var restarts: UInt64 = 0
  /// The VMM wrote a page-table entry since the engine last dropped its copies of the tables
  /// (`EngineVM.shadowsGuestPageTables`; `ParavirtDomain.dropEngineShadowsIfTablesChanged`).
  var tablesWrittenSinceShadowDrop = false
  /// True while a `multicall` runs its entries (nested ones are refused).
  var inMulticall = false
}

/// What a TLB flush reaches.
enum TranslationFlushScope: Equatable {
  /// The calling vCPU.
  case local
  /// Every vCPU.
  case all
  /// The vCPUs of a bitmap (the caller included when its bit is set).
  case vcpus(Set<Int>)
}

extension ParavirtDomain {
  // MARK: Page types

  /// Forgets page types, pins, base-pointer references and flush requests (a machine reset: the
  /// guest's tables are gone with it).
  func resetMemory() {
    memoryState = ParavirtMemoryState()
  }

  /// The 512 entries of table `frame`, read from guest memory.
  func tableEntries(_ frame: UInt64) throws(HypercallFailure) -> [UInt64] {
    guard let bytes = try? memory.read(frame << 12, count: 4096) else { throw HypercallFailure(.fault) }
    return bytes.withUnsafeBytes { raw in
      (0..<512).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
    }
  }

  /// Takes a reference on `frame` as a level-`level` page table, validating its entries (and,
  /// recursively, the tables they reference) when it has no such type yet. -EPERM: not the
  /// guest's frame; -EINVAL: in use as another level or mapped writable, or an entry is invalid.
  /// Nothing changes when it fails.
  func acquireTable(_ frame: UInt64, level: Int) throws(HypercallFailure) {
    guard (1...4).contains(level) else { throw HypercallFailure(.invalid) }
    guard ownsFrame(frame) else { throw HypercallFailure(.permissionDenied) }
    var record = memoryState.frames[frame]
    if record.tableReferences > 0 {
      guard record.level == level else { throw HypercallFailure(.invalid) }
      record.tableReferences += 1
      memoryState.frames[frame] = record
      return
    }
    guard record.writableMappings == 0, !isWrittenByTheVMM(frame) else { throw HypercallFailure(.invalid) }
    try preemptForFlushIfStale(frame)
    if level == 4 { try prepareRootTable(frame: frame) }
    var entries = try tableEntries(frame)
    if level == 4 {
      for i in entries.indices where isMonitorRootSlot(i) { entries[i] = 0 }
    }
    // The type is taken before the entries are: an entry reaching this frame again (as a table
    // of another level or mapped writable) then conflicts with it.
    record.level = level
    record.tableReferences = 1
    memoryState.frames[frame] = record
    for (i, e) in entries.enumerated() {
      do {
        try acquireEntry(e, level: level)
      } catch {
        for taken in entries[..<i] { releaseEntry(taken, level: level, neverLive: true) }
        var undone = memoryState.frames[frame]
        undone.level = 0
        undone.tableReferences = 0
        memoryState.frames[frame] = undone
        throw error
      }
    }
    record = memoryState.frames[frame]
    record.entries = entries
    memoryState.frames[frame] = record
  }

  /// Drops a reference on table `frame`; the last one releases what its entries reference.
  /// `neverLive`: the reference was taken by a validation that is being undone, so no TLB can
  /// have used what the table's entries map.
  func releaseTable(_ frame: UInt64, neverLive: Bool = false) {
    var record = memoryState.frames[frame]
    guard record.tableReferences > 0 else { return }
    record.tableReferences -= 1
    guard record.tableReferences == 0 else {
      memoryState.frames[frame] = record
      return
    }
    let (entries, level) = (record.entries, record.level)
    record.level = 0
    record.entries = []
    memoryState.frames[frame] = record
    for e in entries { releaseEntry(e, level: level, neverLive: neverLive) }
  }

  /// Validates entry `e` of a level-`level` table and takes what it references: a table one
  /// level down, or (L1) a writable mapping of its frame. Non-present entries take nothing.
  func acquireEntry(_ e: UInt64, level: Int) throws(HypercallFailure) {
    guard e & PageTableEntry.present != 0 else { return }
    guard e & PageTableEntry.refusedBits(level: level) == 0 else { throw HypercallFailure(.invalid) }
    let target = PageTableEntry.frame(e)
    guard ownsFrame(target) else { throw HypercallFailure(.permissionDenied) }
    guard level == 1 else { return try acquireTable(target, level: level - 1) }
    guard e & PageTableEntry.writable != 0 else { return }
    var record = memoryState.frames[target]
    guard record.tableReferences == 0 else { throw HypercallFailure(.invalid) }
    record.writableMappings += 1
    memoryState.frames[target] = record
  }

  /// Releases what validated entry `e` of a level-`level` table took. `neverLive`: see
  /// `releaseTable` (a frame whose last writable mapping goes then needs no flush).
  func releaseEntry(_ e: UInt64, level: Int, neverLive: Bool = false) {
    guard e & PageTableEntry.present != 0 else { return }
    let target = PageTableEntry.frame(e)
    guard level == 1 else { return releaseTable(target, neverLive: neverLive) }
    guard e & PageTableEntry.writable != 0 else { return }
    var record = memoryState.frames[target]
    guard record.writableMappings > 0 else { return }
    record.writableMappings -= 1
    if record.writableMappings == 0 && !neverLive {
      memoryState.unflushedWritable.insert(target)
      // A bound on the set: past it, the next hypercall's end flushes every vCPU and clears it.
      if memoryState.unflushedWritable.count > 65536 { memoryState.flushAllRequested = true }
    }
    memoryState.frames[target] = record
  }

  /// `mmuext_op(pin_lN_table)`: validates `frame` as a level-`level` table and keeps it so until
  /// unpinned. -EINVAL when already pinned (as Xen).
  func pin(_ frame: UInt64, level: Int) throws(HypercallFailure) {
    guard ownsFrame(frame) else { throw HypercallFailure(.permissionDenied) }
    guard !memoryState.frames[frame].pinned else { throw HypercallFailure(.invalid) }
    try acquireTable(frame, level: level)
    memoryState.frames[frame].pinned = true
  }

  /// `mmuext_op(unpin_table)`. -EINVAL when `frame` is not pinned (as Xen).
  func unpin(_ frame: UInt64) throws(HypercallFailure) {
    guard ownsFrame(frame) else { throw HypercallFailure(.permissionDenied) }
    guard memoryState.frames[frame].pinned else { throw HypercallFailure(.invalid) }
    memoryState.frames[frame].pinned = false
    releaseTable(frame)
  }

  /// Writes `value` into the page-table entry at guest-physical `address` (8-byte aligned). In a
  /// frame in use as a table the new entry is validated first (a monitor slot of an L4 is
  /// refused), then written, then what the old one referenced is released. In any other frame of
  /// the guest it is an ordinary store, as Xen does for a page that is no page table.
  func updateEntry(at address: UInt64, to value: UInt64) throws(HypercallFailure) {
    guard address & 7 == 0 else { throw HypercallFailure(.invalid) }
    let frame = address >> 12
    guard ownsFrame(frame) else { throw HypercallFailure(.permissionDenied) }
    let index = Int((address & 0xFFF) >> 3)
    let level = memoryState.frames[frame].tableReferences > 0 ? memoryState.frames[frame].level : 0
    if level == 4 && isMonitorRootSlot(index) { throw HypercallFailure(.invalid) }
    if level > 0 { try acquireEntry(value, level: level) }
    do {
      try memory.write(value, at: address)
    } catch {
      if level > 0 { releaseEntry(value, level: level) }
      throw HypercallFailure(.fault)
    }
    guard level > 0 else { return }
    memoryState.tablesWrittenSinceShadowDrop = true
    var record = memoryState.frames[frame]
    guard record.entries.indices.contains(index) else { return }
    let old = record.entries[index]
    record.entries[index] = value
    memoryState.frames[frame] = record
    releaseEntry(old, level: level)
  }

  /// The guest-physical address of the L1 entry that maps `linear` in the tables rooted at
  /// `root` (a CR3 value). -EINVAL when `linear` is not canonical, lies in a monitor slot, or a
  /// level above L1 is not present or maps a superpage.
  func leafEntryAddress(of linear: UInt64, root: UInt64) throws(HypercallFailure) -> UInt64 {
    guard (Int64(bitPattern: linear << 16) >> 16) == Int64(bitPattern: linear) else {
      throw HypercallFailure(.invalid)
    }
    var table = root & PageTableEntry.addressMask
    for shift in [39, 30, 21] as [UInt64] {
      let index = (linear >> shift) & 0x1FF
      if shift == 39 && isMonitorRootSlot(Int(index)) { throw HypercallFailure(.invalid) }
      guard let e = try? memory.read(UInt64.self, at: table + index * 8),
        e & PageTableEntry.present != 0, e & PageTableEntry.largePage == 0
      else { throw HypercallFailure(.invalid) }
      table = e & PageTableEntry.addressMask
    }
    return table + ((linear >> 12) & 0x1FF) * 8
  }

  // MARK: Base pointers

  /// `mmuext_op(new_baseptr)`: `frame` becomes the calling vCPU's root table (validated as an
  /// L4, after `prepareRootTable`), its CR3 and `kernelBasePointer`; the previous root's
  /// reference is dropped. Setting the special registers makes the engine flush its TLB.
  func setKernelBase(_ frame: UInt64, for caller: HypercallCaller) throws(HypercallFailure) {
    guard ownsFrame(frame) else { throw HypercallFailure(.permissionDenied) }
    try prepareRootTable(frame: frame)
    try acquireTable(frame, level: 4)
    do {
      var s = try caller.vcpu.specialRegisters()
      s.cr3 = frame << 12
      try caller.vcpu.setSpecialRegisters(s)
      try dropEngineShadowsIfTablesChanged(caller.vcpu)
    } catch {
      releaseTable(frame)
      throw HypercallFailure(.fault)
    }
    replaceKernelRoot(with: frame, vcpu: caller.index)
  }

  /// Whether the VMM itself writes frame `frame` (the shared info page, a registered
  /// `vcpu_info`): such a frame never becomes a page table, or what the VMM stores there would
  /// be entries nobody validated.
  func isWrittenByTheVMM(_ frame: UInt64) -> Bool {
    if let s = events.sharedInfo, s >> 12 == frame { return true }
    return events.vcpus.contains { $0.vcpuInfoAddress.map { $0 >> 12 == frame } ?? false }
  }

  /// For the domain builder of the deprivileged mode: makes `frame` vCPU `index`'s kernel root
  /// with the reference `new_baseptr` would hold (validated as an L4, after `prepareRootTable`),
  /// without touching its registers (the boot state loads CR3). The guest's first tables then
  /// stay page tables for as long as they are its root, pinned or not, as under Xen.
  func adoptKernelRoot(_ frame: UInt64, vcpu index: Int) throws(HypercallFailure) {
    guard ownsFrame(frame) else { throw HypercallFailure(.permissionDenied) }
    try prepareRootTable(frame: frame)
    try acquireTable(frame, level: 4)
    replaceKernelRoot(with: frame, vcpu: index)
  }

  /// Records `frame` (already referenced) as vCPU `index`'s kernel root and releases the old one.
  private func replaceKernelRoot(with frame: UInt64, vcpu index: Int) {
    if let old = memoryState.kernelRoots[index] { releaseTable(old) }
    memoryState.kernelRoots[index] = frame
    if vcpus.indices.contains(index) { vcpus[index].kernelBasePointer = frame << 12 }
  }

  /// `mmuext_op(new_user_baseptr)`: the root table of guest user mode (0: none), validated as an
  /// L4 and kept in `userBasePointer` (the deprivileged mode loads it on the switch to user mode).
  func setUserBase(_ frame: UInt64, vcpu index: Int) throws(HypercallFailure) {
    if frame != 0 {
      guard ownsFrame(frame) else { throw HypercallFailure(.permissionDenied) }
      try prepareRootTable(frame: frame)
      try acquireTable(frame, level: 4)
    }
    if let old = memoryState.userRoots[index] { releaseTable(old) }
    memoryState.userRoots[index] = frame == 0 ? nil : frame
    if vcpus.indices.contains(index) { vcpus[index].userBasePointer = frame << 12 }
  }

  // MARK: TLB flushes

  /// Asks for a flush of the translations `scope` reaches when the current hypercall ends.
  func requestFlush(_ scope: TranslationFlushScope, caller: HypercallCaller) {
    switch scope {
    case .local:
      memoryState.flushCallerRequested = true
    case .all:
      memoryState.flushAllRequested = true
    case .vcpus(let set):
      for i in set where i < machine.vcpus.count {
        if i == caller.index {
          memoryState.flushCallerRequested = true
        } else {
          memoryState.flushOthersRequested.insert(i)
        }
      }
    }
  }

  /// Carries out the flushes the hypercall asked for: the caller's engine drops its cached
  /// translations now; other vCPUs get a request and a kick, and their runners flush before
  /// they next enter the guest (`takeTranslationFlush`). The caller's runner waits, after the
  /// hypercall, for those that were running guest code (`TranslationFlushBarrier`).
  func performRequestedFlushes(for caller: HypercallCaller) throws(EngineError) {
    var others = memoryState.flushOthersRequested
    var local = memoryState.flushCallerRequested
    if memoryState.flushAllRequested {
      local = true
      others = Set(machine.vcpus.indices).subtracting([caller.index])
      memoryState.unflushedWritable.removeAll()
    }
    memoryState.flushCallerRequested = false
    memoryState.flushAllRequested = false
    memoryState.flushOthersRequested = []
    for i in others.sorted() where machine.runners.indices.contains(i) {
      memoryState.pendingFlushes.insert(i)
      machine.runners[i].vcpu.kick()
      flushBarrier.await(i, by: caller.index)
    }
    if local {
      try caller.vcpu.invalidateTranslations()
      memoryState.tablesWrittenSinceShadowDrop = false
    }
  }

  /// Before the guest runs on another root table: where the engine keeps its own copies of the
  /// guest's page tables (`EngineVM.shadowsGuestPageTables`) and the VMM wrote a table entry
  /// since they were last dropped, `vcpu` drops them, as a CR3 load makes the TLB forget.
  /// Elsewhere setting CR3 is enough. On kvm this drops the copies of every vCPU, safely while
  /// siblings run (`KVMVirtualCPU.invalidateTranslations`).
  func dropEngineShadowsIfTablesChanged(_ vcpu: any VirtualCPU) throws(EngineError) {
    guard memoryState.tablesWrittenSinceShadowDrop, machine.engineVM.shadowsGuestPageTables else { return }
    try vcpu.invalidateTranslations()
    memoryState.tablesWrittenSinceShadowDrop = false
  }

  /// Whether vCPU `index` must drop its cached translations before it enters the guest again
  /// (clears the request). Called by its runner under the machine lock.
  func takeTranslationFlush(for index: Int) -> Bool {
    guard !memoryState.pendingFlushes.isEmpty else { return false }
    return memoryState.pendingFlushes.remove(index) != nil
  }
}

/// Page tables in the paravirtual mode: the VMM validates every table (Xen's page types), so a
/// frame in use as a page table is mapped read-only and changed only through `mmu_update`.
///
/// A task's address space (Kernel/AddressSpace.swift: root, PDPT, PD and page table, filled with
/// plain stores while they are ordinary pages) is registered when it is first loaded: its four
/// frames are remapped read-only and the root pinned as an L4 (one multicall). Retiring it (before
/// `AddressSpace.destroy` clears the tables with plain stores) unpins it and maps them writable
/// again. The user root (Kernel/Paravirt/Paravirt.swift) gets the running task's window in slot 1.
enum PageTables {
  private static let capacity = 20
  /// Registered address spaces: 4 frames each (root, PDPT, PD, page table), 0 = free.
  private static var registered: UnsafeMutablePointer<UInt64>! = nil
  /// Bits of frames in use as page tables, for frames below 8 MiB.
  private static var tableBits: UnsafeMutablePointer<UInt64>! = nil
  private static let trackedFrames = 2048
  /// The root loaded (`new_baseptr`).
  private(set) static var currentRoot: UInt64 = 0

  private static func setup() {
    guard registered == nil else { return }
    registered = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity * 4)
    registered.initialize(repeating: 0, count: capacity * 4)
    tableBits = UnsafeMutablePointer<UInt64>.allocate(capacity: trackedFrames / 64)
    tableBits.initialize(repeating: 0, count: trackedFrames / 64)
  }

  static func isTable(_ frame: UInt64) -> Bool {
    guard let tableBits, frame < UInt64(trackedFrames) else { return false }
    return tableBits[Int(frame / 64)] & (1 << (frame % 64)) != 0
  }

  private static func markTable(_ frame: UInt64, _ isTable: Bool) {
    guard frame < UInt64(trackedFrames) else { return }
    if isTable {
      tableBits[Int(frame / 64)] |= 1 << (frame % 64)
    } else {
      tableBits[Int(frame / 64)] &= ~(1 << (frame % 64))
    }
  }

  private static func table(_ physical: UInt64) -> UnsafeMutablePointer<UInt64> {
    UnsafeMutablePointer(bitPattern: UInt(physical))!
  }

  /// Stores one entry: `mmu_update` in a page-table frame, a plain store elsewhere.
  static func setEntry(_ entry: UnsafeMutablePointer<UInt64>, _ value: UInt64) {
    let physical = UInt64(UInt(bitPattern: entry))
    guard isTable(physical >> 12) else {
      entry.pointee = value
      return
    }
    if Hypercall.updateEntry(physical: physical, value: value) != 0 {
      Paravirt.fail("mmu_update refused a page-table entry")
    }
  }

  /// The most entries one `setEntries` batch takes.
  static let batchLimit = 64

  /// Stores up to `batchLimit` entries of page-table frames and flushes the local TLB in one
  /// multicall: one `mmu_update` carrying every request, then `mmuext_op(tlb_flush_local)`.
  static func setEntries(
    _ entries: UnsafePointer<UnsafeMutablePointer<UInt64>>, _ values: UnsafePointer<UInt64>, count: Int
  ) {
    let n = min(count, batchLimit)
    let requests = UnsafeMutablePointer<UInt64>.allocate(capacity: 2 * batchLimit)
    defer { requests.deallocate() }
    for i in 0..<n {
      requests[2 * i] = UInt64(UInt(bitPattern: entries[i]))
      requests[2 * i + 1] = values[i]
    }
    var operation: (UInt64, UInt64, UInt64) = (Hypercall.tlbFlushLocal, 0, 0)
    var batch = Multicall()
    let ok = withUnsafeMutablePointer(to: &operation) { operationPointer in
      batch.add(Hypercall.mmuUpdate, Hypercall.address(requests), UInt64(n), 0, Hypercall.domainSelf)
      batch.add(Hypercall.mmuextOp, Hypercall.address(operationPointer), 1, 0, Hypercall.domainSelf)
      return batch.run()
    }
    if !ok { Paravirt.fail("mmu_update refused a batch of page-table entries") }
  }

  /// Loads `root` (the kernel's own tables, or a task's): `new_baseptr`, and the user root's
  /// slot 1 pointed at the task's window (cleared for the kernel's tables).
  static func switchTo(_ root: UInt64) {
    setup()
    if root != Paravirt.kernelRoot { register(root) }
    let window = root == Paravirt.kernelRoot ? 0 : table(root)[1]
    let userSlot = Paravirt.userTables + 8
    var request: (UInt64, UInt64) = (userSlot, window)
    var operation: (UInt64, UInt64, UInt64) = (Hypercall.newBasePointer, root >> 12, 0)
    var batch = Multicall()
    withUnsafeMutablePointer(to: &request) { requestPointer in
      withUnsafeMutablePointer(to: &operation) { operationPointer in
        batch.add(Hypercall.mmuUpdate, Hypercall.address(requestPointer), 1, 0, Hypercall.domainSelf)
        batch.add(Hypercall.mmuextOp, Hypercall.address(operationPointer), 1, 0, Hypercall.domainSelf)
        if !batch.run() { Paravirt.fail("cannot switch page tables") }
      }
    }
    currentRoot = root
  }

  /// Makes a task's tables page tables the first time its root is loaded.
  private static func register(_ root: UInt64) {
    var free = -1
    for slot in 0..<capacity {
      if registered[slot * 4] == root { return }
      if free < 0 && registered[slot * 4] == 0 { free = slot }
    }
    guard free >= 0 else { Paravirt.fail("too many address spaces") }
    let pdpt = table(root)[1] & Paravirt.frameMask
    let pd = table(pdpt)[0] & Paravirt.frameMask
    let pageTable = table(pd)[0] & Paravirt.frameMask
    registered[free * 4] = root
    registered[free * 4 + 1] = pdpt
    registered[free * 4 + 2] = pd
    registered[free * 4 + 3] = pageTable
    var batch = Multicall()
    for index in 0..<4 {
      let frame = registered[free * 4 + index]
      batch.add(Hypercall.updateVAMapping, frame, frame | Paravirt.presentUserReadOnly, Hypercall.invalidateAfterUpdate)
    }
    if !batch.run() { Paravirt.fail("cannot make a task's page tables read-only") }
    if Hypercall.extendedOperation(Hypercall.pinL4Table, root >> 12) != 0 { Paravirt.fail("cannot pin a task's root") }
    for index in 0..<4 { markTable(registered[free * 4 + index] >> 12, true) }
  }

  /// Before `AddressSpace.destroy` (the root no longer loaded): unpins the tables and maps their
  /// frames writable again.
  static func retire(_ root: UInt64) {
    guard registered != nil else { return }
    for slot in 0..<capacity where registered[slot * 4] == root {
      if Hypercall.extendedOperation(Hypercall.unpinTable, root >> 12) != 0 { Paravirt.fail("cannot unpin a root") }
      var batch = Multicall()
      for index in 0..<4 {
        let frame = registered[slot * 4 + index]
        markTable(frame >> 12, false)
        batch.add(
          Hypercall.updateVAMapping, frame, frame | Paravirt.presentUserWritable, Hypercall.invalidateAfterUpdate)
        registered[slot * 4 + index] = 0
      }
      if !batch.run() { Paravirt.fail("cannot make freed page tables writable") }
      return
    }
  }
}

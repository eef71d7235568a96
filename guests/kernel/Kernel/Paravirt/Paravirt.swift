/// The paravirtual mode's state: set up by `pv_start` (from `pv_entry`, Arch/pv.S) before kmain,
/// from Xen's `start_info` (x86-64 layout) that the domain builder passes.
enum Paravirt {
  /// Whether the kernel was entered through `pv_entry` (the PV domain builder's entry note).
  private(set) static var active = false
  /// The builder's root page table (`start_info.pt_base`): the kernel's own address space.
  private(set) static var kernelRoot: UInt64 = 0
  /// Pages of pseudo-physical memory (`start_info.nr_pages`).
  private(set) static var pageCount: UInt64 = 0
  /// The frame pool: from the end of the builder's bootstrap area to the end of its mapping
  /// (capped at the native pool's end).
  private(set) static var framePoolStart: UInt64 = 0
  private(set) static var framePoolEnd: UInt64 = 0

  /// The shared info page's virtual address (a kernel page remapped onto it).
  static var sharedInfo: UInt64 { pv_symbol(0) }
  /// The user root page table (the user text only, plus the running task's window in slot 1),
  /// then its level-3, level-2 and level-1 tables.
  static var userTables: UInt64 { pv_symbol(1) }
  static var trapStubs: UnsafeMutablePointer<UInt64> { UnsafeMutablePointer(bitPattern: UInt(pv_symbol(2)))! }
  static var upcallEntry: UInt64 { pv_symbol(3) }
  static var syscallEntry: UInt64 { pv_symbol(4) }
  static var failsafeEntry: UInt64 { pv_symbol(5) }
  static var trapReturn: UInt64 { pv_symbol(6) }

  static let presentUserReadOnly: UInt64 = 0x5
  static let presentUserWritable: UInt64 = 0x7
  static let frameMask: UInt64 = 0x000F_FFFF_FFFF_F000

  /// vcpu_info[0] fields (Xen x86-64 shared info layout).
  static func sharedByte(_ offset: Int) -> UnsafeMutablePointer<UInt8> {
    UnsafeMutablePointer(bitPattern: UInt(sharedInfo + UInt64(offset)))!
  }
  static func sharedWord(_ offset: Int) -> UnsafeMutablePointer<UInt64> {
    UnsafeMutablePointer(bitPattern: UInt(sharedInfo + UInt64(offset)))!
  }

  /// Boot work before kmain: the shared info mapping, the per-CPU page and GS base, the frame
  /// pool, the user root table. Returns the command line's address.
  static func start(startInfo: UInt64, bootstrapEnd: UInt64) -> UInt64 {
    active = true
    let info = UnsafeMutablePointer<UInt64>(bitPattern: UInt(startInfo))!
    pageCount = info[4]
    let sharedInfoMachine = info[5]
    kernelRoot = info[11]  // pt_base (virtual == physical)
    // The shared info page, mapped over a page of the image (update_va_mapping, then INVLPG).
    if Hypercall.call(
      Hypercall.updateVAMapping, sharedInfo, sharedInfoMachine | presentUserWritable, Hypercall.invalidateAfterUpdate)
      != 0
    {
      fail("cannot map the shared info page")
    }
    pv_events_disable()
    // The boot CPU's per-CPU page points to itself; GS base (kernel mode) is its address.
    let perCPU = KernelLayout.perCPUPages
    UnsafeMutablePointer<UInt64>(bitPattern: UInt(perCPU))!.pointee = perCPU
    Hypercall.call(Hypercall.setSegmentBase, 2, perCPU)  // SEGBASE_GS_KERNEL
    Hypercall.call(Hypercall.setSegmentBase, 1, 0)  // SEGBASE_GS_USER
    framePoolStart = (bootstrapEnd + 0xFFF) & ~0xFFF
    framePoolEnd = min(mappedEnd(from: framePoolStart), min(pageCount << 12, 0x80_0000))
    buildUserRoot()
    return startInfo + 128  // start_info.cmd_line
  }

  /// The first page at or above `start` the builder's tables leave unmapped (they map physical 0
  /// up, contiguously, at virtual == physical).
  private static func mappedEnd(from start: UInt64) -> UInt64 {
    var page = start
    while page < 0x4000_0000 {
      var table = kernelRoot
      var present = true
      var shift: UInt64 = 39
      while true {
        let entry = UnsafeMutablePointer<UInt64>(bitPattern: UInt(table))![Int((page >> shift) & 0x1FF)]
        if entry & 1 == 0 {
          present = false
          break
        }
        table = entry & frameMask
        if shift == 12 { break }
        shift -= 9
      }
      if !present { break }
      page += 0x1000
    }
    return page
  }

  /// The user root: slot 0 leads to the user-text pages (read-only, user), slot 1 (the task's
  /// window) is set on every address-space switch. Its four pages are made read-only, then the
  /// root is pinned and becomes the vCPU's user base pointer (Xen x86-64's separate user tables).
  private static func buildUserRoot() {
    let root = userTables
    let level3 = root + 0x1000
    let level2 = root + 0x2000
    let level1 = root + 0x3000
    let table = { (physical: UInt64) in UnsafeMutablePointer<UInt64>(bitPattern: UInt(physical))! }
    // The first 2 MiB as the native kernel half shows them to ring 3: page 0 absent, the
    // user text user-accessible (read-only), every other page present but supervisor-only
    // (read-only here), so a ring-3 access faults with the same error code as natively.
    for index in 1..<512 {
      let page = UInt64(index) << 12
      let user = page >= KernelLayout.userTextStart && page < KernelLayout.userTextEnd
      table(level1)[index] = page | (user ? presentUserReadOnly : 0x1)
    }
    table(level2)[0] = level1 | presentUserWritable
    table(level3)[0] = level2 | presentUserWritable
    table(root)[0] = level3 | presentUserWritable
    var batch = Multicall()
    for index in 0..<4 {
      let frame = root + UInt64(index) * 0x1000
      batch.add(Hypercall.updateVAMapping, frame, frame | presentUserReadOnly, Hypercall.invalidateAfterUpdate)
    }
    if !batch.run() { fail("cannot make the user page tables read-only") }
    if Hypercall.extendedOperation(Hypercall.pinL4Table, root >> 12) != 0 { fail("cannot pin the user root") }
    if Hypercall.extendedOperation(Hypercall.newUserBasePointer, root >> 12) != 0 {
      fail("cannot load the user root")
    }
  }

  /// Reports a failure of the PV boot and shuts down as crashed.
  static func fail(_ message: StaticString) -> Never {
    Console.write("PANIC paravirtual: ")
    Console.write(message)
    Console.newline()
    ParavirtPlatform.powerOff(status: 3)
  }
}

@_cdecl("pv_start")
func pvStart(_ startInfo: UInt64, _ bootstrapEnd: UInt64) -> UInt64 {
  Paravirt.start(startInfo: startInfo, bootstrapEnd: bootstrapEnd)
}

@_cdecl("pv_failsafe")
func pvFailsafe() {
  Paravirt.fail("failsafe callback (a bad frame on the way back to the guest)")
}

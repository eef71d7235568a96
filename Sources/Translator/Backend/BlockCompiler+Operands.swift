import X86

/// Guest registers and memory operands: cache registers, effective and linear addresses, and the
/// inline TLB check that turns a linear address into a host pointer or a side exit.
extension BlockCompiler {
  /// Guest register `r`: its cache register, or its slot in the state page.
  func gpr(_ r: UInt8) -> HostOperand {
    if let host = cached[Int(r)] { return .register(host) }
    return .memory(HostMemory(.rbx, Int32(CPUStateLayout.gprs + 8 * Int(r))))
  }

  static func signed(_ value: UInt64, size: Int) -> Int64 {
    switch size {
    case 1: return Int64(Int8(truncatingIfNeeded: value))
    case 2: return Int64(Int16(truncatingIfNeeded: value))
    case 4: return Int64(Int32(truncatingIfNeeded: value))
    default: return Int64(bitPattern: value)
    }
  }

  static func fitsInt32(_ v: Int64) -> Bool { Int64(Int32(truncatingIfNeeded: v)) == v }

  /// The guest register `r` as a host register: its cache register, or `scratch` loaded from the
  /// state page.
  mutating func gprRegister(_ r: UInt8, scratch: HostRegister) -> HostRegister {
    if let host = cached[Int(r)] { return host }
    a.mov(scratch, gpr(r))
    return scratch
  }

  /// The effective address of `g`'s memory operand into `destination` (no segment base), at
  /// `size` bytes (4: truncated and zero-extended). Clobbers RDI, and RSI when no cache register
  /// holds the base; not the flags.
  mutating func effectiveAddress(_ g: GuestInstruction, into destination: HostRegister = .rsi, size: Int? = nil) {
    let ins = g.instruction
    let disp = ins.displacement
    let width = min(size ?? 8, ins.addressSize == 4 ? 4 : 8)
    if ins.base == DecodedInstruction.ripBase {
      var ea = g.nextRIP &+ UInt64(bitPattern: disp)
      if width == 4 { ea &= 0xFFFF_FFFF }
      a.load(destination, constant: ea)
      return
    }
    let hasBase = ins.base != DecodedInstruction.noRegister
    let hasIndex = ins.index != DecodedInstruction.noRegister
    let base: HostRegister
    if hasBase {
      base = gprRegister(ins.base, scratch: .rsi)
    } else {
      a.load(.rsi, constant: 0)
      base = .rsi
    }
    var memory = HostMemory(base, 0)
    if hasIndex {
      memory.index = gprRegister(ins.index, scratch: .rdi)
      memory.scale = ins.scale
    }
    if Self.fitsInt32(disp) {
      memory.displacement = Int32(disp)
    } else {
      // Only a 64-bit absolute address (no base, no index) has a displacement this wide.
      a.load(destination, constant: UInt64(bitPattern: disp))
      if width == 4 { a.mov(destination, .register(destination), size: 4) }
      return
    }
    a.lea(destination, memory, size: width)
  }

  /// The linear address of `g`'s memory operand into RSI (FS/GS bases added).
  mutating func linearAddress(_ g: GuestInstruction, size: Int, write: Bool, exit: X64Assembler.Label) {
    effectiveAddress(g)
    let segment = Int(g.instruction.segment)
    let fields = CPUStateLayout.segments + segment * CPUStateLayout.segmentStride
    if mode == .long64 {
      // 64-bit code: only FS and GS have a base; no limits, no type checks.
      if segment == 4 || segment == 5 { a.alu(.add, .rsi, .memory(HostMemory(.rbx, Int32(fields + 8)))) }
      return
    }
    // 32-bit code: SS and DS are flat (the translated code mode says so). Through ES, CS, FS or
    // GS the segment must allow the access with no type check (`SegmentAccess`: present,
    // expand-up, readable or writable as needed) and have a 4 GiB limit, checked here at run
    // time, and the access must end at or below offset 4 GiB - 1 (the limit; an access that goes
    // past it faults even where base + offset wraps into one page); then the linear address is
    // the base plus the offset, wrapping at 4 GiB. Otherwise the interpreter takes the access (and
    // raises #GP or #SS where it must).
    guard segment != 2 && segment != 3 else { return }
    let needed = write ? SegmentAccess.write : SegmentAccess.read
    a.test(.memory(HostMemory(.rbx, Int32(CPUStateLayout.segmentAccess + segment))), immediate: Int64(needed), size: 1)
    a.jcc(HostCondition.equal, exit)
    a.alu(.cmp, .memory(HostMemory(.rbx, Int32(fields + 16))), immediate: -1, size: 4)
    a.jcc(HostCondition.notEqual, exit)
    if size > 1 {
      a.load(.rax, constant: 0x1_0000_0000 - UInt64(size))
      a.alu(.cmp, .rsi, .register(.rax))
      a.jcc(HostCondition.above, exit)
    }
    a.alu(.add, .rsi, .memory(HostMemory(.rbx, Int32(fields + 8))), size: 4)
  }

  /// RSI = linear address; on success RAX = host pointer to `size` bytes there, for reading (a miss
  /// walks, `emitTLBMisses`) or for writing (a write entry, the page in the write host-page cache
  /// and holding no code). Else `exit`, the side exit.
  mutating func hostPointer(size: Int, write: Bool, exit: X64Assembler.Label) {
    guard mode.paged else {
      unpagedHostPointer(size: size, write: write, exit: exit)
      return
    }
    let kind = write ? 1 : 0
    // Slot: (lin >> 12) & (sets - 1) | kind << 11 | user << 10 (`SoftTLB.slot`); the entry's
    // offset, slot * 32, in one shift and one mask of the address.
    precondition(tables.entryStride == 32 && SoftTLB.sets == 1024, "the TLB layout generated code assumes")
    a.mov(.rax, .register(.rsi), size: 4)
    a.shift(.shr, .register(.rax), count: 12 - 5, size: 4)
    a.alu(.and, .register(.rax), immediate: Int64((SoftTLB.sets - 1) << 5), size: 4)
    // The TLB follows the state page (`CPUStateLayout.pagingTLB`): addressed from RBX.
    let tableBase = CPUStateLayout.pagingTLB + (kind << 11 | (user ? SoftTLB.sets : 0)) * tables.entryStride
    let entry = { (field: Int) in HostMemory(.rbx, Int32(tableBase + field), index: .rax, scale: 1) }
    // Tag: the linear page of the access's last byte, compared with the slot's RAM tag (the tag
    // of a RAM page, never a linear page for MMIO). It equals the tag of its first byte's slot only
    // when the access stays in one page: neighbouring pages never share a set (`SoftTLB.set`), so
    // one that crosses misses, as it must. The host pointer is then the entry's addend + RSI.
    if size > 1 {
      a.lea(.rcx, HostMemory(.rsi, Int32(size - 1)))
    } else {
      a.mov(.rcx, .register(.rsi))
    }
    a.alu(.and, .register(.rcx), immediate: -4096)
    a.alu(.cmp, .rcx, .memory(entry(tables.ramTagOffset)))
    // A read that misses walks the page tables from generated code and goes on (out of line,
    // `emitTLBMisses`); only what the walk cannot settle side-exits. A store that misses
    // side-exits: the interpreter's stores (read-modify-writes among them) fill the TLB's read and
    // write entries in their own ways, which the TLB's later contents, and so whether a stale
    // entry is used after a page-table write, must match.
    let found = a.newLabel()
    if !write {
      let miss = a.newLabel()
      a.jcc(HostCondition.notEqual, miss)
      pendingTLBMisses.append((miss, found, size, exit))
    } else {
      a.jcc(HostCondition.notEqual, exit)
      // A write entry exists only for a dirty, writable RAM page. The page must also be in the
      // write side of the host-page cache, exactly as on the interpreter's fast path: when it is
      // not, the interpreter's store takes its general path, which for a read-modify-write also
      // translates the address for reading and may fault there (a present write entry left
      // stale by a page-table write does not spare it that), so the guest could tell. And the
      // page must hold no code (the VM-wide code-page byte of its physical page), or the store
      // takes the slow path, which invalidates that code.
      a.mov(.rdx, .memory(entry(tables.physicalPageOffset)))
      a.shift(.shr, .register(.rdx), count: 12)
      a.mov(.rcx, .register(.rdx), size: 4)
      a.alu(.and, .register(.rcx), immediate: Int64(tables.hostPageSlots - 1), size: 4)
      a.load(.rdi, constant: tables.hostWritePage)
      a.alu(.cmp, .rdx, .memory(HostMemory(.rdi, 0, index: .rcx, scale: 8)))
      a.jcc(HostCondition.notEqual, exit)
      a.alu(.and, .register(.rdx), immediate: Int64(tables.codePageSlots - 1), size: 4)
      a.load(.rdi, constant: tables.pageHasCode)
      a.alu(.cmp, .memory(HostMemory(.rdi, 0, index: .rdx, scale: 1)), immediate: 0, size: 1)
      a.jcc(HostCondition.notEqual, exit)
    }
    a.mov(.rax, .memory(entry(tables.addendOffset)))
    a.alu(.add, .register(.rax), .rsi)
    a.bind(found)
  }

  /// Calls the helper at `function` with the translator as its first argument (RDI; the others
  /// already in RSI and RDX), `saving` the caller-saved registers that still hold something across
  /// the call (pushed in an even number, so RSP stays 16-byte aligned). The result is in RAX.
  mutating func callHelper(_ function: UInt64, saving: [HostRegister]) {
    let pushed = saving.count % 2 == 0 ? saving : saving + [saving.last!]
    for r in pushed { a.push(r) }
    a.load(.rdi, constant: callout.context)
    a.load(.rax, constant: function)
    a.call(.register(.rax))
    for r in pushed.reversed() { a.pop(r) }
  }

  /// The out-of-line calls of `hostPointer`'s read misses: the registers a C call may clobber that
  /// still hold something (R8, the budget in R9, the flags in R10, the cache register R11, the
  /// address in RSI) saved around `callout.tlbMiss`, which walks and returns the host address (on
  /// to the access) or 0 (the side exit).
  mutating func emitTLBMisses() {
    let misses = pendingTLBMisses
    pendingTLBMisses = []
    for m in misses {
      a.bind(m.miss)
      a.load(.rdx, constant: UInt64(m.size))
      callHelper(callout.tlbMiss, saving: [.r8, .r9, .r10, .r11, .rsi])
      a.test(.register(.rax), .rax)
      a.jcc(HostCondition.equal, m.exit)
      a.jmp(m.found)
    }
  }

  /// `hostPointer` with paging off: the linear address in RSI is the physical one (the translated
  /// code mode guarantees the A20 gate open), looked up in the read or write host-page cache, a
  /// store also checked against the code-page byte. Keeps RSI.
  mutating func unpagedHostPointer(size: Int, write: Bool, exit: X64Assembler.Label) {
    a.mov(.rdx, .register(.rsi))
    a.shift(.shr, .register(.rdx), count: 12)
    a.mov(.rcx, .register(.rsi), size: 4)
    a.alu(.and, .register(.rcx), immediate: 0xFFF, size: 4)
    if size > 1 {
      a.alu(.cmp, .register(.rcx), immediate: Int64(0x1000 - size), size: 4)
      a.jcc(HostCondition.above, exit)
    }
    a.mov(.rax, .register(.rdx), size: 4)
    a.alu(.and, .register(.rax), immediate: Int64(tables.hostPageSlots - 1), size: 4)
    a.load(.rdi, constant: write ? tables.hostWritePage : tables.hostReadPage)
    a.alu(.cmp, .rdx, .memory(HostMemory(.rdi, 0, index: .rax, scale: 8)))
    a.jcc(HostCondition.notEqual, exit)
    a.load(.rdi, constant: write ? tables.hostWritePointer : tables.hostReadPointer)
    a.mov(.rax, .memory(HostMemory(.rdi, 0, index: .rax, scale: 8)))
    a.test(.register(.rax), .rax)
    a.jcc(HostCondition.equal, exit)
    if write {
      a.alu(.and, .register(.rdx), immediate: Int64(tables.codePageSlots - 1), size: 4)
      a.load(.rdi, constant: tables.pageHasCode)
      a.alu(.cmp, .memory(HostMemory(.rdi, 0, index: .rdx, scale: 1)), immediate: 0, size: 1)
      a.jcc(HostCondition.notEqual, exit)
    }
    a.alu(.add, .register(.rax), .rcx)
  }

  /// RAX = host pointer for `g`'s memory operand of `size` bytes (flags stored first).
  mutating func memoryOperand(_ g: GuestInstruction, size: Int, write: Bool, k: Int) {
    if !write, let member = readGroupMember[k] {
      groupedRead(g, group: member.group, offset: member.offset, k: k)
      return
    }
    clobberFlags()
    let exit = sideExit(k)
    linearAddress(g, size: size, write: write, exit: exit)
    hostPointer(size: size, write: write, exit: exit)
  }

  /// Writes host `r` to a guest register at `size`: 4 zero-extends to 64 bits (`zeroExtended`: a
  /// 32-bit host operation already did), 1 and 2 merge.
  mutating func storeGPR(_ reg: UInt8, _ r: HostRegister, size: Int, zeroExtended: Bool = false) {
    if size == 4, let host = cached[Int(reg)] {
      a.mov(.register(host), r, size: 4)  // a 32-bit move zero-extends
    } else if size == 4 {
      if !zeroExtended { a.mov(.register(r), r, size: 4) }
      a.mov(gpr(reg), r, size: 8)
    } else {
      a.mov(gpr(reg), r, size: size)
    }
  }
}

/// Linear/physical memory access: segmentation, the MMU hook, the software TLB, MMIO replay.
extension CPU {
  /// The single linear-to-physical translation point for data: identity (masked to the address
  /// bus) without paging or in the flat-user oracle mode, else the MMU (TLB hit or page walk;
  /// #PF with CR2 set).
  @inline(__always) func translate(_ linear: UInt64, write: Bool) throws(Fault) -> UInt64 {
    if !pagingActive { return linear & addressMask }
    return try system.mmu.translate(linear, kind: write ? .write : .read, user: state.cpl == 3, state: state).physical
  }

  /// True when linear addresses go through the page tables (CR0.PG, outside the flat-user oracle).
  @inline(__always) var pagingActive: Bool {
    stateRaw.load(fromByteOffset: CPUStateLayout.cr0, as: UInt64.self) & 0x8000_0000 != 0 && !flatUser
  }

  /// The physical address of `linear` when no page walk is needed (paging off, or a TLB hit for
  /// this access kind and privilege); nil otherwise. The fast paths' only translation step.
  @inline(__always) func quickTranslate(_ linear: UInt64, kind: MemoryAccessKind) -> UInt64? {
    if !pagingActive { return linear & addressMask }
    let user = stateRaw.load(fromByteOffset: CPUStateLayout.cpl, as: UInt64.self) == 3
    let entry = pagingTLB + SoftTLB.slot(linear, kind: kind, user: user)
    guard entry.pointee.tag == linear & ~0xFFF else { return nil }
    return entry.pointee.physicalPage | (linear & 0xFFF)
  }

  /// Translation for instruction fetch (NX and SMEP apply).
  @inline(__always) func translateFetch(_ linear: UInt64) throws(Fault) -> UInt64 {
    if !pagingActive { return linear & addressMask }
    return try system.mmu.translate(linear, kind: .execute, user: state.cpl == 3, state: state).physical
  }

  @inline(__always) func hostPage(_ phys: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
    let page = phys >> 12
    let i = Int(page & UInt64(CPU.hostPageSlots - 1))
    if write {
      if hostWritePage[i] == page, let p = hostWritePointer[i], !sharedCodeStamp(page) {
        return p + Int(phys & 0xFFF)
      }
      guard let p = memory.hostPointer(physical: page << 12, length: 4096, write: true) else { return nil }
      decodeCache.noteWrite(page: page)
      // Armed data breakpoints keep the host-page cache empty: the fast paths then miss and every
      // access is checked on the slow path.
      if dataBreakpoints == 0 {
        hostWritePage[i] = page
        hostWritePointer[i] = p
      }
      return p + Int(phys & 0xFFF)
    }
    if hostReadPage[i] == page, let p = hostReadPointer[i] { return p + Int(phys & 0xFFF) }
    guard let p = memory.hostPointer(physical: page << 12, length: 4096, write: false) else { return nil }
    if dataBreakpoints == 0 {
      hostReadPage[i] = page
      hostReadPointer[i] = p
    }
    return p + Int(phys & 0xFFF)
  }

  /// Cross-modifying code: with other CPUs on other threads (`atomicUpdates`), another CPU may have
  /// decoded from a page after this CPU cached a write pointer to it, so a cached write pointer
  /// is used only while the shared stamp says the page holds no code (one relaxed load).
  @inline(__always) func sharedCodeStamp(_ page: UInt64) -> Bool {
    atomicUpdates && decodeCache.pageHasCode[DecodeCache.pageSlot(page)].load(ordering: .relaxed)
  }

  /// Marks a page as holding cached code: it leaves the write side of the host-page cache, so the
  /// next write to it takes the slow path, which invalidates its decoded instructions.
  @inline(__always) func protectCode(page: UInt64) {
    let i = Int(page & UInt64(CPU.hostPageSlots - 1))
    if hostWritePage[i] == page {
      hostWritePage[i] = ~0
      hostWritePointer[i] = nil
    }
  }

  /// Arms write detection on physical page `page` (the hybrid engine watches the guest's
  /// page-table frames the trap side shadows while this CPU runs the guest's kernel): the page is
  /// marked as holding code and leaves the write side of the host-page cache, so this CPU's next
  /// store to it (by the interpreter, translated code, the page walker or the system layer) takes
  /// the slow path, which clears the mark (`pageWrittenSinceWatch`). Only exact while no two
  /// pages sharing a code-page slot (`DecodeCache.pageSlots` pages apart) are in use.
  package func watchWrites(page: UInt64) {
    decodeCache.pageHasCode[DecodeCache.pageSlot(page)].store(true, ordering: .relaxed)
    protectCode(page: page)
  }

  /// Whether page `page` may have been written since `watchWrites(page:)` (its code-page mark is
  /// gone); a write to a page sharing its slot also counts.
  package func pageWrittenSinceWatch(_ page: UInt64) -> Bool {
    !decodeCache.pageHasCode[DecodeCache.pageSlot(page)].load(ordering: .relaxed)
  }

  /// How many pages apart two pages share a code-page mark (`watchWrites(page:)`).
  package static var watchedPageSlots: Int { DecodeCache.pageSlots }

  /// Reads `size` (1-8) bytes at a physical address within one page.
  func physicalRead(_ phys: UInt64, size: Int) throws(Fault) -> UInt64 {
    if let p = hostPage(phys, write: false) ?? memory.hostPointer(physical: phys, length: size, write: false) {
      return p.loadLittleEndian(size: size)
    }
    if flatUser { throw flatUserPageFault(phys, write: false) }
    let v = try replayedRead(.mmioRead(address: phys, size: size))
    return size >= 8 ? v : v & ((1 << UInt64(size * 8)) - 1)
  }

  /// Writes `size` (1-8) bytes at a physical address within one page.
  func physicalWrite(_ phys: UInt64, size: Int, value: UInt64) throws(Fault) {
    if let p = hostPage(phys, write: true) ?? memory.hostPointer(physical: phys, length: size, write: true) {
      switch size {
      case 1: p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
      case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: value), as: UInt16.self)
      case 4: p.storeBytes(of: UInt32(truncatingIfNeeded: value), as: UInt32.self)
      case 8: p.storeBytes(of: value, as: UInt64.self)
      default:
        for k in 0..<size {
          p.storeBytes(of: UInt8(truncatingIfNeeded: value >> (8 * k)), toByteOffset: k, as: UInt8.self)
        }
      }
      return
    }
    if flatUser { throw flatUserPageFault(phys, write: true) }
    try replayedWrite(
      .mmioWrite(address: phys, size: size, value: size >= 8 ? value : value & ((1 << UInt64(size * 8)) - 1)))
  }

  /// In the flat-user oracle mode there is no MMIO: like a user process, an access to memory that
  /// is not there is a not-present page fault (CR2 = the address, error code W/R and U/S).
  func flatUserPageFault(_ address: UInt64, write: Bool) -> Fault {
    state.cr2 = address
    return .exception(vector: 14, errorCode: (write ? 2 : 0) | 4)
  }

  /// An I/O or MMIO read: the logged answer on re-execution, else the responder's answer (logged
  /// too), else an event.
  func replayedRead(_ event: CPUEvent) throws(Fault) -> UInt64 {
    if ioIndex < ioLog.count {
      let v = ioLog[ioIndex]
      ioIndex += 1
      return v
    }
    if let responder = accessResponder, let v = responder(event) {
      ioLog.append(v)
      ioIndex += 1
      return v
    }
    throw .event(event)
  }

  /// An I/O or MMIO write: skipped on re-execution, else logged and handed to the responder or
  /// reported.
  func replayedWrite(_ event: CPUEvent) throws(Fault) {
    if ioIndex < ioLog.count {
      ioIndex += 1
      return
    }
    ioLog.append(0)
    if let responder = accessResponder, responder(event) != nil {
      ioIndex += 1
      return
    }
    throw .event(event)
  }

  /// Reads at a linear address (split when it crosses a page).
  func readLinear(_ linear: UInt64, size: Int) throws(Fault) -> UInt64 {
    if (linear & 0xFFF) + UInt64(size) <= 0x1000 {
      return try physicalRead(try translate(linear, write: false), size: size)
    }
    var v: UInt64 = 0
    for k in 0..<size {
      v |= try physicalRead(try translate(linear &+ UInt64(k), write: false), size: 1) << (8 * k)
    }
    return v
  }

  /// Writes at a linear address (split when it crosses a page; both pages are checked first, the
  /// first one first: when both fault, CR2 holds the address of the first byte, as on hardware).
  func writeLinear(_ linear: UInt64, size: Int, value: UInt64) throws(Fault) {
    if (linear & 0xFFF) + UInt64(size) <= 0x1000 {
      try physicalWrite(try translate(linear, write: true), size: size, value: value)
      return
    }
    let first = try translate(linear, write: true)
    if flatUser && hostPage(first, write: true) == nil { throw flatUserPageFault(first, write: true) }
    // The second page from its first byte: a fault there reports that address in CR2.
    let last = try translate((linear &+ UInt64(size - 1)) & ~0xFFF, write: true)
    if flatUser && hostPage(last, write: true) == nil { throw flatUserPageFault(last, write: true) }
    for k in 0..<size {
      try physicalWrite(try translate(linear &+ UInt64(k), write: true), size: 1, value: value >> (8 * k))
    }
  }

  /// Segment checks and the linear address of `size` bytes at `offset` in segment `seg` (0-5).
  @inline(__always)
  func linearAddress(seg: Int, offset: UInt64, size: Int, write: Bool) throws(Fault) -> UInt64 {
    if state.codeMode == .bits64 {
      let lin = (seg >= 4 ? state.segmentBase(seg) : 0) &+ offset
      if !isCanonical(lin) { throw seg == 2 ? Fault.stackFault() : Fault.generalProtection() }
      return lin
    }
    if model != .i8086 {
      if !isRealMode && state.rflags & Flags.vm == 0 {
        try checkProtectedModeAccess(seg: seg, offset: offset, size: size, write: write)
      } else {
        let limit = state.segmentLimit(seg)
        if offset &+ UInt64(size - 1) > limit || offset &+ UInt64(size - 1) < offset {
          // The 80286 raises #GP for stack-segment overruns in real mode as well.
          throw seg == 2 && !(model == .i80286 && isRealMode) ? Fault.stackFault() : Fault.generalProtection()
        }
      }
    }
    return (state.segmentBase(seg) &+ offset) & 0xFFFF_FFFF
  }

  /// The checks of a data access through a segment register in protected mode (SDM vol. 3,
  /// "Limit Checking" and "Type Checking"): a null (unusable) segment, a write to a code or
  /// read-only data segment and a read of an execute-only code segment are #GP(0); an offset
  /// outside the segment is #SS(0) through SS and #GP(0) otherwise. An expand-down data segment
  /// holds the offsets above its limit, up to FFFFh, or FFFFFFFFh when its B bit is set.
  @inline(__always)
  func checkProtectedModeAccess(seg: Int, offset: UInt64, size: Int, write: Bool) throws(Fault) {
    let attributes = state.segmentAttributes(seg)
    let last = offset &+ UInt64(size - 1)
    if attributes & SegmentAttributes.present == 0 {
      throw seg == 2 ? Fault.stackFault() : Fault.generalProtection()
    }
    if attributes & SegmentAttributes.code != 0 {
      if write || attributes & SegmentAttributes.readWrite == 0 { throw Fault.generalProtection() }
    } else if write && attributes & SegmentAttributes.readWrite == 0 {
      throw seg == 2 ? Fault.stackFault() : Fault.generalProtection()
    }
    let limit = state.segmentLimit(seg)
    let outside: Bool
    if attributes & (SegmentAttributes.code | SegmentAttributes.conformingOrExpandDown)
      == SegmentAttributes.conformingOrExpandDown
    {
      let upper: UInt64 = attributes & SegmentAttributes.defaultBig != 0 ? 0xFFFF_FFFF : 0xFFFF
      outside = offset <= limit || last > upper || last < offset
    } else {
      outside = last > limit || last < offset
    }
    if outside { throw seg == 2 ? Fault.stackFault() : Fault.generalProtection() }
  }

  /// Reads `size` bytes at segment:offset. On the 8086 a word at offset FFFF wraps to 0000.
  func read(seg: Int, offset: UInt64, size: Int) throws(Fault) -> UInt64 {
    if model == .i8086 && offset &+ UInt64(size) > 0x10000 {
      var v: UInt64 = 0
      for k in 0..<size {
        let lin = try linearAddress(seg: seg, offset: (offset &+ UInt64(k)) & 0xFFFF, size: 1, write: false)
        v |= try readLinear(lin, size: 1) << (8 * k)
      }
      return v
    }
    let linear = try linearAddress(seg: seg, offset: offset, size: size, write: false)
    try checkAlignment(linear, size: size, write: false)
    if dataBreakpoints != 0 { noteDataAccess(linear, size: size, write: false) }
    return try readLinear(linear, size: size)
  }

  /// Writes `size` bytes at segment:offset.
  func write(seg: Int, offset: UInt64, size: Int, value: UInt64) throws(Fault) {
    if model == .i8086 && offset &+ UInt64(size) > 0x10000 {
      for k in 0..<size {
        let lin = try linearAddress(seg: seg, offset: (offset &+ UInt64(k)) & 0xFFFF, size: 1, write: true)
        try writeLinear(lin, size: 1, value: value >> (8 * k))
      }
      return
    }
    let linear = try linearAddress(seg: seg, offset: offset, size: size, write: true)
    try checkAlignment(linear, size: size, write: true)
    if dataBreakpoints != 0 { noteDataAccess(linear, size: size, write: true) }
    try writeLinear(linear, size: size, value: value)
  }

  /// Alignment checking (#AC, vector 17, error code 0) is on at CPL 3 with CR0.AM and RFLAGS.AC set.
  @inline(__always) var alignmentCheckingActive: Bool {
    state.rflags & Flags.ac != 0 && state.cr0 & CR0.am != 0 && state.cpl == 3
  }

  /// Raises #AC for a misaligned explicit data access while alignment checking is on. A page fault
  /// on the same access has priority, so the pages are translated first.
  @inline(__always) func checkAlignment(_ linear: UInt64, size: Int, write: Bool) throws(Fault) {
    guard size > 1, linear & UInt64(size &- 1) != 0, alignmentCheckingActive else { return }
    let second = (linear & 0xFFF) + UInt64(size) <= 0x1000 ? linear : (linear &+ UInt64(size &- 1)) & ~0xFFF
    for physical in [try translate(linear, write: write), try translate(second, write: write)]
    where flatUser && hostPage(physical, write: write) == nil {
      throw flatUserPageFault(physical, write: write)
    }
    throw Fault.exception(vector: ExceptionVector.alignmentCheck, errorCode: 0)
  }

  /// Checks that a write would succeed without performing it (for multi-part instructions).
  func checkWrite(seg: Int, offset: UInt64, size: Int) throws(Fault) {
    if model == .i8086 { return }
    _ = try linearAddress(seg: seg, offset: offset, size: size, write: true)
  }
}

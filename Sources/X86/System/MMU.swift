/// Linear-to-physical translation for the core: `PageWalker` behind a `SoftTLB`, with page tables
/// and data in the core's `PhysicalMemory`. A #PF loads CR2 and is thrown as `Fault.exception(14, code)`.
///
/// Hot path: `tlb.hostPointer(linear, kind:, user:)` (inline); on nil call `translate`, which
/// walks, caches and returns the physical address and host pointer (nil for MMIO).
public final class MMU {
  /// The software TLB in front of the walker.
  public let tlb: SoftTLB
  /// The physical memory the tables are read from.
  public let memory: any PhysicalMemory
  /// MAXPHYADDR of the modelled CPU (reserved bits in page-table entries).
  public var physicalAddressBits: Int
  /// Whether 1 GiB pages are allowed (PDPTE.PS).
  public var supports1GPages: Bool
  /// The interpreter's decode cache, told about every write the system layer and the page walker
  /// make (interrupt frames, TSS and descriptor updates, accessed/dirty bits), so code on those
  /// pages is decoded again like after any other store.
  var codeCache: DecodeCache?

  /// An MMU over `memory`, its TLB's entries after the state page of `tlbState` (see
  /// `SoftTLB.init(in:)`) or in an allocation of their own.
  public init(
    memory: any PhysicalMemory, physicalAddressBits: Int = 40, supports1GPages: Bool = true,
    tlbState: CPUState? = nil
  ) {
    self.tlb = SoftTLB(in: tlbState)
    self.memory = memory
    self.physicalAddressBits = physicalAddressBits
    self.supports1GPages = supports1GPages
  }

  /// The paging controls of `state`.
  public func control(_ state: CPUState) -> PagingControl {
    PagingControl(
      cr0: state.cr0, cr3: state.cr3, cr4: state.cr4, efer: state.efer, physicalAddressBits: physicalAddressBits,
      supports1GPages: supports1GPages)
  }

  /// Translates `linear` for an access of `kind` at user privilege (`user`: CPL 3 and not an
  /// implicit supervisor access). `implicitSupervisor` marks descriptor-table, TSS and interrupt
  /// stack accesses (SMAP applies regardless of RFLAGS.AC).
  public func translate(
    _ linear: UInt64, kind: MemoryAccessKind, user: Bool, implicitSupervisor: Bool = false, state: CPUState
  ) throws(Fault) -> (physical: UInt64, host: UnsafeMutableRawPointer?) {
    let offset = Int(truncatingIfNeeded: linear & 0xFFF)
    if let entry = tlb.entry(linear, kind: kind, user: user) {
      return (entry.physicalPage | UInt64(offset), entry.host.map { $0 + offset })
    }
    do throws(PageFault) {
      let (physical, host) = try walkAndCache(
        linear, kind: kind, user: user, implicitSupervisor: implicitSupervisor, state: state)
      return (physical, host.map { $0 + offset })
    } catch {
      state.cr2 = error.address
      throw .pf(error)
    }
  }

  /// Walks the page tables for `linear` and caches the translation, as `translate` does, but a
  /// page fault only returns false (no CR2, nothing thrown): for a caller that will have the
  /// access made again, and fault then if it must (a translator whose inline TLB lookup missed).
  /// Accessed and dirty bits are set as the access itself would set them.
  public func cacheTranslation(_ linear: UInt64, kind: MemoryAccessKind, user: Bool, state: CPUState) -> Bool {
    if tlb.entry(linear, kind: kind, user: user) != nil { return true }
    return (try? walkAndCache(linear, kind: kind, user: user, implicitSupervisor: false, state: state)) != nil
  }

  /// The page walk behind both: translates `linear`, caches the result in the TLB, and returns the
  /// physical address and the host address of its 4 KiB page (nil for MMIO).
  private func walkAndCache(
    _ linear: UInt64, kind: MemoryAccessKind, user: Bool, implicitSupervisor: Bool, state: CPUState
  ) throws(PageFault) -> (physical: UInt64, hostPage: UnsafeMutableRawPointer?) {
    let control = control(state)
    let translation = try PageWalker.translate(
      linear, kind: kind, user: user, control: control, memory: PageTables(memory: memory, codeCache: codeCache),
      alignmentCheckFlag: state.rflags & Flags.ac != 0, implicitSupervisor: implicitSupervisor)
    let page = translation.physicalAddress & ~0xFFF
    let host = memory.hostPointer(physical: page, length: 4096, write: kind == .write)
    tlb.fill(linear, kind: kind, user: user, translation: translation, host: host, control: control)
    return (translation.physicalAddress, host)
  }

  /// Page-table access through `PhysicalMemory` (entries outside RAM read as absent).
  struct PageTables: PageTableMemory {
    let memory: any PhysicalMemory
    let codeCache: DecodeCache?

    func readEntry(_ physical: UInt64, size: Int) -> UInt64? {
      guard let p = memory.hostPointer(physical: physical, length: size, write: false) else { return nil }
      return size == 4 ? UInt64(p.loadUnaligned(as: UInt32.self)) : p.loadUnaligned(as: UInt64.self)
    }

    func writeEntry(_ physical: UInt64, value: UInt64, size: Int) {
      guard let p = memory.hostPointer(physical: physical, length: size, write: true) else { return }
      codeCache?.noteWrite(page: physical >> 12)
      if size == 4 {
        p.storeBytes(of: UInt32(truncatingIfNeeded: value), as: UInt32.self)
      } else {
        p.storeBytes(of: value, as: UInt64.self)
      }
    }
  }
}

/// The system layer's memory interface over an `MMU`: translated, privilege-checked linear
/// accesses split at page boundaries. Descriptor tables, TSSs and stacks live in RAM on every
/// sane machine; an access that lands on MMIO reads all ones and drops writes (an unclaimed bus),
/// because the system layer cannot take part in the core's MMIO replay.
public struct MMUSystemMemory: SystemMemoryAccess {
  /// The MMU.
  public let mmu: MMU
  /// The state whose paging controls and CPL apply.
  public let state: CPUState

  /// The memory interface of `mmu` for accesses made in `state`.
  public init(mmu: MMU, state: CPUState) {
    self.mmu = mmu
    self.state = state
  }

  /// Reads `size` bytes at a linear address (supervisor or user access).
  public func readLinear(_ address: UInt64, size: Int, supervisor: Bool) throws(Fault) -> UInt64 {
    if Int(address & 0xFFF) + size <= 0x1000 {
      // Within one page (descriptors, stack slots, TSS fields: nearly always): one load.
      let (_, host) = try mmu.translate(
        address, kind: .read, user: !supervisor, implicitSupervisor: supervisor, state: state)
      let mask: UInt64 = size >= 8 ? .max : (1 << UInt64(8 * size)) - 1
      return host?.loadLittleEndian(size: size) ?? mask
    }
    var value: UInt64 = 0
    var done = 0
    while done < size {
      let linear = address &+ UInt64(done)
      let chunk = min(size - done, 0x1000 - Int(linear & 0xFFF))
      let (_, host) = try mmu.translate(
        linear, kind: .read, user: !supervisor, implicitSupervisor: supervisor, state: state)
      for i in 0..<chunk {
        let byte = host.map { UInt64($0.load(fromByteOffset: i, as: UInt8.self)) } ?? 0xFF
        value |= byte << UInt64(8 * (done + i))
      }
      done += chunk
    }
    return value
  }

  /// Writes `size` bytes at a linear address (supervisor or user access).
  public func writeLinear(_ address: UInt64, size: Int, value: UInt64, supervisor: Bool) throws(Fault) {
    // Translate both pages first so a fault on the second page leaves the first untouched.
    let firstChunk = min(size, 0x1000 - Int(address & 0xFFF))
    let first = try mmu.translate(
      address, kind: .write, user: !supervisor, implicitSupervisor: supervisor, state: state)
    let second =
      firstChunk < size
      ? try mmu.translate(
        address &+ UInt64(firstChunk), kind: .write, user: !supervisor, implicitSupervisor: supervisor, state: state)
      : nil
    store(value, at: first, bytes: 0..<firstChunk)
    if let second { store(value, at: second, bytes: firstChunk..<size) }
  }

  /// Stores bytes `bytes` of `value` at a translated address (dropped on MMIO) and tells the decode
  /// cache about the write.
  private func store(
    _ value: UInt64, at target: (physical: UInt64, host: UnsafeMutableRawPointer?), bytes: Range<Int>
  ) {
    guard let host = target.host else { return }
    switch (bytes.lowerBound, bytes.count) {
    case (0, 2): host.storeBytes(of: UInt16(truncatingIfNeeded: value), as: UInt16.self)
    case (0, 4): host.storeBytes(of: UInt32(truncatingIfNeeded: value), as: UInt32.self)
    case (0, 8): host.storeBytes(of: value, as: UInt64.self)
    default:
      for i in bytes {
        host.storeBytes(
          of: UInt8(truncatingIfNeeded: value >> UInt64(8 * i)), toByteOffset: i - bytes.lowerBound, as: UInt8.self)
      }
    }
    mmu.codeCache?.noteWrite(page: target.physical >> 12)
  }

}

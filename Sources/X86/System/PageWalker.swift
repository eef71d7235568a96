/// The kind of memory access being translated, as the page-fault error code encodes it.
public enum MemoryAccessKind: UInt8, Sendable {
  case read = 0
  case write = 1
  case execute = 2
}

/// The control state that decides how linear addresses translate (a snapshot of CR0, CR3, CR4,
/// EFER and the privilege of the access).
public struct PagingControl: Sendable, Equatable {
  /// CR0 (PG, WP).
  public var cr0: UInt64
  /// CR3: the root table.
  public var cr3: UInt64
  /// CR4 (PAE, PSE, LA57, SMEP, SMAP, PGE).
  public var cr4: UInt64
  /// IA32_EFER (LMA, NXE).
  public var efer: UInt64
  /// Highest physical address bit + 1 the modelled CPU supports (bits above are reserved in entries).
  public var physicalAddressBits: Int
  /// Whether 1 GiB pages (PDPTE.PS) are supported.
  public var supports1GPages: Bool

  /// The paging controls of a walk.
  public init(
    cr0: UInt64, cr3: UInt64, cr4: UInt64, efer: UInt64, physicalAddressBits: Int = 40,
    supports1GPages: Bool = true
  ) {
    self.cr0 = cr0
    self.cr3 = cr3
    self.cr4 = cr4
    self.efer = efer
    self.physicalAddressBits = physicalAddressBits
    self.supports1GPages = supports1GPages
  }

  /// CR0.PG.
  public var pagingEnabled: Bool { cr0 & CR0.pg != 0 }
  /// CR0.WP: supervisor writes honour read-only pages.
  public var writeProtect: Bool { cr0 & CR0.wp != 0 }
  /// CR4.PAE.
  public var pae: Bool { cr4 & CR4.pae != 0 }
  /// CR4.PSE: 4 MiB pages in 32-bit paging.
  public var pse: Bool { cr4 & CR4.pse != 0 }
  /// CR4.LA57: five-level paging.
  public var la57: Bool { cr4 & CR4.la57 != 0 }
  /// CR4.SMEP.
  public var smep: Bool { cr4 & CR4.smep != 0 }
  /// CR4.SMAP.
  public var smap: Bool { cr4 & CR4.smap != 0 }
  /// CR4.PGE: global pages.
  public var pge: Bool { cr4 & CR4.pge != 0 }
  /// EFER.LMA: four- or five-level paging.
  public var longMode: Bool { efer & EFER.lma != 0 }
  /// EFER.NXE: the XD bit is honoured.
  public var nxEnabled: Bool { efer & EFER.nxe != 0 }
}

/// Bits of CR0 the MMU and the system instructions care about.
public enum CR0 {
  /// Protection enable.
  public static let pe: UInt64 = 1 << 0
  /// Monitor coprocessor.
  public static let mp: UInt64 = 1 << 1
  /// x87 emulation.
  public static let em: UInt64 = 1 << 2
  /// Task switched.
  public static let ts: UInt64 = 1 << 3
  /// Extension type (always 1).
  public static let et: UInt64 = 1 << 4
  /// Numeric error (native x87 errors).
  public static let ne: UInt64 = 1 << 5
  /// Write protect.
  public static let wp: UInt64 = 1 << 16
  /// Alignment mask.
  public static let am: UInt64 = 1 << 18
  /// Not write-through.
  public static let nw: UInt64 = 1 << 29
  /// Cache disable.
  public static let cd: UInt64 = 1 << 30
  /// Paging.
  public static let pg: UInt64 = 1 << 31
}

/// Bits of CR4.
public enum CR4 {
  /// Virtual-8086 mode extensions.
  public static let vme: UInt64 = 1 << 0
  /// Protected-mode virtual interrupts.
  public static let pvi: UInt64 = 1 << 1
  /// Time stamp disable (RDTSC at CPL 0 only).
  public static let tsd: UInt64 = 1 << 2
  /// Debugging extensions.
  public static let de: UInt64 = 1 << 3
  /// CR4.PSE: 4 MiB pages in 32-bit paging.
  public static let pse: UInt64 = 1 << 4
  /// CR4.PAE.
  public static let pae: UInt64 = 1 << 5
  /// Machine-check enable.
  public static let mce: UInt64 = 1 << 6
  /// CR4.PGE: global pages.
  public static let pge: UInt64 = 1 << 7
  /// Performance-counter enable.
  public static let pce: UInt64 = 1 << 8
  /// FXSAVE/FXRSTOR and SSE enabled by the OS.
  public static let osfxsr: UInt64 = 1 << 9
  /// SIMD exceptions enabled by the OS.
  public static let osxmmexcpt: UInt64 = 1 << 10
  /// User-mode instruction prevention.
  public static let umip: UInt64 = 1 << 11
  /// CR4.LA57: five-level paging.
  public static let la57: UInt64 = 1 << 12
  /// RDFSBASE & co. enabled.
  public static let fsgsbase: UInt64 = 1 << 16
  /// Process-context identifiers.
  public static let pcide: UInt64 = 1 << 17
  /// XSAVE enabled by the OS.
  public static let osxsave: UInt64 = 1 << 18
  /// CR4.SMEP.
  public static let smep: UInt64 = 1 << 20
  /// CR4.SMAP.
  public static let smap: UInt64 = 1 << 21
}

/// Bits of the EFER MSR.
public enum EFER {
  /// SYSCALL enable.
  public static let sce: UInt64 = 1 << 0
  /// Long mode enable.
  public static let lme: UInt64 = 1 << 8
  /// Long mode active.
  public static let lma: UInt64 = 1 << 10
  /// No-execute enable.
  public static let nxe: UInt64 = 1 << 11
}

/// A page fault as the CPU reports it: the faulting linear address (CR2) and the error code.
public struct PageFault: Error, Sendable, Equatable {
  /// The linear address that faulted (for CR2).
  public var address: UInt64
  /// The #PF error code.
  public var errorCode: UInt32

  /// Error-code bits (SDM vol. 3, "Interrupt 14").
  public enum Bit {
    /// P: the page was present (protection violation).
    public static let present: UInt32 = 1 << 0
    /// W/R: a write.
    public static let write: UInt32 = 1 << 1
    /// U/S: the access was at CPL 3 (as a user access).
    public static let user: UInt32 = 1 << 2
    /// RSVD: a reserved bit was set in a paging entry.
    public static let reserved: UInt32 = 1 << 3
    /// I/D: an instruction fetch.
    public static let instructionFetch: UInt32 = 1 << 4
  }
}

/// The outcome of a successful walk: where the byte lives and what the TLB may cache about it.
public struct Translation: Sendable, Equatable {
  /// The physical address of the accessed byte.
  public var physicalAddress: UInt64
  /// log2 of the page size: 12, 21, 22 or 30.
  public var pageShift: UInt8
  /// Effective permissions over all levels.
  public var writable: Bool
  /// Whether the page is accessible at CPL 3 (U/S set at every level).
  public var user: Bool
  /// Whether the page may be executed (XD clear or NX off).
  public var executable: Bool
  /// Whether the translation is global (survives a CR3 load).
  public var global: Bool
  /// Whether the final entry's dirty bit is now set (a TLB may cache writes only then).
  public var dirty: Bool

  /// The page size in bytes.
  public var pageSize: UInt64 { 1 << UInt64(pageShift) }
  /// The physical address of the page.
  public var pageBase: UInt64 { physicalAddress & ~(pageSize - 1) }
}

/// Access to the page tables in guest-physical memory. Returning nil means the entry is not in RAM,
/// which the walker turns into a reserved-bit page fault (real hardware would read all ones from
/// an unclaimed bus).
public protocol PageTableMemory {
  func readEntry(_ physical: UInt64, size: Int) -> UInt64?
  func writeEntry(_ physical: UInt64, value: UInt64, size: Int)
}

/// The x86 page walker: 32-bit 2-level (with PSE 4 MiB pages), PAE 3-level, 4- and 5-level long-mode
/// paging; U/S, R/W, NX, CR0.WP, SMEP and SMAP; accessed and dirty updates; error codes as the SDM
/// defines them. Pure function of the control state and memory, so the interpreter's TLB and a
/// future translator's softmmu share it.
public enum PageWalker {
  /// Translates `linear` for an access of `kind` made at user privilege (`user`, CPL 3) or supervisor.
  /// `implicitSupervisor` marks accesses the CPU makes for itself (descriptor tables, TSS, interrupt
  /// stack): they are supervisor accesses even at CPL 3 and SMAP applies regardless of RFLAGS.AC.
  /// `alignmentCheckFlag` is RFLAGS.AC, which lifts SMAP for explicit supervisor data accesses.
  public static func translate(
    _ linear: UInt64, kind: MemoryAccessKind, user: Bool, control: PagingControl,
    memory: some PageTableMemory, alignmentCheckFlag: Bool = false, implicitSupervisor: Bool = false
  ) throws(PageFault) -> Translation {
    guard control.pagingEnabled else {
      return Translation(
        physicalAddress: control.longMode ? linear : linear & 0xFFFF_FFFF, pageShift: 12, writable: true,
        user: true, executable: true, global: false, dirty: true)
    }
    let isUser = user && !implicitSupervisor
    var errorBase: UInt32 = 0
    if kind == .write { errorBase |= PageFault.Bit.write }
    if isUser { errorBase |= PageFault.Bit.user }
    if kind == .execute && (control.nxEnabled || control.smep) && (control.pae || control.longMode) {
      errorBase |= PageFault.Bit.instructionFetch
    }
    func fault(_ extra: UInt32) -> PageFault {
      PageFault(address: linear, errorCode: errorBase | extra)
    }

    let maxPhys = UInt64(1) << UInt64(control.physicalAddressBits)
    let addressMask = (maxPhys - 1) & ~UInt64(0xFFF)
    // Bits 51..MAXPHYADDR must be zero in every entry of PAE and long-mode tables.
    let reservedHigh: UInt64 = (~(maxPhys - 1)) & 0x000F_FFFF_FFFF_FFFF
    let nxBit: UInt64 = 1 << 63
    let nxReserved: UInt64 = control.nxEnabled ? 0 : nxBit

    var writable = true
    var userOK = true
    var executable = true
    // Non-leaf entries whose accessed bit is clear, to set once the walk succeeds: (address,
    // value, size). Most walks find every bit set and append nothing (no allocation).
    var walked: [(UInt64, UInt64, Int)] = []

    var physical: UInt64
    var pageShift: UInt8
    var leaf: UInt64
    var leafAddress: UInt64
    var leafSize: Int

    if !control.pae {
      // 32-bit paging: two levels of 4-byte entries.
      let l32 = linear & 0xFFFF_FFFF
      let pdeAddress = (control.cr3 & 0xFFFF_F000) + ((l32 >> 22) & 0x3FF) * 4
      guard let pde = memory.readEntry(pdeAddress, size: 4) else { throw fault(PageFault.Bit.reserved) }
      guard pde & 1 != 0 else { throw fault(0) }
      writable = writable && (pde & 2 != 0)
      userOK = userOK && (pde & 4 != 0)
      if control.pse && pde & 0x80 != 0 {
        // 4 MiB page; PSE-36 puts physical bits 39:32 in bits 20:13.
        if pde & (1 << 21) != 0 { throw fault(PageFault.Bit.present | PageFault.Bit.reserved) }
        let high = ((pde >> 13) & 0xFF) << 32
        physical = ((pde & 0xFFC0_0000) | high) + (l32 & 0x3F_FFFF)
        pageShift = 22
        leaf = pde
        leafAddress = pdeAddress
        leafSize = 4
      } else {
        if pde & 0x20 == 0 { walked.append((pdeAddress, pde, 4)) }
        let pteAddress = (pde & 0xFFFF_F000) + ((l32 >> 12) & 0x3FF) * 4
        guard let pte = memory.readEntry(pteAddress, size: 4) else { throw fault(PageFault.Bit.reserved) }
        guard pte & 1 != 0 else { throw fault(0) }
        writable = writable && (pte & 2 != 0)
        userOK = userOK && (pte & 4 != 0)
        physical = (pte & 0xFFFF_F000) + (l32 & 0xFFF)
        pageShift = 12
        leaf = pte
        leafAddress = pteAddress
        leafSize = 4
      }
    } else {
      var table: UInt64
      var level: Int
      if control.longMode {
        level = control.la57 ? 5 : 4
        table = control.cr3 & addressMask
        // Canonical check is the segmentation unit's job (#GP/#SS), not the walker's.
      } else {
        // PAE: CR3 points at four PDPTEs (loaded architecturally at MOV CR3; read here on demand).
        let pdpteAddress = (control.cr3 & 0xFFFF_FFE0) + ((linear >> 30) & 3) * 8
        guard let pdpte = memory.readEntry(pdpteAddress, size: 8) else { throw fault(PageFault.Bit.reserved) }
        guard pdpte & 1 != 0 else { throw fault(0) }
        if pdpte & (reservedHigh | 0x1E6) != 0 { throw fault(PageFault.Bit.present | PageFault.Bit.reserved) }
        table = pdpte & addressMask
        level = 2
      }
      while true {
        let shift = UInt64(12 + 9 * (level - 1))
        let entryAddress = table + ((linear >> shift) & 0x1FF) * 8
        guard let entry = memory.readEntry(entryAddress, size: 8) else {
          throw fault(PageFault.Bit.reserved)
        }
        guard entry & 1 != 0 else { throw fault(0) }
        let large = entry & 0x80 != 0
        var reserved = reservedHigh | nxReserved
        if level >= 4 && control.longMode { reserved |= 0x80 }  // PS must be 0 in PML5E/PML4E
        if level == 3 && large && !control.supports1GPages { reserved |= 0x80 }
        if large && level == 3 { reserved |= 0x3FFF_E000 }  // 1 GiB page: bits 29:13 reserved
        if large && level == 2 { reserved |= 0x1F_E000 }  // 2 MiB page: bits 20:13 reserved
        if entry & reserved != 0 { throw fault(PageFault.Bit.present | PageFault.Bit.reserved) }
        writable = writable && (entry & 2 != 0)
        userOK = userOK && (entry & 4 != 0)
        if control.nxEnabled && entry & nxBit != 0 { executable = false }
        if level == 1 || (large && level <= 3) {
          let offsetMask = (UInt64(1) << shift) - 1
          physical = ((entry & addressMask) & ~offsetMask) | (linear & offsetMask)
          pageShift = UInt8(shift)
          leaf = entry
          leafAddress = entryAddress
          leafSize = 8
          break
        }
        if entry & 0x20 == 0 { walked.append((entryAddress, entry, 8)) }
        table = entry & addressMask
        level -= 1
      }
    }

    // Permission checks (SDM vol. 3, "Access Rights").
    let present = PageFault.Bit.present
    if isUser {
      if !userOK { throw fault(present) }
      if kind == .write && !writable { throw fault(present) }
      if kind == .execute && !executable { throw fault(present) }
    } else {
      if kind == .write && !writable && control.writeProtect { throw fault(present) }
      if kind == .execute {
        if !executable { throw fault(present) }
        if userOK && control.smep { throw fault(present) }
      } else if userOK && control.smap && (implicitSupervisor || !alignmentCheckFlag) {
        // Explicit supervisor data accesses to user pages fault under SMAP unless AC=1 (and CPL<3).
        throw fault(present)
      }
    }

    // Success: set accessed bits on the way down, and dirty on the leaf for writes.
    for (address, value, size) in walked { memory.writeEntry(address, value: value | 0x20, size: size) }
    var newLeaf = leaf | 0x20
    if kind == .write { newLeaf |= 0x40 }
    if newLeaf != leaf { memory.writeEntry(leafAddress, value: newLeaf, size: leafSize) }

    return Translation(
      physicalAddress: physical, pageShift: pageShift, writable: writable, user: userOK,
      executable: executable, global: control.pge && leaf & 0x100 != 0, dirty: newLeaf & 0x40 != 0)
  }
}

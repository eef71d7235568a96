/// Translates guest-linear addresses to guest-physical ones by reading the guest's own page tables
/// from `GuestMemory` (for diagnostics such as the bytes at RIP in an internal-error report).
///
/// Handles paging off, 32-bit paging (with 4 MiB pages when CR4.PSE), PAE paging and 4-level long
/// mode paging (2 MiB and 1 GiB pages). Access rights are not checked: this is a debugger's view.
public struct GuestPageWalker {
  /// The guest memory the page tables are read from.
  public let memory: GuestMemory
  /// The paging controls (CR0, CR3, CR4, EFER) and CS base the walk uses.
  public let specialRegisters: SpecialRegisters

  /// A walker over `memory` with the paging state of `specialRegisters`.
  public init(memory: GuestMemory, specialRegisters: SpecialRegisters) {
    self.memory = memory
    self.specialRegisters = specialRegisters
  }

  private static let present: UInt64 = 1
  private static let pageSize: UInt64 = 1 << 7
  private static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

  /// The guest-physical address of `linear`, or nil when a table entry is missing or unreadable.
  public func translate(_ linear: UInt64) -> UInt64? {
    let sr = specialRegisters
    guard sr.cr0 & (1 << 31) != 0 else { return linear & 0xFFFF_FFFF_FFFF }
    let pae = sr.cr4 & (1 << 5) != 0
    let longMode = sr.efer & (1 << 10) != 0
    if longMode {
      var table = sr.cr3 & Self.addressMask
      for (level, shift) in [(4, 39), (3, 30), (2, 21), (1, 12)] as [(Int, UInt64)] {
        guard let e = try? memory.read(UInt64.self, at: table + ((linear >> shift) & 0x1FF) * 8),
          e & Self.present != 0
        else { return nil }
        if (level == 3 || level == 2) && e & Self.pageSize != 0 {
          let mask: UInt64 = (1 << shift) - 1
          return (e & Self.addressMask & ~mask) | (linear & mask)
        }
        table = e & Self.addressMask
      }
      return table | (linear & 0xFFF)
    }
    if pae {
      guard
        let pdpte = try? memory.read(UInt64.self, at: (sr.cr3 & 0xFFFF_FFE0) + ((linear >> 30) & 3) * 8),
        pdpte & Self.present != 0
      else { return nil }
      guard let pde = try? memory.read(UInt64.self, at: (pdpte & Self.addressMask) + ((linear >> 21) & 0x1FF) * 8),
        pde & Self.present != 0
      else { return nil }
      if pde & Self.pageSize != 0 { return (pde & Self.addressMask & ~0x1F_FFFF) | (linear & 0x1F_FFFF) }
      guard let pte = try? memory.read(UInt64.self, at: (pde & Self.addressMask) + ((linear >> 12) & 0x1FF) * 8),
        pte & Self.present != 0
      else { return nil }
      return (pte & Self.addressMask) | (linear & 0xFFF)
    }
    let l = linear & 0xFFFF_FFFF
    guard let pde = try? memory.read(UInt32.self, at: (sr.cr3 & 0xFFFF_F000) + ((l >> 22) & 0x3FF) * 4),
      pde & 1 != 0
    else { return nil }
    if pde & 0x80 != 0 && sr.cr4 & (1 << 4) != 0 {
      return (UInt64(pde) & 0xFFC0_0000) | (l & 0x3F_FFFF)
    }
    guard let pte = try? memory.read(UInt32.self, at: UInt64(pde & 0xFFFF_F000) + ((l >> 12) & 0x3FF) * 4),
      pte & 1 != 0
    else { return nil }
    return UInt64(pte & 0xFFFF_F000) | (l & 0xFFF)
  }

  /// Up to `count` bytes at linear address `linear`, stopping at the first untranslatable or
  /// unbacked byte (so a report shows what can be read).
  public func readLinear(_ linear: UInt64, count: Int) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(count)
    for i in 0..<count {
      guard let p = translate(linear &+ UInt64(i)), let b = try? memory.read(UInt8.self, at: p) else { break }
      out.append(b)
    }
    return out
  }

  /// The bytes at CS:RIP for a report: the code segment base is added outside 64-bit mode.
  public func bytesAtRIP(_ registers: Registers, count: Int = 16) -> [UInt8] {
    let sr = specialRegisters
    let linear = sr.cs.l && sr.efer & (1 << 10) != 0 ? registers.rip : (sr.cs.base &+ registers.rip)
    return readLinear(linear, count: count)
  }
}

/// How a hypercall reaches the memory behind a guest pointer: through the caller's own page
/// tables, with the caller's rights, as Xen's `copy_from_guest`/`copy_to_guest` do by running
/// on the guest's address space. A pointer to an unmapped page, a write to a read-only page (a
/// pinned page table, for instance), a user page missing U/S for a ring-3 caller or a frame that
/// is not guest RAM is -EFAULT.
struct GuestVirtualAccess {
  let memory: GuestMemory
  let specialRegisters: SpecialRegisters

  private static let present: UInt64 = 1
  private static let writable: UInt64 = 1 << 1
  private static let user: UInt64 = 1 << 2
  private static let largePage: UInt64 = 1 << 7
  private static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

  /// The guest-physical address of `linear` when the caller may access it (`write`: store).
  func physical(_ linear: UInt64, write: Bool) throws(HypercallFailure) -> UInt64 {
    let s = specialRegisters
    let address: UInt64
    if s.cr0 & (1 << 31) == 0 {
      address = linear & 0xFFFF_FFFF
    } else if s.efer & (1 << 10) != 0 {
      address = try walkLongMode(linear, write: write)
    } else {
      // 32-bit and PAE paging: the walker's translation (rights are not checked there).
      guard let p = GuestPageWalker(memory: memory, specialRegisters: s).translate(linear) else {
        throw HypercallFailure(.fault)
      }
      address = p
    }
    guard memory.region(containing: address)?.kind == .ram else { throw HypercallFailure(.fault) }
    return address
  }

  /// The 4-level walk with the rights of the caller's privilege level (CPL 3: every level U/S;
  /// stores: every level R/W, as with CR0.WP set).
  private func walkLongMode(_ linear: UInt64, write: Bool) throws(HypercallFailure) -> UInt64 {
    let canonical = (Int64(bitPattern: linear << 16) >> 16) == Int64(bitPattern: linear)
    guard canonical else { throw HypercallFailure(.fault) }
    let userCaller = specialRegisters.cs.selector & 3 == 3
    var table = specialRegisters.cr3 & Self.addressMask
    for (level, shift) in [(4, 39), (3, 30), (2, 21), (1, 12)] as [(Int, UInt64)] {
      guard let e = try? memory.read(UInt64.self, at: table + ((linear >> shift) & 0x1FF) * 8),
        e & Self.present != 0
      else { throw HypercallFailure(.fault) }
      if write && e & Self.writable == 0 { throw HypercallFailure(.fault) }
      if userCaller && e & Self.user == 0 { throw HypercallFailure(.fault) }
      if (level == 3 || level == 2) && e & Self.largePage != 0 {
        let mask: UInt64 = (1 << shift) - 1
        return (e & Self.addressMask & ~mask) | (linear & mask)
      }
      table = e & Self.addressMask
    }
    return table | (linear & 0xFFF)
  }
}

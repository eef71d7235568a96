import CKVM
import Synchronization
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// A one-page KVM memory slot that exists only so that moving it makes KVM drop every shadow page
/// of the VM (`KVMVirtualMachine.dropShadowPageTables`), without touching the slots that hold the
/// guest's RAM.
///
/// KVM handles the deletion or move of any memory slot by `kvm_arch_flush_shadow_memslot`, which
/// on x86 zaps all shadow pages of the VM, not only those of the slot (`kvm_mmu_zap_all_fast`,
/// the default `KVM_X86_QUIRK_SLOT_ZAP_ALL`, which Trivisor never disables): it marks them
/// obsolete, kicks every vCPU out of guest mode and waits until each has seen the request, and a
/// vCPU frees its obsolete roots and builds new shadows from the guest's tables in memory before
/// it enters the guest again. The RAM slots stay in place all along, so a sibling vCPU running
/// guest code meanwhile only takes page faults that KVM resolves from the guest's current tables.
///
/// The slot lives at two guest-physical addresses in turn, at 2^50: far above the RAM, ROM and
/// MMIO of any machine, and above the physical address width of the hosts that shadow (a guest
/// that formed such an address would read a page of zeros). It is created on first use.
final class KVMShadowZapSlot: @unchecked Sendable {
  /// The slot number: the last one KVM offers, far from the RAM and ROM slots (numbered from 0).
  let slot: UInt32
  /// The two guest-physical addresses the page alternates between.
  static let addresses: (UInt64, UInt64) = (0x0004_0000_0000_0000, 0x0004_0000_0010_0000)
  /// The host page that backs the slot, and whether the slot sits at the second address (nil
  /// until the slot was created). Held while the slot is changed: two vCPUs may drop at once.
  private let state = Mutex<(page: UnsafeMutableRawPointer?, atSecond: Bool?)>((nil, nil))
  /// How many times the slot moved (each one a VM-wide drop of KVM's shadow pages), for tests.
  let moves = Atomic<UInt64>(0)

  /// The zap slot of a VM whose KVM offers `memorySlots` slots per VM.
  init(memorySlots: Int) {
    slot = UInt32(max(memorySlots, 1) - 1)
  }

  deinit {
    state.withLock { if let page = $0.page { munmap(page, 4096) } }
  }

  /// Moves the slot to its other address through VM file descriptor `vm` (creating it first on
  /// the first call, which drops nothing): KVM drops every shadow page of the VM before the call
  /// returns.
  func move(vm: Int32) throws(EngineError) {
    let result: Result<Void, EngineError> = state.withLock { s in
      if s.page == nil {
        guard let p = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED
        else { return .failure(EngineError("kvm: mmap of the shadow zap page failed: \(errnoText(errno))")) }
        s.page = p
      }
      repeat {
        let toSecond = !(s.atSecond ?? true)
        var r = kvm_userspace_memory_region(
          slot: slot, flags: 0, guest_phys_addr: toSecond ? Self.addresses.1 : Self.addresses.0, memory_size: 4096,
          userspace_addr: UInt64(UInt(bitPattern: s.page)))
        let rc = ckvm_ioctl_ptr(vm, CKVM_SET_USER_MEMORY_REGION, &r)
        guard rc >= 0 else {
          return .failure(EngineError("KVM_SET_USER_MEMORY_REGION (shadow zap slot \(slot)) failed: \(errnoText(-rc))"))
        }
        let created = s.atSecond == nil
        s.atSecond = toSecond
        if !created { break }
      } while true
      moves.add(1, ordering: .relaxed)
      return .success(())
    }
    try result.get()
  }
}

import CKVM
import Foundation
import VMM

extension KVMSystem {
  /// Whether the host's KVM builds shadow page tables from the guest's own (no EPT/NPT): the
  /// kvm_pvm module, or kvm_intel with `ept=N`, or kvm_amd with `npt=0`. Such a KVM write-protects
  /// the guest's page-table pages and trusts that they change only by guest writes it intercepts;
  /// a write the VMM makes from the host side (a paravirtual `mmu_update`, the trap engine's
  /// shadow tables) goes past it, so the VMM must make KVM drop its shadows afterwards
  /// (`KVMVirtualMachine.dropShadowPageTables`). With EPT/NPT KVM reads the guest's tables through
  /// the hardware and there is nothing to drop.
  public static let shadowsGuestPageTables: Bool = {
    func parameter(_ path: String) -> String? {
      (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    if FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm") { return true }
    if let ept = parameter("/sys/module/kvm_intel/parameters/ept") { return ept == "N" || ept == "0" }
    if let npt = parameter("/sys/module/kvm_amd/parameters/npt") { return npt == "N" || npt == "0" }
    return false
  }()
}

extension KVMVirtualMachine {
  /// True on a host whose KVM shadows the guest's page tables (`KVMSystem.shadowsGuestPageTables`).
  public var shadowsGuestPageTables: Bool { KVMSystem.shadowsGuestPageTables }

  /// Makes KVM drop every shadow page table of the VM, and the real TLB with them, for every vCPU:
  /// each rebuilds them from the guest's tables in memory before it runs guest code again. Safe
  /// while other vCPUs run: it moves a spare one-page slot (`KVMShadowZapSlot`) and leaves the
  /// RAM slots alone, and KVM kicks every vCPU out of guest mode before the call returns. One
  /// `KVM_SET_USER_MEMORY_REGION`.
  public func dropShadowPageTables() throws(EngineError) {
    guard Int(shadowZapSlot.slot) >= memory.regions.count else { return try reloadMemorySlots() }
    try shadowZapSlot.move(vm: fd)
  }

  /// How many times `dropShadowPageTables` made KVM drop its shadows (for tests).
  public var shadowDrops: UInt64 { shadowZapSlot.moves.load(ordering: .relaxed) }

  /// Deletes and re-adds every RAM slot, so KVM drops every shadow page it built from page tables
  /// in them, and the real TLB with them, and rebuilds them from memory on demand: what
  /// `dropShadowPageTables` does when the VM has no spare slot left. Loading the special
  /// registers, even a CR3 change, does not: a shadow MMU keeps its pages by frame. Only while no
  /// vCPU of the VM runs guest code (the slots are absent for a moment).
  func reloadMemorySlots() throws(EngineError) {
    for (slot, region) in memory.regions.enumerated() where region.kind != .rom {
      var r = kvm_userspace_memory_region(
        slot: UInt32(slot), flags: 0, guest_phys_addr: region.guestAddress, memory_size: 0,
        userspace_addr: UInt64(UInt(bitPattern: region.host)))
      try check(ckvm_ioctl_ptr(fd, CKVM_SET_USER_MEMORY_REGION, &r), "KVM_SET_USER_MEMORY_REGION (delete) slot \(slot)")
      r.memory_size = region.size
      try check(ckvm_ioctl_ptr(fd, CKVM_SET_USER_MEMORY_REGION, &r), "KVM_SET_USER_MEMORY_REGION slot \(slot)")
    }
  }
}

import CKVM
import VMM

extension KVMVirtualCPU {
  /// Drops the guest's cached translations (the paravirtual monitor's TLB flushes: the guest
  /// kernel runs at ring 3 and cannot INVLPG or reload CR3 itself). `KVM_SET_SREGS` with the CR3
  /// KVM already has reloads nothing, so CR3 is set with PWT flipped, then as it was: two changes
  /// of CR3, each a reload of the guest's paging, the same tables. Where KVM shadows the guest's
  /// page tables (`KVMSystem.shadowsGuestPageTables`: this project's nested hosts) that is not
  /// enough, since the VMM wrote the tables from the host side past KVM's write protection: the
  /// VM's shadow page tables are dropped instead (`KVMVirtualMachine.dropShadowPageTables`), for
  /// every vCPU at once and safely while siblings run guest code.
  public func invalidateTranslations() throws(EngineError) {
    if KVMSystem.shadowsGuestPageTables {
      try vm.dropShadowPageTables()
      return
    }
    // Two loads KVM sees one after the other: through the ioctls, even where the special
    // registers are synced through kvm_run (only the last of two synced writes would reach KVM).
    try writeBackSyncedChanges(.specialRegisters)
    var k = kvm_sregs()
    try check(ckvm_ioctl_ptr(fd, CKVM_GET_SREGS, &k), "KVM_GET_SREGS")
    let cr3 = k.cr3
    k.cr3 = cr3 ^ 0x8
    try check(ckvm_ioctl_ptr(fd, CKVM_SET_SREGS, &k), "KVM_SET_SREGS")
    k.cr3 = cr3
    try check(ckvm_ioctl_ptr(fd, CKVM_SET_SREGS, &k), "KVM_SET_SREGS")
  }
}

/// `memory_op`, `mmu_update`, `mmuext_op` and `update_va_mapping`: the guest's memory and its
/// page tables, validated.
extension ParavirtDomain {
  func registerMemoryHypercalls(on dispatcher: HypercallDispatcher) {}
}

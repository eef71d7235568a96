/// The hypercalls of a deprivileged guest kernel: `set_trap_table`, `set_callbacks`,
/// `stack_switch`, `set_segment_base`, `fpu_taskswitch` and `iret`.
extension ParavirtDomain {
  func registerMonitorHypercalls(on dispatcher: HypercallDispatcher) {}
}

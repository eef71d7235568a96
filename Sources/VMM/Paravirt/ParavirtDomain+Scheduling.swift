/// `sched_op`, `set_timer_op` and `vcpu_op`: blocking, yielding, shutting down, timers and vCPUs.
extension ParavirtDomain {
  func registerSchedulingHypercalls(on dispatcher: HypercallDispatcher) {}
}

/// One scheduling decision or state change, as `CreditScheduler.observer` reports it (the raw
/// material of `--sched-trace` and `SchedulerTrace`).
public enum SchedulerEvent: Sendable, Equatable {
  /// `vcpu` became runnable at `time` (woken, or unparked at a new accounting period).
  case woke(VCPUID, time: UInt64)
  /// `vcpu` started running on `pcpu` at `time`.
  case dispatched(VCPUID, pcpu: Int, time: UInt64)
  /// `vcpu` stopped running on `pcpu` at `time` (slice over, preempted, blocked or parked).
  case descheduled(VCPUID, pcpu: Int, time: UInt64)
  /// `vcpu` moved from `pcpu` `from`'s queue to `to`'s at `time` (stolen by an idler pCPU).
  case migrated(VCPUID, from: Int, to: Int, time: UInt64)
  /// `vcpu`'s priority changed at `time`.
  case priorityChanged(VCPUID, SchedulingPriority, time: UInt64)
  /// `vcpu` used up its VM's cap for this accounting period at `time`.
  case parked(VCPUID, time: UInt64)
  /// `vcpu` blocked at `time` (HLT, `sched_op` block): it wants no pCPU until woken.
  case blocked(VCPUID, time: UInt64)
}
